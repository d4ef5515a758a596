{#-
    Do complainants buy less afterwards? One row per complainant whose first
    complaint can be measured: net sales in the N days before and the N days
    after the HK date of the first complaint (N =
    var('complaint_impact_window_days'), default 30; the complaint day itself
    is in neither window), next to the average of matched non-complainants
    over the same calendar windows.

    Matching (exact, per cohort = first-complaint date):
      - prior_spend_decile: 1..10 = decile of net sales in the before window
        among every eligible customer with positive net sales in it
        (complainants and non-complainants together); 0 = none.
      - channel_mix: where the customer bought in the before window,
        'online', 'store', 'both' or 'none'.
    Eligible: the customer is in dim_customer and was first seen on or before
    the start of the before window; both windows lie inside the sales history
    (before window starting on or after the first sales date, after window
    ending on or before the as-of date). Comparison customers never
    complained (as known by the as-of date).
    Method and limits: DECISIONLOG.md, "Customer service".
-#}
{%- set window_days = var('complaint_impact_window_days', 30) | int %}
with

complaints as (

    select * from {{ ref('fct_complaints') }}

),

sales as (

    select * from {{ ref('fct_sales') }}

),

customers as (

    select * from {{ ref('dim_customer') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

ranked_complaints as (

    select
        complaints.customer_key,
        complaints.business_date,
        complaints.severity,
        complaints.category,
        row_number() over (
            partition by complaints.customer_key
            order by complaints.created_at, complaints.ticket_id
        ) as complaint_no

    from complaints
    where complaints.customer_key is not null

),

complainants as (

    select
        ranked_complaints.customer_key,
        ranked_complaints.business_date as first_complaint_date,
        ranked_complaints.severity as first_complaint_severity,
        ranked_complaints.category as first_complaint_category

    from ranked_complaints
    where ranked_complaints.complaint_no = 1

),

persons as (

    select
        customers.customer_key,
        (customers.first_seen_at at time zone 'Asia/Hong_Kong')::date as first_seen_date

    from customers

),

non_complainants as (

    select persons.*
    from persons
    left join complainants
        on persons.customer_key = complainants.customer_key
    where complainants.customer_key is null

),

customer_daily_sales as (

    select
        sales.customer_key,
        sales.business_date,
        sum(sales.net_amount) as net_amount,
        bool_or(sales.channel = 'online') as bought_online,
        bool_or(sales.channel = 'store') as bought_in_store

    from sales
    where sales.customer_key is not null and not sales.is_void
    group by 1, 2

),

sales_history as (

    select min(customer_daily_sales.business_date) as first_sales_date
    from customer_daily_sales

),

-- first-complaint dates whose before and after windows are both observed
cohorts as (

    select distinct complainants.first_complaint_date as cohort_date
    from complainants
    cross join sales_history
    cross join as_of
    where
        complainants.first_complaint_date - {{ window_days }} >= sales_history.first_sales_date
        and complainants.first_complaint_date + {{ window_days }} <= as_of.as_of_date

),

-- the days of each cohort's two windows, as rows: an equality join to the
-- daily sales is hashed, where a range join compares every cohort with every day
cohort_window_days as (

    select
        cohorts.cohort_date,
        (cohorts.cohort_date + window_offsets.day_offset)::date as business_date

    from cohorts
    cross join
        generate_series(-{{ window_days }}, {{ window_days }}) as window_offsets (day_offset)
    where window_offsets.day_offset <> 0

),

window_sales as (

    select
        cohort_days.cohort_date,
        customer_daily_sales.customer_key,
        coalesce(sum(customer_daily_sales.net_amount) filter (
            where customer_daily_sales.business_date < cohort_days.cohort_date
        ), 0) as net_sales_before,
        coalesce(sum(customer_daily_sales.net_amount) filter (
            where customer_daily_sales.business_date > cohort_days.cohort_date
        ), 0) as net_sales_after,
        coalesce(bool_or(customer_daily_sales.bought_online) filter (
            where customer_daily_sales.business_date < cohort_days.cohort_date
        ), false) as bought_online_before,
        coalesce(bool_or(customer_daily_sales.bought_in_store) filter (
            where customer_daily_sales.business_date < cohort_days.cohort_date
        ), false) as bought_in_store_before

    from cohort_window_days as cohort_days
    inner join customer_daily_sales
        on cohort_days.business_date = customer_daily_sales.business_date
    group by 1, 2

),

complainant_members as (

    select
        cohorts.cohort_date,
        complainants.customer_key,
        true as is_complainant

    from complainants
    inner join cohorts
        on complainants.first_complaint_date = cohorts.cohort_date
    inner join persons
        on complainants.customer_key = persons.customer_key
    where persons.first_seen_date <= cohorts.cohort_date - {{ window_days }}

),

-- non-complainants who bought in either window; the others are counted below
comparison_members as (

    select
        window_sales.cohort_date,
        window_sales.customer_key,
        false as is_complainant

    from window_sales
    inner join non_complainants
        on window_sales.customer_key = non_complainants.customer_key
    where non_complainants.first_seen_date <= window_sales.cohort_date - {{ window_days }}

),

members as (

    select * from complainant_members
    union all
    select * from comparison_members

),

member_windows as (

    select
        members.cohort_date,
        members.customer_key,
        members.is_complainant,
        coalesce(window_sales.net_sales_before, 0) as net_sales_before,
        coalesce(window_sales.net_sales_after, 0) as net_sales_after,
        case
            when
                window_sales.bought_online_before and window_sales.bought_in_store_before
                then 'both'
            when window_sales.bought_online_before then 'online'
            when window_sales.bought_in_store_before then 'store'
            else 'none'
        end as channel_mix

    from members
    left join window_sales
        on
            members.cohort_date = window_sales.cohort_date
            and members.customer_key = window_sales.customer_key

),

banded as (

    select
        member_windows.*,
        case
            when member_windows.net_sales_before > 0
                then ntile(10) over (
                    partition by member_windows.cohort_date, member_windows.net_sales_before > 0
                    order by member_windows.net_sales_before
                )
            else 0
        end as prior_spend_decile

    from member_windows

),

comparison_member_counts as (

    select
        comparison_members.cohort_date,
        count(*) as buying_customers

    from comparison_members
    group by 1

),

eligible_comparison_counts as (

    select
        cohorts.cohort_date,
        count(*) as eligible_customers

    from cohorts
    inner join non_complainants
        on non_complainants.first_seen_date <= cohorts.cohort_date - {{ window_days }}
    group by 1

),

-- eligible non-complainants without any purchase in either window: zero
-- before and after, decile 0, channel mix 'none'
silent_comparisons as (

    select
        eligible_comparison_counts.cohort_date,
        eligible_comparison_counts.eligible_customers
        - coalesce(comparison_member_counts.buying_customers, 0) as silent_customers

    from eligible_comparison_counts
    left join comparison_member_counts
        on eligible_comparison_counts.cohort_date = comparison_member_counts.cohort_date

),

comparison_rows as (

    select
        banded.cohort_date,
        banded.prior_spend_decile,
        banded.channel_mix,
        1 as customers,
        banded.net_sales_before,
        banded.net_sales_after,
        case when banded.net_sales_after > 0 then 1 else 0 end as bought_after

    from banded
    where not banded.is_complainant

    union all

    select
        silent_comparisons.cohort_date,
        0 as prior_spend_decile,
        'none' as channel_mix,
        silent_comparisons.silent_customers as customers,
        0 as net_sales_before,
        0 as net_sales_after,
        0 as bought_after

    from silent_comparisons

),

comparison_cells as (

    select
        comparison_rows.cohort_date,
        comparison_rows.prior_spend_decile,
        comparison_rows.channel_mix,
        sum(comparison_rows.customers) as comparison_customers,
        sum(comparison_rows.net_sales_before) as net_sales_before,
        sum(comparison_rows.net_sales_after) as net_sales_after,
        sum(comparison_rows.bought_after) as customers_buying_after

    from comparison_rows
    group by 1, 2, 3
    having sum(comparison_rows.customers) > 0

),

final as (

    select
        banded.customer_key,
        complainants.first_complaint_date,
        complainants.first_complaint_severity,
        complainants.first_complaint_category,
        {{ window_days }} as window_days,
        banded.prior_spend_decile,
        banded.channel_mix,

        banded.net_sales_before,
        banded.net_sales_after,
        banded.net_sales_after - banded.net_sales_before as net_sales_change,
        banded.net_sales_after > 0 as bought_after,

        coalesce(comparison_cells.comparison_customers, 0) as comparison_customers,
        comparison_cells.comparison_customers is not null as is_matched,
        round(
            comparison_cells.net_sales_before / comparison_cells.comparison_customers, 2
        ) as comparison_avg_net_sales_before,
        round(
            comparison_cells.net_sales_after / comparison_cells.comparison_customers, 2
        ) as comparison_avg_net_sales_after,
        round(
            (comparison_cells.net_sales_after - comparison_cells.net_sales_before)
            / comparison_cells.comparison_customers,
            2
        ) as comparison_avg_net_sales_change,
        round(
            comparison_cells.customers_buying_after::numeric
            / comparison_cells.comparison_customers,
            4
        ) as comparison_share_buying_after,

        as_of.as_of_date

    from banded
    inner join complainants
        on banded.customer_key = complainants.customer_key
    cross join as_of
    left join comparison_cells
        on
            banded.cohort_date = comparison_cells.cohort_date
            and banded.prior_spend_decile = comparison_cells.prior_spend_decile
            and banded.channel_mix = comparison_cells.channel_mix
    where banded.is_complainant

)

select * from final
