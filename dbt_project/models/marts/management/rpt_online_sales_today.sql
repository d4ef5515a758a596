{{ config(materialized='view') }}

-- "Today so far": the online sales of the current Hong Kong day, from the
-- freshest extracted shop data, with the same metric definitions as the
-- nightly reports (macros/metrics_management.sql). The one model that reads
-- the clock: it is a view, evaluated when queried, and never feeds a
-- nightly table. as_of is the newest extracted order version, queried_at
-- the moment of the query: the gap between them is how stale the figures are.
-- The clock is now() unless the session sets crm.now (set crm.now =
-- '2026-11-20 23:30+08'), so "today so far" can be asked as of any instant.
with

online_lines as (

    select * from {{ ref('int_management__online_sales_lines_live') }}

),

clock as (

    select coalesce(nullif(current_setting('crm.now', true), '')::timestamptz, now()) as now

),

today as (

    select
        (clock.now at time zone 'Asia/Hong_Kong')::date as business_date,
        clock.now as queried_at
    from clock

),

todays_sales_lines as (

    -- cancelled orders never became sales (as in fct_sales)
    select online_lines.*
    from online_lines
    inner join today
        on online_lines.business_date = today.business_date
    where not online_lines.is_cancelled

),

metrics as (

    {{ metrics_by('todays_sales_lines', ['business_date']) }}

),

freshness as (

    select max(online_lines.order_updated_at) as as_of
    from online_lines

),

final as (

    select
        today.business_date,
        'online' as channel,

        {{ metrics_pivot_columns('metrics') }},

        freshness.as_of,
        today.queried_at

    from today
    cross join freshness
    left join metrics
        on today.business_date = metrics.business_date

)

select * from final
