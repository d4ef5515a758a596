-- ROPO (research online, purchase offline): one row per store purchase by an
-- identified customer (a till receipt with at least one SALE line and a
-- customer_key), with whether the same person had a web session, and viewed
-- products, within var('ropo_window_days') (default 7) before it, and whether
-- they viewed a sku, or a category, bought on the receipt. Depends on the
-- identity map as it is today, so it is rebuilt whole each night.
{%- set window_days = var('ropo_window_days', 7) | int %}
with

sales as (

    select * from {{ ref('fct_sales') }}

),

sessions as (

    select * from {{ ref('fct_web_sessions') }}

),

product_views as (

    select * from {{ ref('int_web__product_views') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

purchase_lines as (

    select sales.*
    from sales
    where
        sales.channel = 'store'
        and sales.customer_key is not null
        and not sales.is_return
        and not sales.is_void

),

purchases as (

    select
        purchase_lines.order_key,
        purchase_lines.order_ref,
        purchase_lines.customer_key,
        purchase_lines.store_code,
        min(purchase_lines.sold_at) as purchased_at,
        min(purchase_lines.business_date) as business_date,
        sum(purchase_lines.quantity) as item_quantity,
        sum(purchase_lines.net_amount) as net_amount

    from purchase_lines
    group by 1, 2, 3, 4

),

customer_sessions as (

    select
        sessions.session_key,
        sessions.customer_key,
        sessions.started_at,
        sessions.has_product_view

    from sessions
    where sessions.customer_key is not null

),

customer_views as (

    select
        customer_sessions.customer_key,
        product_views.sku,
        coalesce(products.category, 'unknown') as category,
        product_views.first_viewed_at,
        customer_sessions.started_at as session_started_at

    from product_views
    inner join customer_sessions
        on product_views.session_key = customer_sessions.session_key
    left join products
        on product_views.sku = products.sku

),

sessions_before as (

    -- sessions that started within the window before the purchase
    select
        purchases.order_key,
        count(*) as web_sessions,
        count(*) filter (where customer_sessions.has_product_view) as product_view_sessions,
        max(customer_sessions.started_at) as last_session_started_at

    from purchases
    inner join customer_sessions
        on
            purchases.customer_key = customer_sessions.customer_key
            and purchases.purchased_at > customer_sessions.started_at
            and purchases.purchased_at - interval '{{ window_days }} days'
            <= customer_sessions.started_at
    group by 1

),

views_before as (

    -- products the customer viewed before the purchase in a session of
    -- sessions_before (started within the window): a view late in a session
    -- that began before the window does not count, so a viewed sku or
    -- category always comes with a product-view session before the purchase
    select
        purchases.order_key,
        customer_views.sku,
        customer_views.category,
        max(customer_views.first_viewed_at) as last_viewed_at

    from purchases
    inner join customer_views
        on
            purchases.customer_key = customer_views.customer_key
            and purchases.purchased_at > customer_views.first_viewed_at
            and purchases.purchased_at > customer_views.session_started_at
            and purchases.purchased_at - interval '{{ window_days }} days'
            <= customer_views.session_started_at
    group by 1, 2, 3

),

bought_products as (

    select distinct
        purchase_lines.order_key,
        purchase_lines.sku,
        purchase_lines.category

    from purchase_lines

),

bought_categories as (

    -- an unknown sku says nothing about the category
    select distinct
        bought_products.order_key,
        bought_products.category

    from bought_products
    where bought_products.category <> 'unknown'

),

views_of_bought_products as (

    select
        views_before.order_key,
        bool_or(bought_products.sku is not null) as viewed_same_sku,
        bool_or(bought_categories.category is not null) as viewed_same_category,
        max(views_before.last_viewed_at) as last_product_view_at

    from views_before
    left join bought_products
        on
            views_before.order_key = bought_products.order_key
            and views_before.sku = bought_products.sku
    left join bought_categories
        on
            views_before.order_key = bought_categories.order_key
            and views_before.category = bought_categories.category
    group by 1

),

final as (

    select
        purchases.order_key,
        purchases.order_ref,
        purchases.customer_key,
        purchases.store_code,
        purchases.purchased_at,
        purchases.business_date,
        purchases.item_quantity,
        purchases.net_amount,
        {{ window_days }} as window_days,
        coalesce(sessions_before.web_sessions, 0) as web_sessions_before,
        coalesce(sessions_before.product_view_sessions, 0) as product_view_sessions_before,
        sessions_before.last_session_started_at,
        views_of_bought_products.last_product_view_at,
        coalesce(sessions_before.product_view_sessions, 0) > 0 as is_ropo,
        coalesce(views_of_bought_products.viewed_same_sku, false) as viewed_same_sku,
        coalesce(views_of_bought_products.viewed_same_category, false) as viewed_same_category,
        {% if business_date() is none -%}
            (
                select max(all_purchases.business_date) as max_business_date
                from purchases as all_purchases
            )
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from purchases
    left join sessions_before
        on purchases.order_key = sessions_before.order_key
    left join views_of_bought_products
        on purchases.order_key = views_of_bought_products.order_key

)

select * from final
