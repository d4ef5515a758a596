-- The RFM segment of each customer at the end of each of the last
-- var('customer_history_months') months and on the business date (month to
-- date), computed from the sales dated up to that day as known on the
-- business date. A customer who had bought by then but not within the
-- look-back window is 'Inactive'. One row per customer and period end,
-- from the period of their first purchase on.
with

rfm_features as (

    select * from {{ ref('int_customers__rfm_features') }}

),

rfm_scores as (

    select * from {{ ref('int_customers__rfm_scores') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

final as (

    select
        rfm_features.customer_key,
        rfm_features.period_end_date,
        period_ends.period_month,
        period_ends.is_month_end,
        period_ends.is_as_of_date,

        rfm_features.recency_days,
        rfm_features.frequency,
        rfm_features.monetary,
        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_scores.rfm_cell,
        coalesce(rfm_scores.segment_name, 'Inactive') as segment_name,
        '{{ var("rfm_rules_version") }}' as rules_version,

        period_ends.as_of_date

    from rfm_features
    inner join period_ends
        on rfm_features.period_end_date = period_ends.period_end_date
    left join rfm_scores
        on
            rfm_features.customer_key = rfm_scores.customer_key
            and rfm_features.period_end_date = rfm_scores.period_end_date

)

select * from final
