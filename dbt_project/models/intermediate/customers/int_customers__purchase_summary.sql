-- One row per customer with at least one order up to the as-of date: when
-- and how much they bought, overall and by channel, their usual gap between
-- purchase days, and their net revenue in the latest two spend windows of
-- var('churn_spend_window_days') days (to spot a decline).
with

orders as (

    select * from {{ ref('int_customers__orders') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

purchase_days as (

    select distinct
        orders.customer_key,
        orders.business_date
    from orders
    where orders.is_purchase

),

purchase_gaps as (

    select
        purchase_days.customer_key,
        purchase_days.business_date - lag(purchase_days.business_date) over (
            partition by purchase_days.customer_key
            order by purchase_days.business_date
        ) as gap_days

    from purchase_days

),

usual_gaps as (

    select
        purchase_gaps.customer_key,
        percentile_cont(0.5) within group (order by purchase_gaps.gap_days) as median_gap_days

    from purchase_gaps
    where purchase_gaps.gap_days is not null
    group by 1

),

order_totals as (

    select
        orders.customer_key,
        as_of.as_of_date,

        min(orders.business_date) filter (where orders.is_purchase) as first_purchase_date,
        max(orders.business_date) filter (where orders.is_purchase) as last_purchase_date,
        min(orders.business_date) filter (
            where orders.is_purchase and orders.channel = 'online'
        ) as first_online_purchase_date,
        max(orders.business_date) filter (
            where orders.is_purchase and orders.channel = 'online'
        ) as last_online_purchase_date,
        min(orders.business_date) filter (
            where orders.is_purchase and orders.channel = 'store'
        ) as first_store_purchase_date,
        max(orders.business_date) filter (
            where orders.is_purchase and orders.channel = 'store'
        ) as last_store_purchase_date,

        count(*) filter (where orders.is_purchase) as purchase_count,
        count(*) filter (
            where orders.is_purchase and orders.channel = 'online'
        ) as online_purchase_count,
        count(*) filter (
            where orders.is_purchase and orders.channel = 'store'
        ) as store_purchase_count,
        count(distinct orders.business_date) filter (
            where orders.is_purchase
        ) as purchase_day_count,

        sum(orders.net_amount) as net_revenue,
        coalesce(
            sum(orders.net_amount) filter (where orders.channel = 'online'), 0
        ) as online_net_revenue,
        coalesce(
            sum(orders.net_amount) filter (where orders.channel = 'store'), 0
        ) as store_net_revenue,
        coalesce(sum(orders.net_amount) filter (
            where orders.business_date > as_of.as_of_date - {{ var('rfm_lookback_days') }}
        ), 0) as net_revenue_lookback,
        count(*) filter (
            where
            orders.is_purchase
            and orders.business_date > as_of.as_of_date - {{ var('rfm_lookback_days') }}
        ) as purchase_count_lookback,

        -- the latest spend window and the one before it
        coalesce(sum(orders.net_amount) filter (
            where orders.business_date > as_of.as_of_date - {{ var('churn_spend_window_days') }}
        ), 0) as net_revenue_recent_window,
        count(*) filter (
            where
            orders.is_purchase
            and orders.business_date
            > as_of.as_of_date - {{ var('churn_spend_window_days') }}
        ) as purchase_count_recent_window,
        coalesce(sum(orders.net_amount) filter (
            where
            orders.business_date
            <= as_of.as_of_date - {{ var('churn_spend_window_days') }}
            and orders.business_date
            > as_of.as_of_date - 2 * {{ var('churn_spend_window_days') }}
        ), 0) as net_revenue_prior_window,
        count(*) filter (
            where
            orders.is_purchase
            and orders.business_date
            <= as_of.as_of_date - {{ var('churn_spend_window_days') }}
            and orders.business_date
            > as_of.as_of_date - 2 * {{ var('churn_spend_window_days') }}
        ) as purchase_count_prior_window

    from orders
    cross join as_of
    group by 1, 2

),

final as (

    select
        order_totals.customer_key,

        order_totals.first_purchase_date,
        order_totals.last_purchase_date,
        order_totals.first_online_purchase_date,
        order_totals.last_online_purchase_date,
        order_totals.first_store_purchase_date,
        order_totals.last_store_purchase_date,
        order_totals.as_of_date - order_totals.last_purchase_date as days_since_last_purchase,

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

        order_totals.as_of_date

    from order_totals
    left join usual_gaps
        on order_totals.customer_key = usual_gaps.customer_key

)

select * from final
