-- Prospects contact list: known people who never bought (no order or
-- receipt of theirs up to the business date): identified web visitors
-- (a logged-in session links them), loyalty members and shop account
-- holders. Only those who may be sent marketing today
-- (dim_customer.is_marketing_opt_in); customers without consent, or who
-- opted out, are never in it
-- (tests/marketing/assert_contact_lists_only_opted_in.sql checks this).
with

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

customer_orders as (

    select * from {{ ref('int_customers__orders') }}

),

web_sessions as (

    select * from {{ ref('fct_web_sessions') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

buyers as (

    select distinct customer_orders.customer_key
    from customer_orders

),

customer_sessions as (

    select
        web_sessions.customer_key,
        count(*) as web_session_count,
        min(web_sessions.business_date) as first_web_session_date,
        max(web_sessions.business_date) as last_web_session_date,
        coalesce(sum(web_sessions.product_views), 0) as product_views,
        count(*) filter (where web_sessions.has_add_to_cart) as sessions_with_add_to_cart

    from web_sessions
    where web_sessions.customer_key is not null
    group by 1

),

final as (

    select
        dim_customer.customer_key,
        case
            when customer_sessions.customer_key is not null then 'identified_visitor'
            when dim_customer.has_loyalty_card then 'member'
            else 'account_holder'
        end as prospect_type,
        customer_sessions.customer_key is not null as is_identified_visitor,
        dim_customer.has_loyalty_card,
        dim_customer.has_shop_account,
        dim_customer.loyalty_tier,
        dim_customer.home_district,

        (dim_customer.first_seen_at at time zone 'Asia/Hong_Kong')::date as first_seen_date,
        coalesce(customer_sessions.web_session_count, 0) as web_session_count,
        customer_sessions.first_web_session_date,
        customer_sessions.last_web_session_date,
        coalesce(customer_sessions.product_views, 0) as product_views,
        coalesce(customer_sessions.sessions_with_add_to_cart, 0) as sessions_with_add_to_cart,

        dim_customer.is_marketing_opt_in,
        as_of.as_of_date

    from dim_customer
    cross join as_of
    left join buyers
        on dim_customer.customer_key = buyers.customer_key
    left join customer_sessions
        on dim_customer.customer_key = customer_sessions.customer_key
    where
        buyers.customer_key is null
        and dim_customer.is_marketing_opt_in
        and (dim_customer.has_shop_account or dim_customer.has_loyalty_card)

)

select * from final
