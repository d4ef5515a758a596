-- What each night's `dbt build` did, node by node (from dbt's own run results).
-- The DAG's per-node tasks read their state from here, and data engineers can
-- query the history: which model failed when, how long each node took.
create table if not exists ops.dbt_node_results (
    dag_run_id text not null,
    attempt integer not null,
    unique_id text not null,
    resource_type text not null,
    name text not null,
    status text not null,
    message text,
    failures bigint,
    execution_time double precision,
    business_date date not null,
    recorded_at timestamptz not null default clock_timestamp(),
    primary key (dag_run_id, attempt, unique_id)
);
comment on table ops.dbt_node_results is
    'One row per dbt node (model, seed, snapshot, test) per nightly dbt build attempt, from dbt''s run_results.';
