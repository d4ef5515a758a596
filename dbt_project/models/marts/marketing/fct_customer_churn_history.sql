-- Churn status of every customer who had purchased by each period end
-- (int_customers__period_ends: the last var('customer_history_months') month
-- ends and the as-of date), computed strictly as of that day: from the
-- purchase summary at the period end (int_customers__purchase_summary_history:
-- orders dated up to it, spend windows ending at it), the complaints created
-- up to it (fct_complaints.business_date) and the population median gap over
-- the customers of that period end. The one place of the churn rule;
-- fct_customer_churn_risk is its as-of rows. The rules (DECISIONLOG.md,
-- "Customers and marketing"; thresholds in vars):
--   expected gap  = the customer's median gap between purchase days, or for
--                   a customer with one purchase day the median of those
--                   medians over all customers; never under
--                   var('churn_min_gap_days');
--   lost          = no purchase for more than churn_lapse_gap_multiple x the
--                   expected gap, or more than churn_lapse_max_days;
--   at risk       = not lost, and no purchase for more than
--                   churn_at_risk_gap_multiple x the expected gap (capped the
--                   same way), or spend declining, or a complaint since the
--                   last purchase;
--   declining spend = still buying (a purchase in the latest
--                   churn_spend_window_days) but for less than
--                   churn_spend_drop_ratio x the net revenue of the window
--                   before, which held at least two purchases.
-- Reason of an at-risk or lost customer, first that applies:
--   after_complaint - a complaint created at most churn_complaint_window_days
--                     before the last purchase, or after it;
--   declining_spend, one_time_buyer (a single purchase day), lapsed.
-- Customers are keyed by today's identity stitch (as every customer mart).
with

purchase_summary_history as (

    select * from {{ ref('int_customers__purchase_summary_history') }}

),

complaints as (

    select * from {{ ref('fct_complaints') }}

),

buyers as (

    select * from purchase_summary_history
    where purchase_count > 0

),

population_gaps as (

    select
        buyers.period_end_date,
        percentile_cont(0.5) within group (
            order by buyers.median_gap_days
        ) as population_median_gap_days

    from buyers
    where buyers.median_gap_days is not null
    group by 1

),

customer_complaints as (

    select
        buyers.period_end_date,
        buyers.customer_key,
        count(*) as complaint_count,
        max(complaints.business_date) as last_complaint_date

    from buyers
    inner join complaints
        on
            buyers.customer_key = complaints.customer_key
            and buyers.period_end_date >= complaints.business_date
    group by 1, 2

),

thresholds as (

    select
        buyers.*,
        population_gaps.population_median_gap_days,
        round(greatest(
            coalesce(buyers.median_gap_days, population_gaps.population_median_gap_days),
            {{ var('churn_min_gap_days') }}
        )::numeric, 1) as expected_gap_days

    from buyers
    left join population_gaps
        on buyers.period_end_date = population_gaps.period_end_date

),

flagged as (

    select
        thresholds.*,
        least(
            {{ var('churn_lapse_gap_multiple') }} * thresholds.expected_gap_days,
            {{ var('churn_lapse_max_days') }}
        ) as lost_after_days,
        least(
            {{ var('churn_at_risk_gap_multiple') }} * thresholds.expected_gap_days,
            {{ var('churn_lapse_max_days') }}
        ) as at_risk_after_days,
        coalesce(customer_complaints.complaint_count, 0) as complaint_count,
        customer_complaints.last_complaint_date,

        thresholds.purchase_count_prior_window >= 2
        and thresholds.purchase_count_recent_window >= 1
        and thresholds.net_revenue_recent_window
        < {{ var('churn_spend_drop_ratio') }} * thresholds.net_revenue_prior_window
            as is_declining_spend,
        coalesce(
            customer_complaints.last_complaint_date
            >= thresholds.last_purchase_date - {{ var('churn_complaint_window_days') }},
            false
        ) as has_complaint_near_last_purchase,
        coalesce(
            customer_complaints.last_complaint_date > thresholds.last_purchase_date, false
        ) as has_complaint_since_last_purchase

    from thresholds
    left join customer_complaints
        on
            thresholds.period_end_date = customer_complaints.period_end_date
            and thresholds.customer_key = customer_complaints.customer_key

),

classified as (

    select
        flagged.*,
        case
            when flagged.days_since_last_purchase > flagged.lost_after_days then 'lost'
            when
                flagged.days_since_last_purchase > flagged.at_risk_after_days
                or flagged.is_declining_spend
                or flagged.has_complaint_since_last_purchase
                then 'at_risk'
            else 'active'
        end as churn_status

    from flagged

),

with_reason as (

    select
        classified.*,
        case
            when classified.churn_status = 'active' then null
            when classified.has_complaint_near_last_purchase then 'after_complaint'
            when classified.is_declining_spend then 'declining_spend'
            when classified.purchase_day_count = 1 then 'one_time_buyer'
            else 'lapsed'
        end as churn_reason

    from classified

),

final as (

    select
        with_reason.period_end_date,
        with_reason.customer_key,

        with_reason.churn_status,
        with_reason.churn_reason,

        with_reason.first_purchase_date,
        with_reason.last_purchase_date,
        with_reason.days_since_last_purchase,
        with_reason.purchase_count,
        with_reason.purchase_day_count,
        with_reason.median_gap_days,
        with_reason.population_median_gap_days,
        with_reason.expected_gap_days,
        with_reason.at_risk_after_days,
        with_reason.lost_after_days,

        with_reason.net_revenue,
        with_reason.net_revenue_recent_window,
        with_reason.purchase_count_recent_window,
        with_reason.net_revenue_prior_window,
        with_reason.purchase_count_prior_window,
        with_reason.is_declining_spend,

        with_reason.complaint_count,
        with_reason.last_complaint_date,
        with_reason.has_complaint_near_last_purchase,
        with_reason.has_complaint_since_last_purchase,

        with_reason.is_as_of_date,
        with_reason.as_of_date

    from with_reason

)

select * from final
