-- Value deciles of the customers who bought in the trailing
-- var('rfm_lookback_days') days (365: the trailing 12 months), by their net
-- revenue in that window (sales less returns, HKD). Decile 10 is the top
-- tenth: the high-end customers. Ties are split by customer_key so a re-run
-- gives the same deciles. value_band groups deciles for look-alike
-- comparisons: high (8-10), mid (4-7), low (1-3).
with

purchase_summary as (

    select * from {{ ref('int_customers__purchase_summary') }}

),

buyers as (

    select * from purchase_summary
    where purchase_count_lookback > 0

),

ranked as (

    select
        buyers.customer_key,
        buyers.net_revenue_lookback,
        buyers.purchase_count_lookback,
        ntile(10) over (
            order by buyers.net_revenue_lookback, buyers.customer_key
        ) as value_decile,
        buyers.as_of_date

    from buyers

),

thresholds as (

    select min(ranked.net_revenue_lookback) as high_end_threshold
    from ranked
    where ranked.value_decile = 10

),

final as (

    select
        ranked.customer_key,
        ranked.net_revenue_lookback as net_revenue_12m,
        ranked.purchase_count_lookback as purchase_count_12m,
        ranked.value_decile,
        case
            when ranked.value_decile >= 8 then 'high'
            when ranked.value_decile >= 4 then 'mid'
            else 'low'
        end as value_band,
        ranked.value_decile = 10 as is_high_end,
        thresholds.high_end_threshold,
        {{ var('rfm_lookback_days') }} as lookback_days,
        ranked.as_of_date

    from ranked
    cross join thresholds

)

select * from final
