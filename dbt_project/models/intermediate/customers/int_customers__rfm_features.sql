-- Recency, frequency and monetary value of each customer at each period end
-- (int_customers__period_ends), from the orders dated up to that day:
--   recency_days = days from the last purchase to the period end;
--   frequency    = purchases in the var('rfm_lookback_days') days up to it;
--   monetary     = net revenue (sales less returns) in those days.
-- One row per customer who had purchased by the period end; is_in_window
-- tells whether the last purchase falls in the look-back window (only those
-- customers are scored).
with

orders as (

    select * from {{ ref('int_customers__orders') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

orders_by_period as (

    select
        period_ends.period_end_date,
        orders.customer_key,
        orders.business_date,
        orders.is_purchase,
        orders.net_amount,
        orders.business_date
        > period_ends.period_end_date - {{ var('rfm_lookback_days') }} as is_in_window

    from period_ends
    inner join orders
        on period_ends.period_end_date >= orders.business_date

),

aggregated as (

    select
        orders_by_period.customer_key,
        orders_by_period.period_end_date,

        min(orders_by_period.business_date)
        filter (where orders_by_period.is_purchase) as first_purchase_date,
        max(orders_by_period.business_date)
        filter (where orders_by_period.is_purchase) as last_purchase_date,
        count(*) filter (
            where orders_by_period.is_purchase and orders_by_period.is_in_window
        ) as frequency,
        coalesce(
            sum(orders_by_period.net_amount) filter (where orders_by_period.is_in_window), 0
        ) as monetary

    from orders_by_period
    group by 1, 2

),

final as (

    select
        aggregated.customer_key,
        aggregated.period_end_date,
        aggregated.first_purchase_date,
        aggregated.last_purchase_date,
        aggregated.period_end_date - aggregated.last_purchase_date as recency_days,
        aggregated.frequency,
        aggregated.monetary,
        aggregated.frequency > 0 as is_in_window

    from aggregated
    -- a customer whose only orders are returns has not purchased
    where aggregated.last_purchase_date is not null

)

select * from final
