-- Cross-sell gaps: for each customer who bought in only one or two product
-- categories, the categories most often bought by their look-alikes that
-- they have not bought. Look-alikes are the customers of the same RFM
-- segment (fct_customer_rfm) and value band (fct_customer_value) who bought
-- in three or more categories; a group needs at least
-- var('cross_sell_min_lookalikes') of them. lookalike_share = share of the
-- look-alikes who bought the category. Top var('cross_sell_max_suggestions')
-- categories per customer.
-- Assumption: only purchases from us are observable. A customer may buy the
-- "missing" categories elsewhere; a gap is a gap in our share of wallet,
-- not proof of need.
with

category_purchases as (

    select * from {{ ref('int_customers__category_purchases') }}

),

customer_rfm as (

    select * from {{ ref('fct_customer_rfm') }}

),

customer_value as (

    select * from {{ ref('fct_customer_value') }}

),

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

customer_categories as (

    select distinct
        category_purchases.customer_key,
        category_purchases.category

    from category_purchases

),

profiles as (

    select
        customer_rfm.customer_key,
        customer_rfm.segment_name,
        customer_value.value_band,
        count(customer_categories.category) as category_count,
        string_agg(
            customer_categories.category, ', ' order by customer_categories.category
        ) as categories_bought,
        customer_rfm.as_of_date

    from customer_rfm
    inner join customer_value
        on customer_rfm.customer_key = customer_value.customer_key
    inner join customer_categories
        on customer_rfm.customer_key = customer_categories.customer_key
    group by 1, 2, 3, 6

),

lookalikes as (

    select * from profiles
    where category_count >= 3

),

lookalike_groups as (

    select
        lookalikes.segment_name,
        lookalikes.value_band,
        count(*) as lookalike_count

    from lookalikes
    group by 1, 2

),

lookalike_category_shares as (

    select
        lookalikes.segment_name,
        lookalikes.value_band,
        customer_categories.category,
        count(*)::numeric / lookalike_groups.lookalike_count as lookalike_share,
        lookalike_groups.lookalike_count

    from lookalikes
    inner join customer_categories
        on lookalikes.customer_key = customer_categories.customer_key
    inner join lookalike_groups
        on
            lookalikes.segment_name = lookalike_groups.segment_name
            and lookalikes.value_band = lookalike_groups.value_band
    group by 1, 2, 3, 5

),

narrow_buyers as (

    select * from profiles
    where category_count <= 2

),

gaps as (

    select
        narrow_buyers.customer_key,
        narrow_buyers.segment_name,
        narrow_buyers.value_band,
        narrow_buyers.category_count,
        narrow_buyers.categories_bought,
        lookalike_category_shares.category as suggested_category,
        lookalike_category_shares.lookalike_share,
        lookalike_category_shares.lookalike_count,
        row_number() over (
            partition by narrow_buyers.customer_key
            order by
                lookalike_category_shares.lookalike_share desc,
                lookalike_category_shares.category asc
        ) as suggestion_rank,
        narrow_buyers.as_of_date

    from narrow_buyers
    inner join lookalike_category_shares
        on
            narrow_buyers.segment_name = lookalike_category_shares.segment_name
            and narrow_buyers.value_band = lookalike_category_shares.value_band
    left join customer_categories
        on
            narrow_buyers.customer_key = customer_categories.customer_key
            and lookalike_category_shares.category = customer_categories.category
    where
        customer_categories.category is null
        and lookalike_category_shares.lookalike_count >= {{ var('cross_sell_min_lookalikes') }}

),

final as (

    select
        gaps.customer_key,
        gaps.suggestion_rank,
        gaps.suggested_category,
        round(gaps.lookalike_share, 4) as lookalike_share,
        gaps.lookalike_count,

        gaps.category_count,
        gaps.categories_bought,
        gaps.segment_name,
        gaps.value_band,

        dim_customer.is_marketing_opt_in,
        gaps.as_of_date

    from gaps
    inner join dim_customer
        on gaps.customer_key = dim_customer.customer_key
    where gaps.suggestion_rank <= {{ var('cross_sell_max_suggestions') }}

)

select * from final
