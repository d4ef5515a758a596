-- Month-to-month segment transitions: for each pair of consecutive period
-- ends in fct_customer_segment_history (month ends, then the business date),
-- how many customers moved from each segment to each segment. Customers
-- whose first purchase falls in the later period come from
-- '(not yet a customer)'.
with

segment_history as (

    select * from {{ ref('fct_customer_segment_history') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

period_pairs as (

    select
        period_ends.period_end_date as to_period_end_date,
        lag(period_ends.period_end_date) over (
            order by period_ends.period_end_date
        ) as from_period_end_date

    from period_ends

),

transitions as (

    select
        period_pairs.from_period_end_date,
        period_pairs.to_period_end_date,
        coalesce(from_history.segment_name, '(not yet a customer)') as from_segment,
        to_history.segment_name as to_segment,
        to_history.as_of_date

    from period_pairs
    inner join segment_history as to_history
        on period_pairs.to_period_end_date = to_history.period_end_date
    left join segment_history as from_history
        on
            to_history.customer_key = from_history.customer_key
            and period_pairs.from_period_end_date = from_history.period_end_date
    where period_pairs.from_period_end_date is not null

),

counted as (

    select
        transitions.from_period_end_date,
        transitions.to_period_end_date,
        transitions.from_segment,
        transitions.to_segment,
        count(*) as customers,
        transitions.as_of_date

    from transitions
    group by 1, 2, 3, 4, 6

),

final as (

    select
        counted.from_period_end_date,
        counted.to_period_end_date,
        counted.from_segment,
        counted.to_segment,
        counted.from_segment = counted.to_segment as is_same_segment,
        counted.customers,
        round(
            counted.customers::numeric / sum(counted.customers) over (
                partition by counted.to_period_end_date, counted.from_segment
            ),
            4
        ) as share_of_from_segment,
        counted.as_of_date

    from counted

)

select * from final
