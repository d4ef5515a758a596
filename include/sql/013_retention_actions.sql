-- What the retention purge did (include/retention.py), batch by batch, and what a
-- dry run would do: the evidence that personal data is kept no longer than
-- contract/privacy.yml says (PDPO DPP2(2), s.26).
create table if not exists ops.retention_actions (
    action_id bigint generated always as identity primary key,
    run_id text not null,
    business_date date not null,
    dataset text not null,
    action text not null check (action in ('delete', 'anonymise')),
    cutoff timestamptz not null,
    columns_emptied text[] not null default '{}',
    rows_affected bigint not null,
    dry_run boolean not null,
    acted_at timestamptz not null default clock_timestamp()
);
create index if not exists retention_actions_by_date on ops.retention_actions (business_date);
