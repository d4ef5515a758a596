-- Every expectation of every gate run, passed or not (expectations/gate.py), so a
-- check's trend can be read in SQL: when did the quarantine rate start to climb,
-- how often does this warning fire. Data Docs hold the same results as pages.
create table if not exists ops.quality_results (
    result_id bigserial primary key,
    gate text not null,
    business_date date,
    dag_run_id text,
    checked_at timestamptz not null default clock_timestamp(),
    table_name text not null,
    suite text,
    expectation text not null,
    column_name text,
    severity text not null check (severity in ('critical', 'warning')),
    success boolean not null,
    observed text,
    unexpected_count bigint,
    detail text not null,
    data_docs text
);
create index if not exists quality_results_gate_date
    on ops.quality_results (gate, business_date);
comment on table ops.quality_results is
    'One row per expectation per gate run (raw, marts): severity, verdict, observed value. '
    'A table the gate could not find is one failed critical row (expectation table_exists).';
