-- One row per period end (int_customers__period_ends) and customer with at
-- least one order up to that day: when and how much they had bought by then,
-- overall and by channel, their usual gap between purchase days, and their
-- net revenue in the two spend windows of var('churn_spend_window_days') days
-- ending at the period end (to spot a decline). Point in time: only orders
-- dated on or before the period end. The rows of the as-of date are
-- int_customers__purchase_summary.
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
        period_ends.is_as_of_date,
        period_ends.as_of_date,
        orders.customer_key,
        orders.business_date,
        orders.channel,
        orders.is_purchase,
        orders.net_amount

    from period_ends
    inner join orders
        on period_ends.period_end_date >= orders.business_date

),

purchase_days as (

    select distinct
        orders.customer_key,
        orders.business_date
    from orders
    where orders.is_purchase

),

-- a gap belongs to the later of its two purchase days, so the gaps up to a
-- period end are those of the purchase days up to it
purchase_gaps as (

    select
        purchase_days.customer_key,
        purchase_days.business_date,
        purchase_days.business_date - lag(purchase_days.business_date) over (
            partition by purchase_days.customer_key
            order by purchase_days.business_date
        ) as gap_days

    from purchase_days

),

usual_gaps as (

    select
        period_ends.period_end_date,
        purchase_gaps.customer_key,
        percentile_cont(0.5) within group (order by purchase_gaps.gap_days) as median_gap_days

    from period_ends
    inner join purchase_gaps
        on period_ends.period_end_date >= purchase_gaps.business_date
    where purchase_gaps.gap_days is not null
    group by 1, 2

),

order_totals as (

    select
        orders_by_period.period_end_date,
        orders_by_period.customer_key,
        orders_by_period.is_as_of_date,
        orders_by_period.as_of_date,

        min(orders_by_period.business_date)
        filter (where orders_by_period.is_purchase) as first_purchase_date,
        max(orders_by_period.business_date)
        filter (where orders_by_period.is_purchase) as last_purchase_date,
        min(orders_by_period.business_date) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'online'
        ) as first_online_purchase_date,
        max(orders_by_period.business_date) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'online'
        ) as last_online_purchase_date,
        min(orders_by_period.business_date) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'store'
        ) as first_store_purchase_date,
        max(orders_by_period.business_date) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'store'
        ) as last_store_purchase_date,

        count(*) filter (where orders_by_period.is_purchase) as purchase_count,
        count(*) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'online'
        ) as online_purchase_count,
        count(*) filter (
            where orders_by_period.is_purchase and orders_by_period.channel = 'store'
        ) as store_purchase_count,
        count(distinct orders_by_period.business_date) filter (
            where orders_by_period.is_purchase
        ) as purchase_day_count,

        sum(orders_by_period.net_amount) as net_revenue,
        coalesce(
            sum(orders_by_period.net_amount) filter (where orders_by_period.channel = 'online'),
            0
        ) as online_net_revenue,
        coalesce(
            sum(orders_by_period.net_amount) filter (where orders_by_period.channel = 'store'),
            0
        ) as store_net_revenue,
        coalesce(sum(orders_by_period.net_amount) filter (
            where
            orders_by_period.business_date
            > orders_by_period.period_end_date - {{ var('rfm_lookback_days') }}
        ), 0) as net_revenue_lookback,
        count(*) filter (
            where
            orders_by_period.is_purchase
            and orders_by_period.business_date
            > orders_by_period.period_end_date - {{ var('rfm_lookback_days') }}
        ) as purchase_count_lookback,

        -- the spend window ending at the period end and the one before it
        coalesce(sum(orders_by_period.net_amount) filter (
            where
            orders_by_period.business_date
            > orders_by_period.period_end_date - {{ var('churn_spend_window_days') }}
        ), 0) as net_revenue_recent_window,
        count(*) filter (
            where
            orders_by_period.is_purchase
            and orders_by_period.business_date
            > orders_by_period.period_end_date - {{ var('churn_spend_window_days') }}
        ) as purchase_count_recent_window,
        coalesce(sum(orders_by_period.net_amount) filter (
            where
            orders_by_period.business_date
            <= orders_by_period.period_end_date - {{ var('churn_spend_window_days') }}
            and orders_by_period.business_date
            > orders_by_period.period_end_date - 2 * {{ var('churn_spend_window_days') }}
        ), 0) as net_revenue_prior_window,
        count(*) filter (
            where
            orders_by_period.is_purchase
            and orders_by_period.business_date
            <= orders_by_period.period_end_date - {{ var('churn_spend_window_days') }}
            and orders_by_period.business_date
            > orders_by_period.period_end_date - 2 * {{ var('churn_spend_window_days') }}
        ) as purchase_count_prior_window

    from orders_by_period
    group by 1, 2, 3, 4

),

final as (

    select
        order_totals.period_end_date,
        order_totals.customer_key,

        order_totals.first_purchase_date,
        order_totals.last_purchase_date,
        order_totals.first_online_purchase_date,
        order_totals.last_online_purchase_date,
        order_totals.first_store_purchase_date,
        order_totals.last_store_purchase_date,
        order_totals.period_end_date - order_totals.last_purchase_date as days_since_last_purchase,

        order_totals.purchase_count,
        order_totals.online_purchase_count,
        order_totals.store_purchase_count,
        order_totals.purchase_day_count,
        usual_gaps.median_gap_days,

        order_totals.net_revenue,
        order_totals.online_net_revenue,
        order_totals.store_net_revenue,
        order_totals.net_revenue_lookback,
        order_totals.purchase_count_lookback,
        order_totals.net_revenue_recent_window,
        order_totals.purchase_count_recent_window,
        order_totals.net_revenue_prior_window,
        order_totals.purchase_count_prior_window,

        order_totals.is_as_of_date,
        order_totals.as_of_date

    from order_totals
    left join usual_gaps
        on
            order_totals.period_end_date = usual_gaps.period_end_date
            and order_totals.customer_key = usual_gaps.customer_key

)

select * from final
