{{ config(schema='intermediate') }}

-- The management metrics (macros/metrics_management.sql) of every day, ISO
-- week (Monday start) and calendar month, per channel and for both channels
-- together (channel 'total'), one row per period and channel with sales.
-- The long form behind rpt_channel_comparison and rpt_daily_kpis.
with

sales as (

    select * from {{ ref('fct_sales') }}

),

order_lines as (

    -- the lines of one order and day summed by kind (return, void, positive
    -- or not): the metric macros count orders and customers and sum money, so
    -- their results are the same as over single lines, from about a quarter
    -- of the rows; only the columns the metric macros read
    select
        sales.channel,
        sales.order_ref,
        sales.business_date,
        sales.customer_key,
        sales.is_return,
        sales.is_void,
        sales.net_amount > 0 as is_positive_amount,
        sum(sales.net_amount) as net_amount

    from sales
    group by 1, 2, 3, 4, 5, 6, 7

),

lines_by_channel as (

    -- every order line twice: once for its own channel, once for the total
    select
        order_lines.*,
        case
            when channel_scopes.scope = 'total' then 'total'
            else order_lines.channel
        end as reporting_channel

    from order_lines
    cross join (values ('own'), ('total')) as channel_scopes (scope)

),

lines_by_period as (

    select
        lines_by_channel.*,
        period_types.period_type,
        date_trunc(period_types.period_type, lines_by_channel.business_date)::date as period_start

    from lines_by_channel
    cross join {{ metrics_period_types() }}

),

metrics as (

    {{ metrics_by('lines_by_period', ['period_type', 'period_start', 'reporting_channel']) }}

),

final as (

    select
        metrics.period_type,
        metrics.period_start,
        {{ metrics_period_end('metrics.period_type', 'metrics.period_start') }} as period_end,
        metrics.reporting_channel as channel,

        metrics.revenue,
        metrics.orders,
        metrics.walk_in_orders,
        metrics.customers,
        metrics.repeat_customers,
        metrics.average_order_value,
        metrics.repeat_rate,

        {{ metrics_as_of_date(ref('fct_sales')) }} as as_of_date

    from metrics

)

select * from final
