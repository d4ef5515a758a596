-- What the models publish, one publication per as-of date (HK business date).
-- Written by the nightly ML tasks into ml_stage.* first, checked there
-- (ml/publish.py: score ranges, coverage, no personal data), then copied to
-- reporting.* in one transaction per as-of date: a failed check leaves the
-- previous publication in place, and a re-run replaces that date's rows.
-- Forecast tables keep every as-of date: they are the forecast ledger that
-- reporting.forecast_accuracy compares with what happened.
create schema if not exists ml_stage;

create table if not exists reporting.customer_clusters (
    as_of_date date not null,
    customer_key text not null,
    segment_id integer not null,
    segment_name text not null,
    distance double precision not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, customer_key)
);
comment on table reporting.customer_clusters is
    'ML behavioural segment (k-means on point-in-time features) per customer_key and as_of_date, beside the RFM segments of reporting.customer_segments.';

create table if not exists reporting.customer_cluster_profiles (
    as_of_date date not null,
    segment_id integer not null,
    segment_name text not null,
    customers integer not null,
    share double precision not null,
    profile jsonb not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, segment_id)
);
comment on table reporting.customer_cluster_profiles is
    'Size, share and feature profile (means and medians in original units) of each ML segment per as_of_date.';

create table if not exists reporting.churn_scores (
    as_of_date date not null,
    customer_key text not null,
    horizon_days integer not null,
    churn_probability double precision not null check (churn_probability between 0 and 1),
    churn_percentile double precision not null check (churn_percentile between 0 and 100),
    risk_band text not null,
    drivers text not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, customer_key)
);
comment on table reporting.churn_scores is
    'Probability that the customer makes no purchase in the horizon_days after as_of_date, its percentile, band and top drivers.';

create table if not exists reporting.winback_list (
    as_of_date date not null,
    customer_key text not null,
    churn_probability double precision not null,
    churn_percentile double precision not null,
    risk_band text not null,
    drivers text not null,
    priority_rank integer not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, customer_key)
);
comment on table reporting.winback_list is
    'Win-back contact list from the churn model: customers of reporting.churn_scores in the win-back risk bands (ml.churn.WINBACK_BANDS) who may be sent marketing (marts.dim_customer.is_marketing_opt_in: consent given, no opt-out), highest risk first. Derived at publication, in the same transaction as the scores.';

create table if not exists reporting.customer_forecast (
    as_of_date date not null,
    customer_key text not null,
    horizon_days integer not null,
    period_start date not null,
    period_end date not null,
    expected_purchases double precision not null check (expected_purchases >= 0),
    expected_spend double precision not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, customer_key)
);
comment on table reporting.customer_forecast is
    'Expected purchase days and net spend (HKD) of each customer in (as_of_date, period_end]; kept for every as_of_date (the forecast ledger).';

create table if not exists reporting.sales_forecast (
    as_of_date date not null,
    level text not null,
    series_key text not null,
    target_date date not null,
    horizon_day integer not null,
    point double precision not null,
    lo80 double precision not null,
    hi80 double precision not null,
    lo95 double precision not null,
    hi95 double precision not null,
    model_version text not null,
    run_id bigint not null,
    primary key (as_of_date, level, series_key, target_date)
);
comment on table reporting.sales_forecast is
    'Daily net sales forecast (HKD) per level (total, channel, store, category) for the 28 days after as_of_date, with 80% and 95% intervals; kept for every as_of_date (the forecast ledger).';

create table if not exists reporting.model_validation (
    as_of_date date not null,
    model text not null,
    method text not null,
    target text not null,
    metric text not null,
    bucket text not null default '',
    value double precision,
    run_id bigint not null,
    primary key (run_id, method, target, metric, bucket)
);
comment on table reporting.model_validation is
    'Each model''s validation against what happened, next to its baselines (method = model or a baseline), from the training run''s backtest.';

create table if not exists reporting.forecast_accuracy (
    forecast_kind text not null,
    period_type text not null check (period_type in ('week', 'month', 'quarter')),
    period_start date not null,
    level text not null,
    series_key text not null,
    horizon_bucket text not null,
    forecast double precision not null,
    actual double precision not null,
    abs_error double precision not null,
    wape double precision,
    bias double precision,
    points integer not null,
    coverage80 double precision,
    coverage95 double precision,
    primary key (forecast_kind, period_type, period_start, level, series_key, horizon_bucket)
);
comment on table reporting.forecast_accuracy is
    'Forecast versus actual per week, month and quarter of the target dates, from the forecast ledger (sales_forecast, customer_forecast) once actuals arrived.';
