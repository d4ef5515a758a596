-- RFM scores and named segment of every customer with a purchase in the
-- last var('rfm_lookback_days') days, as of the business date. Cut-points
-- and segment names come from the seeds rfm_score_cutpoints and
-- rfm_segment_rules, version var('rfm_rules_version') (DECISIONLOG.md,
-- "Customers and marketing"). The nightly publish_segments task copies the
-- rows of the business date to reporting.customer_segments.
with

rfm_scores as (

    select * from {{ ref('int_customers__rfm_scores') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

segment_rules as (

    select * from {{ ref('rfm_segment_rules') }}

),

as_of as (

    select
        period_ends.period_end_date,
        period_ends.as_of_date

    from period_ends
    where period_ends.is_as_of_date

),

final as (

    select
        rfm_scores.customer_key,

        rfm_scores.first_purchase_date,
        rfm_scores.last_purchase_date,
        rfm_scores.recency_days,
        rfm_scores.frequency,
        rfm_scores.monetary,

        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_scores.fm_score,
        rfm_scores.rfm_cell,
        rfm_scores.segment_name,
        segment_rules.description as segment_description,
        rfm_scores.rules_version,
        {{ var('rfm_lookback_days') }} as lookback_days,

        as_of.as_of_date

    from rfm_scores
    inner join as_of
        on rfm_scores.period_end_date = as_of.period_end_date
    left join segment_rules
        on
            rfm_scores.rules_version = segment_rules.rules_version
            and rfm_scores.segment_name = segment_rules.segment_name

)

select * from final
