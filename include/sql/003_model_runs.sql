-- What each model did, night by night: training, validation against its
-- baselines, scoring. One row per step; the artefact (a fitted model) lives
-- at artefact_path (under CRM_HOME/models). Scores and forecasts published to
-- reporting.* carry the run_id that produced them.
create table if not exists ops.model_runs (
    run_id bigserial primary key,
    model text not null,
    model_version text not null,
    step text not null check (step in ('train', 'validate', 'score')),
    as_of_date date not null,
    parameters jsonb not null default '{}'::jsonb,
    data_from date,
    data_to date,
    metrics jsonb not null default '{}'::jsonb,
    artefact_path text,
    dag_run_id text,
    status text not null check (status in ('running', 'succeeded', 'failed')),
    message text,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz
);
create index if not exists model_runs_by_model on ops.model_runs (model, step, as_of_date);
comment on table ops.model_runs is
    'One row per model step (train, validate, score) per as-of date: version, parameters, data window, metrics, artefact path.';
