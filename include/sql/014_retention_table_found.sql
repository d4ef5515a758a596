-- A retention table that does not exist yet when the purge runs (a snapshot before
-- the first build made it) is recorded too, as not found: the marts gate then
-- knows the purge looked at every table of contract/privacy.yml's retention.
alter table ops.retention_actions
    add column if not exists table_found boolean not null default true;
