-- The dates the customer and marketing marts are computed "as of": the end
-- of each of the last var('customer_history_months') months before the
-- business date that hold sales, and the business date itself (the latest
-- period, month to date). With var('business_date') set the as-of date is
-- that HK date; without it, the latest business_date in fct_sales. Never
-- now(): a re-run or backfill of a day rebuilds the same periods.
with

sales as (

    select * from {{ ref('fct_sales') }}

),

bounds as (

    select
        min(sales.business_date) as first_sales_date,
        {% if business_date() is none -%}
            max(sales.business_date)
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from sales

),

month_ends as (

    select
        (month_starts.month_start + interval '1 month' - interval '1 day')::date
            as period_end_date,
        bounds.as_of_date

    from bounds
    cross join lateral generate_series(
        greatest(
            date_trunc('month', bounds.first_sales_date),
            date_trunc('month', bounds.as_of_date)
            - interval '{{ var("customer_history_months") }} months'
        ),
        date_trunc('month', bounds.as_of_date) - interval '1 month',
        interval '1 month'
    ) as month_starts (month_start)

),

period_ends as (

    select
        month_ends.period_end_date,
        true as is_month_end,
        false as is_as_of_date,
        month_ends.as_of_date

    from month_ends

    union all

    select
        bounds.as_of_date as period_end_date,
        bounds.as_of_date
        = (date_trunc('month', bounds.as_of_date) + interval '1 month' - interval '1 day')::date
            as is_month_end,
        true as is_as_of_date,
        bounds.as_of_date

    from bounds
    where bounds.as_of_date is not null

),

final as (

    select
        period_ends.period_end_date,
        date_trunc('month', period_ends.period_end_date)::date as period_month,
        period_ends.is_month_end,
        period_ends.is_as_of_date,
        -- the instant the period ends: the next HK midnight
        (period_ends.period_end_date + 1)::timestamp at time zone 'Asia/Hong_Kong'
            as period_end_at,
        period_ends.as_of_date

    from period_ends

)

select * from final
