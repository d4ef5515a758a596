-- Category breadth by channel for the customers who bought both online and
-- in store: only the resolved identity shows these as one person (the shop
-- account online, the loyalty card at the till). breadth_pattern flags the
-- customers who buy narrowly (1-2 categories) in one channel and broadly
-- (4 or more of the 8) in the other; everyone else is 'similar'.
with

category_purchases as (

    select * from {{ ref('int_customers__category_purchases') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

customer_categories as (

    select
        category_purchases.customer_key,
        category_purchases.category,
        bool_or(category_purchases.channel = 'online') as is_bought_online,
        bool_or(category_purchases.channel = 'store') as is_bought_in_store

    from category_purchases
    group by 1, 2

),

breadth as (

    select
        customer_categories.customer_key,
        count(*) as category_count,
        count(*) filter (where customer_categories.is_bought_online) as online_category_count,
        count(*) filter (where customer_categories.is_bought_in_store) as store_category_count,
        count(*) filter (
            where customer_categories.is_bought_online and customer_categories.is_bought_in_store
        ) as shared_category_count,
        string_agg(
            customer_categories.category, ', ' order by customer_categories.category
        ) filter (
            where customer_categories.is_bought_online
            and not customer_categories.is_bought_in_store
        ) as online_only_categories,
        string_agg(
            customer_categories.category, ', ' order by customer_categories.category
        ) filter (
            where customer_categories.is_bought_in_store
            and not customer_categories.is_bought_online
        ) as store_only_categories

    from customer_categories
    group by 1

),

final as (

    select
        breadth.customer_key,
        breadth.category_count,
        breadth.online_category_count,
        breadth.store_category_count,
        breadth.shared_category_count,
        breadth.store_category_count - breadth.online_category_count as breadth_difference,
        case
            when
                breadth.online_category_count <= 2 and breadth.store_category_count >= 4
                then 'narrow_online_broad_store'
            when
                breadth.store_category_count <= 2 and breadth.online_category_count >= 4
                then 'narrow_store_broad_online'
            else 'similar'
        end as breadth_pattern,
        breadth.online_only_categories,
        breadth.store_only_categories,
        as_of.as_of_date

    from breadth
    cross join as_of
    where breadth.online_category_count > 0 and breadth.store_category_count > 0

)

select * from final
