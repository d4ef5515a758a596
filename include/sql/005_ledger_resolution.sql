-- A failed load (a file off the name contract, with an impossible date in its name,
-- changed after it was loaded, unreadable) fails its source's load task on every run
-- until an operator resolves it: `crm ledger resolve <load_id> --note '...'` sets these.
alter table ops.load_ledger
    add column if not exists resolved_at timestamptz,
    add column if not exists resolution text;
comment on column ops.load_ledger.resolved_at is
    'When an operator marked this failed load as dealt with (crm ledger resolve); null: unresolved.';
