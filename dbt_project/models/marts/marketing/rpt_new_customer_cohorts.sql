-- New-customer cohorts: customers by the month of their first purchase, the
-- channel of that purchase and its main category (the category with the
-- largest net amount in the first order; ties by name), with how many came
-- back and what they spent in the 1st, 2nd and 3rd calendar month after.
--   retained_m<k>    = cohort customers with a purchase in month cohort + k;
--   net_revenue_m<k> = their net revenue (sales less returns) in that month.
-- A month after the business date's month is not observable yet: null. The
-- business date's own month counts to date (months_observed tells which).
-- "First purchase" is the first one in the sales history: has_full_lookback
-- is true when the history covers the var('rfm_lookback_days') days before
-- the cohort month, i.e. the customer did not buy in the year before.
with

customer_orders as (

    select * from {{ ref('int_customers__orders') }}

),

sales as (

    select * from {{ ref('fct_sales') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

history_start as (

    select min(customer_orders.business_date) as first_order_date
    from customer_orders

),

first_orders as (

    select
        customer_orders.customer_key,
        customer_orders.channel,
        customer_orders.order_ref,
        customer_orders.business_date,
        customer_orders.net_amount,
        row_number() over (
            partition by customer_orders.customer_key
            order by
                customer_orders.business_date,
                customer_orders.sold_at,
                customer_orders.order_key
        ) as order_rank

    from customer_orders
    where customer_orders.is_purchase

),

first_order_categories as (

    select
        first_orders.customer_key,
        sales.category,
        row_number() over (
            partition by first_orders.customer_key
            order by sum(sales.net_amount) desc, sales.category
        ) as category_rank

    from first_orders
    inner join sales
        on
            first_orders.channel = sales.channel
            and first_orders.order_ref = sales.order_ref
    where
        first_orders.order_rank = 1
        and not sales.is_return
        and not sales.is_void
    group by 1, 2

),

new_customers as (

    select
        first_orders.customer_key,
        date_trunc('month', first_orders.business_date)::date as cohort_month,
        first_orders.channel as first_channel,
        first_order_categories.category as first_category,
        first_orders.net_amount as first_order_net_amount

    from first_orders
    inner join first_order_categories
        on
            first_orders.customer_key = first_order_categories.customer_key
            and first_order_categories.category_rank = 1
    where first_orders.order_rank = 1

),

later_months as (

    select
        new_customers.customer_key,
        (
            extract(year from age(
                date_trunc('month', customer_orders.business_date),
                new_customers.cohort_month
            )) * 12
            + extract(month from age(
                date_trunc('month', customer_orders.business_date),
                new_customers.cohort_month
            ))
        )::int as month_number,
        bool_or(customer_orders.is_purchase) as has_purchase,
        sum(customer_orders.net_amount) as net_amount

    from new_customers
    inner join customer_orders
        on new_customers.customer_key = customer_orders.customer_key
    where
        customer_orders.business_date >= (new_customers.cohort_month + interval '1 month')
        and customer_orders.business_date < (new_customers.cohort_month + interval '4 months')
    group by 1, 2

),

customer_cohorts as (

    select
        new_customers.customer_key,
        new_customers.cohort_month,
        new_customers.first_channel,
        new_customers.first_category,
        new_customers.first_order_net_amount,
        coalesce(bool_or(later_months.has_purchase) filter (
            where later_months.month_number = 1
        ), false) as is_retained_m1,
        coalesce(bool_or(later_months.has_purchase) filter (
            where later_months.month_number = 2
        ), false) as is_retained_m2,
        coalesce(bool_or(later_months.has_purchase) filter (
            where later_months.month_number = 3
        ), false) as is_retained_m3,
        coalesce(sum(later_months.net_amount) filter (
            where later_months.month_number = 1
        ), 0) as net_revenue_m1,
        coalesce(sum(later_months.net_amount) filter (
            where later_months.month_number = 2
        ), 0) as net_revenue_m2,
        coalesce(sum(later_months.net_amount) filter (
            where later_months.month_number = 3
        ), 0) as net_revenue_m3

    from new_customers
    left join later_months
        on new_customers.customer_key = later_months.customer_key
    group by 1, 2, 3, 4, 5

),

cohorts as (

    select
        customer_cohorts.cohort_month,
        customer_cohorts.first_channel,
        customer_cohorts.first_category,
        count(*) as new_customers,
        sum(customer_cohorts.first_order_net_amount) as first_order_net_revenue,
        count(*) filter (where customer_cohorts.is_retained_m1) as retained_m1,
        count(*) filter (where customer_cohorts.is_retained_m2) as retained_m2,
        count(*) filter (where customer_cohorts.is_retained_m3) as retained_m3,
        sum(customer_cohorts.net_revenue_m1) as net_revenue_m1,
        sum(customer_cohorts.net_revenue_m2) as net_revenue_m2,
        sum(customer_cohorts.net_revenue_m3) as net_revenue_m3

    from customer_cohorts
    group by 1, 2, 3

),

observed as (

    select
        cohorts.*,
        (
            extract(year from age(date_trunc('month', as_of.as_of_date), cohorts.cohort_month))
            * 12
            + extract(month from age(date_trunc('month', as_of.as_of_date), cohorts.cohort_month))
        )::int as months_observed,
        cohorts.cohort_month - {{ var('rfm_lookback_days') }}
        >= history_start.first_order_date as has_full_lookback,
        as_of.as_of_date

    from cohorts
    cross join as_of
    cross join history_start

),

final as (

    select
        observed.cohort_month,
        observed.first_channel,
        observed.first_category,
        observed.new_customers,
        observed.first_order_net_revenue,

        case when observed.months_observed >= 1 then observed.retained_m1 end as retained_m1,
        case when observed.months_observed >= 2 then observed.retained_m2 end as retained_m2,
        case when observed.months_observed >= 3 then observed.retained_m3 end as retained_m3,
        case
            when observed.months_observed >= 1
                then round(observed.retained_m1::numeric / observed.new_customers, 4)
        end as retention_rate_m1,
        case
            when observed.months_observed >= 2
                then round(observed.retained_m2::numeric / observed.new_customers, 4)
        end as retention_rate_m2,
        case
            when observed.months_observed >= 3
                then round(observed.retained_m3::numeric / observed.new_customers, 4)
        end as retention_rate_m3,
        case when observed.months_observed >= 1 then observed.net_revenue_m1 end as net_revenue_m1,
        case when observed.months_observed >= 2 then observed.net_revenue_m2 end as net_revenue_m2,
        case when observed.months_observed >= 3 then observed.net_revenue_m3 end as net_revenue_m3,

        observed.months_observed,
        observed.has_full_lookback,
        observed.as_of_date

    from observed

)

select * from final
