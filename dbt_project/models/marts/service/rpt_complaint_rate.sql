-- Complaints per 1,000 orders, per Hong Kong calendar month, by
--   breakdown 'all'               every complaint / every order,
--   breakdown 'order_channel'     complaints about an online order (numeric
--                                 order_ref) or a store receipt / orders of
--                                 that channel,
--   breakdown 'store'             complaints about a receipt of the store
--                                 (its code is the receipt_no prefix) /
--                                 that store's receipts,
--   breakdown 'complaint_channel' complaints that came in through the
--                                 channel (email, phone...) / every order.
-- Complaints are counted in the month they were created, orders in the month
-- they were placed. A complaint without an order_ref counts only in 'all' and
-- 'complaint_channel'. Orders are counted as management counts them
-- (metric_orders: an online order or till receipt with at least one positive
-- sale line; cancelled online orders are not in fct_sales).
with

complaints as (

    select * from {{ ref('fct_complaints') }}

),

sales as (

    select * from {{ ref('fct_sales') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

sales_months as (

    select
        sales.*,
        date_trunc('month', sales.business_date)::date as month_start

    from sales

),

-- orders as management counts them (macros/metrics_management.sql)
order_counts as (

    select
        sales_months.month_start,
        'all' as breakdown,
        'all' as breakdown_value,
        {{ metric_orders('sales_months') }} as order_count
    from sales_months
    group by 1, 2, 3

    union all

    select
        sales_months.month_start,
        'order_channel' as breakdown,
        sales_months.channel as breakdown_value,
        {{ metric_orders('sales_months') }} as order_count
    from sales_months
    group by 1, 2, 3

    union all

    select
        sales_months.month_start,
        'store' as breakdown,
        sales_months.store_code as breakdown_value,
        {{ metric_orders('sales_months') }} as order_count
    from sales_months
    where sales_months.store_code is not null
    group by 1, 2, 3

),

complaint_counts as (

    select
        date_trunc('month', complaints.business_date)::date as month_start,
        'all' as breakdown,
        'all' as breakdown_value,
        count(*) as complaint_count
    from complaints
    group by 1, 2, 3

    union all

    select
        date_trunc('month', complaints.business_date)::date as month_start,
        'order_channel' as breakdown,
        complaints.order_channel as breakdown_value,
        count(*) as complaint_count
    from complaints
    where complaints.order_channel is not null
    group by 1, 2, 3

    union all

    select
        date_trunc('month', complaints.business_date)::date as month_start,
        'store' as breakdown,
        complaints.store_code as breakdown_value,
        count(*) as complaint_count
    from complaints
    where complaints.store_code is not null
    group by 1, 2, 3

    union all

    select
        date_trunc('month', complaints.business_date)::date as month_start,
        'complaint_channel' as breakdown,
        complaints.channel as breakdown_value,
        count(*) as complaint_count
    from complaints
    group by 1, 2, 3

),

-- every order is the denominator of a complaint channel's rate
complaint_channel_orders as (

    select
        complaint_counts.month_start,
        complaint_counts.breakdown,
        complaint_counts.breakdown_value,
        order_counts.order_count

    from complaint_counts
    inner join order_counts
        on
            complaint_counts.month_start = order_counts.month_start
            and order_counts.breakdown = 'all'
    where complaint_counts.breakdown = 'complaint_channel'

),

denominators as (

    select * from order_counts
    union all
    select * from complaint_channel_orders

),

joined as (

    select
        coalesce(denominators.month_start, complaint_counts.month_start) as month_start,
        coalesce(denominators.breakdown, complaint_counts.breakdown) as breakdown,
        coalesce(denominators.breakdown_value, complaint_counts.breakdown_value) as breakdown_value,
        coalesce(denominators.order_count, 0) as order_count,
        coalesce(complaint_counts.complaint_count, 0) as complaint_count

    from denominators
    full outer join complaint_counts
        on
            denominators.month_start = complaint_counts.month_start
            and denominators.breakdown = complaint_counts.breakdown
            and denominators.breakdown_value = complaint_counts.breakdown_value

),

final as (

    select
        md5(
            joined.month_start::text || '|' || joined.breakdown || '|' || joined.breakdown_value
        ) as complaint_rate_key,
        joined.month_start,
        joined.breakdown,
        joined.breakdown_value,
        joined.order_count,
        joined.complaint_count,
        round(
            1000.0 * joined.complaint_count / nullif(joined.order_count, 0), 3
        ) as complaints_per_1000_orders,
        (joined.month_start + interval '1 month')::date - 1 > as_of.as_of_date as is_partial_month,
        as_of.as_of_date

    from joined
    cross join as_of
    where joined.month_start <= as_of.as_of_date

)

select * from final
