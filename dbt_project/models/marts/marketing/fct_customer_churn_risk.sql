-- Churn status of every customer who has purchased, as of the business
-- date, with the most likely reason and a suggested win-back action. The
-- status, reason and thresholds are the as-of rows of
-- fct_customer_churn_history, where the rule is written (once, for every
-- period end; DECISIONLOG.md, "Customers and marketing"); the action per
-- status and reason is the seed winback_actions.
with

churn_history as (

    select * from {{ ref('fct_customer_churn_history') }}

),

winback_actions as (

    select * from {{ ref('winback_actions') }}

),

as_of_churn as (

    select * from churn_history
    where is_as_of_date

),

final as (

    select
        as_of_churn.customer_key,

        as_of_churn.churn_status,
        as_of_churn.churn_reason,
        winback_actions.suggested_action,

        as_of_churn.first_purchase_date,
        as_of_churn.last_purchase_date,
        as_of_churn.days_since_last_purchase,
        as_of_churn.purchase_count,
        as_of_churn.purchase_day_count,
        as_of_churn.median_gap_days,
        as_of_churn.expected_gap_days,
        as_of_churn.at_risk_after_days,
        as_of_churn.lost_after_days,

        as_of_churn.net_revenue,
        as_of_churn.net_revenue_recent_window,
        as_of_churn.net_revenue_prior_window,
        as_of_churn.is_declining_spend,

        as_of_churn.complaint_count,
        as_of_churn.last_complaint_date,
        as_of_churn.has_complaint_near_last_purchase,
        as_of_churn.has_complaint_since_last_purchase,

        as_of_churn.as_of_date

    from as_of_churn
    left join winback_actions
        on
            as_of_churn.churn_status = winback_actions.churn_status
            and as_of_churn.churn_reason = winback_actions.churn_reason

)

select * from final
