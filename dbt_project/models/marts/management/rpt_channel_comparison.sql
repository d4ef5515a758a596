-- Online against store, side by side, for every day, ISO week and calendar
-- month up to the as-of date, with the same metric definitions
-- (macros/metrics_management.sql), and the customers who bought in both
-- channels in the period (only the stitched identity can tell).
with

channel_metrics as (

    select * from {{ ref('int_management__channel_period_metrics') }}

),

sales as (

    select * from {{ ref('fct_sales') }}

),

as_of as (

    select
        min(sales.business_date) as first_sales_date,
        {{ metrics_as_of_date(ref('fct_sales')) }} as as_of_date

    from sales

),

days as (

    select date_series.calendar_day::date as business_date
    from
        as_of,
        generate_series(
            as_of.first_sales_date,
            as_of.as_of_date,
            interval '1 day'
        ) as date_series (calendar_day)

),

period_starts as (

    select distinct
        period_types.period_type,
        date_trunc(period_types.period_type, days.business_date)::date as period_start

    from days
    cross join {{ metrics_period_types() }}

),

periods as (

    select
        period_starts.period_type,
        period_starts.period_start,
        {{ metrics_period_end('period_starts.period_type', 'period_starts.period_start') }}
            as period_end

    from period_starts

),

customer_channels as (

    -- the channels each identified customer placed an order in, per period
    select
        period_types.period_type,
        date_trunc(period_types.period_type, sales.business_date)::date as period_start,
        sales.customer_key,
        count(distinct sales.channel) as channel_count

    from sales
    cross join {{ metrics_period_types() }}
    where
        sales.customer_key is not null
        and {{ metric_is_sale_line('sales') }}
    group by 1, 2, 3

),

cross_channel as (

    select
        customer_channels.period_type,
        customer_channels.period_start,
        count(*) filter (where customer_channels.channel_count = 2) as cross_channel_customers

    from customer_channels
    group by 1, 2

),

final as (

    select
        periods.period_type,
        periods.period_start,
        periods.period_end,
        periods.period_end <= as_of.as_of_date as is_complete_period,

        {{ metrics_pivot_columns('online_metrics', 'online') }},
        {{ metrics_pivot_columns('store_metrics', 'store') }},
        {{ metrics_pivot_columns('total_metrics', 'total') }},

        round(
            coalesce(online_metrics.revenue, 0) / nullif(total_metrics.revenue, 0), 4
        ) as online_revenue_share,
        coalesce(cross_channel.cross_channel_customers, 0) as cross_channel_customers,
        round(
            coalesce(cross_channel.cross_channel_customers, 0)::numeric
            / nullif(total_metrics.customers, 0),
            4
        ) as cross_channel_customer_share,

        as_of.as_of_date

    from periods
    cross join as_of
    left join channel_metrics as online_metrics
        on
            periods.period_type = online_metrics.period_type
            and periods.period_start = online_metrics.period_start
            and online_metrics.channel = 'online'
    left join channel_metrics as store_metrics
        on
            periods.period_type = store_metrics.period_type
            and periods.period_start = store_metrics.period_start
            and store_metrics.channel = 'store'
    left join channel_metrics as total_metrics
        on
            periods.period_type = total_metrics.period_type
            and periods.period_start = total_metrics.period_start
            and total_metrics.channel = 'total'
    left join cross_channel
        on
            periods.period_type = cross_channel.period_type
            and periods.period_start = cross_channel.period_start

)

select * from final
