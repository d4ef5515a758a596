-- One row per customer with at least one order up to the as-of date: when
-- and how much they bought, overall and by channel, their usual gap between
-- purchase days, and their net revenue in the latest two spend windows of
-- var('churn_spend_window_days') days (to spot a decline). These are the
-- as-of rows of int_customers__purchase_summary_history, where the columns
-- are computed (once, for every period end).
with

purchase_summary_history as (

    select * from {{ ref('int_customers__purchase_summary_history') }}

),

final as (

    select
        purchase_summary_history.customer_key,

        purchase_summary_history.first_purchase_date,
        purchase_summary_history.last_purchase_date,
        purchase_summary_history.first_online_purchase_date,
        purchase_summary_history.last_online_purchase_date,
        purchase_summary_history.first_store_purchase_date,
        purchase_summary_history.last_store_purchase_date,
        purchase_summary_history.days_since_last_purchase,

        purchase_summary_history.purchase_count,
        purchase_summary_history.online_purchase_count,
        purchase_summary_history.store_purchase_count,
        purchase_summary_history.purchase_day_count,
        purchase_summary_history.median_gap_days,

        purchase_summary_history.net_revenue,
        purchase_summary_history.online_net_revenue,
        purchase_summary_history.store_net_revenue,
        purchase_summary_history.net_revenue_lookback,
        purchase_summary_history.purchase_count_lookback,
        purchase_summary_history.net_revenue_recent_window,
        purchase_summary_history.purchase_count_recent_window,
        purchase_summary_history.net_revenue_prior_window,
        purchase_summary_history.purchase_count_prior_window,

        purchase_summary_history.as_of_date

    from purchase_summary_history
    where purchase_summary_history.is_as_of_date

)

select * from final
