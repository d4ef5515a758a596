-- Daily KPIs per Hong Kong business date up to the as-of date: the
-- management metrics (macros/metrics_management.sql) online, in store and
-- in total, how many of the day's customers bought for the first time, and
-- the web shop's sessions and their conversion.
with

channel_metrics as (

    select * from {{ ref('int_management__channel_period_metrics') }}
    where period_type = 'day'

),

sales as (

    select * from {{ ref('fct_sales') }}

),

web_sessions as (

    select * from {{ ref('fct_web_sessions') }}

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

first_orders as (

    -- the first day each identified customer placed an order, in any channel
    select
        sales.customer_key,
        min(sales.business_date) as first_order_date

    from sales
    where
        sales.customer_key is not null
        and {{ metric_is_sale_line('sales') }}
    group by 1

),

new_customers as (

    select
        first_orders.first_order_date as business_date,
        count(*) as new_customers

    from first_orders
    group by 1

),

web_traffic as (

    select
        web_sessions.business_date,
        count(*) as web_sessions,
        count(*) filter (where web_sessions.has_purchase) as purchasing_web_sessions

    from web_sessions
    group by 1

),

final as (

    select
        days.business_date,
        extract(isodow from days.business_date)::int as iso_day_of_week,

        {{ metrics_pivot_columns('online_metrics', 'online') }},
        {{ metrics_pivot_columns('store_metrics', 'store') }},
        {{ metrics_pivot_columns('total_metrics', 'total') }},

        coalesce(new_customers.new_customers, 0) as new_customers,
        coalesce(total_metrics.customers, 0)
        - coalesce(new_customers.new_customers, 0) as returning_customers,

        coalesce(web_traffic.web_sessions, 0) as web_sessions,
        coalesce(web_traffic.purchasing_web_sessions, 0) as purchasing_web_sessions,
        round(
            web_traffic.purchasing_web_sessions::numeric / nullif(web_traffic.web_sessions, 0), 4
        ) as web_conversion_rate,

        as_of.as_of_date

    from days
    cross join as_of
    left join channel_metrics as online_metrics
        on
            days.business_date = online_metrics.period_start
            and online_metrics.channel = 'online'
    left join channel_metrics as store_metrics
        on
            days.business_date = store_metrics.period_start
            and store_metrics.channel = 'store'
    left join channel_metrics as total_metrics
        on
            days.business_date = total_metrics.period_start
            and total_metrics.channel = 'total'
    left join new_customers
        on days.business_date = new_customers.business_date
    left join web_traffic
        on days.business_date = web_traffic.business_date

)

select * from final
