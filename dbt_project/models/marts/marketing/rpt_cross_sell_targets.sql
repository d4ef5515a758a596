-- Cross-sell contact list: the suggestions of fct_cross_sell_gaps for the
-- customers who may be sent marketing today (dim_customer.is_marketing_opt_in),
-- one row per customer and suggested category. Customers without consent,
-- or who opted out, are never in it
-- (tests/marketing/assert_contact_lists_only_opted_in.sql checks this).
with

cross_sell_gaps as (

    select * from {{ ref('fct_cross_sell_gaps') }}

),

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

final as (

    select
        cross_sell_gaps.customer_key,
        cross_sell_gaps.suggestion_rank,
        cross_sell_gaps.suggested_category,
        cross_sell_gaps.lookalike_share,
        cross_sell_gaps.lookalike_count,
        cross_sell_gaps.categories_bought,
        cross_sell_gaps.segment_name,
        cross_sell_gaps.value_band,
        dim_customer.loyalty_tier,
        dim_customer.home_district,
        dim_customer.is_marketing_opt_in,
        cross_sell_gaps.as_of_date

    from cross_sell_gaps
    inner join dim_customer
        on cross_sell_gaps.customer_key = dim_customer.customer_key
    where dim_customer.is_marketing_opt_in

)

select * from final
