-- RFM scores (1-5, 5 best) and the named segment of each customer at each
-- period end, for the customers with a purchase in the look-back window.
-- The cut-points and the segment map are data, not code: the seeds
-- rfm_score_cutpoints and rfm_segment_rules, version var('rfm_rules_version').
--   * a metric's score is the row of rfm_score_cutpoints whose
--     [min_value, max_value) holds the value (a null bound is open);
--   * fm_score = (f_score + m_score) / 2;
--   * the segment is the rule of rfm_segment_rules with the lowest priority
--     whose r_score and fm_score ranges (inclusive) hold the customer's.
-- The one RFM segmentation: ml/segmentation.py publishes fct_customer_rfm
-- to reporting.customer_segments as it is.
with

features as (

    select * from {{ ref('int_customers__rfm_features') }}

),

score_cutpoints as (

    select * from {{ ref('rfm_score_cutpoints') }}
    where rules_version = '{{ var("rfm_rules_version") }}'

),

segment_rules as (

    select * from {{ ref('rfm_segment_rules') }}
    where rules_version = '{{ var("rfm_rules_version") }}'

),

scored_customers as (

    select * from features
    where is_in_window

),

scores as (

    select
        scored_customers.customer_key,
        scored_customers.period_end_date,
        recency_scores.score as r_score,
        frequency_scores.score as f_score,
        monetary_scores.score as m_score

    from scored_customers
    left join score_cutpoints as recency_scores
        on
            recency_scores.metric = 'recency_days'
            and (
                recency_scores.min_value is null
                or scored_customers.recency_days >= recency_scores.min_value
            )
            and (
                recency_scores.max_value is null
                or scored_customers.recency_days < recency_scores.max_value
            )
    left join score_cutpoints as frequency_scores
        on
            frequency_scores.metric = 'frequency'
            and (
                frequency_scores.min_value is null
                or scored_customers.frequency >= frequency_scores.min_value
            )
            and (
                frequency_scores.max_value is null
                or scored_customers.frequency < frequency_scores.max_value
            )
    left join score_cutpoints as monetary_scores
        on
            monetary_scores.metric = 'monetary'
            and (
                monetary_scores.min_value is null
                or scored_customers.monetary >= monetary_scores.min_value
            )
            and (
                monetary_scores.max_value is null
                or scored_customers.monetary < monetary_scores.max_value
            )

),

segment_matches as (

    select
        scores.customer_key,
        scores.period_end_date,
        segment_rules.segment_name,
        row_number() over (
            partition by scores.customer_key, scores.period_end_date
            order by segment_rules.priority
        ) as match_rank

    from scores
    inner join segment_rules
        on
            scores.r_score between segment_rules.r_score_min and segment_rules.r_score_max
            and (scores.f_score + scores.m_score) / 2.0
            between segment_rules.fm_score_min and segment_rules.fm_score_max

),

final as (

    select
        scored_customers.customer_key,
        scored_customers.period_end_date,

        scored_customers.first_purchase_date,
        scored_customers.last_purchase_date,
        scored_customers.recency_days,
        scored_customers.frequency,
        scored_customers.monetary,

        scores.r_score,
        scores.f_score,
        scores.m_score,
        ((scores.f_score + scores.m_score) / 2.0)::numeric(3, 1) as fm_score,
        scores.r_score::text || scores.f_score::text || scores.m_score::text as rfm_cell,
        segment_matches.segment_name,
        '{{ var("rfm_rules_version") }}' as rules_version

    from scored_customers
    left join scores
        on
            scored_customers.customer_key = scores.customer_key
            and scored_customers.period_end_date = scores.period_end_date
    left join segment_matches
        on
            scored_customers.customer_key = segment_matches.customer_key
            and scored_customers.period_end_date = segment_matches.period_end_date
            and segment_matches.match_rank = 1

)

select * from final
