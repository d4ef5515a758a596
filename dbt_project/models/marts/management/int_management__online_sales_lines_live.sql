{{ config(materialized='view', schema='intermediate') }}

-- Online order lines as the freshest shop extract has them, for the
-- real-time rpt_online_sales_today. Deliberately NOT built on the staging
-- views: those are frozen at the nightly business date by
-- known_by_business_date(), while this view must see every extracted row
-- as soon as it lands. It therefore applies the cleaning rules of
-- stg_shop__orders and stg_shop__order_items and the line rules of
-- fct_sales itself (keep them in step; the pytest
-- test_management_metrics.py proves the two paths agree). Unlike
-- fct_sales, lines of cancelled orders are kept, flagged is_cancelled, so
-- that the newest extracted version of every order is seen.
-- No secret in this view's definition: customer_key comes from the nightly
-- person map; an account created since the last nightly build gets a
-- stand-in key that is never written to a table.
with

source_orders as (

    select * from {{ source('shop', 'orders') }}

),

source_order_items as (

    select * from {{ source('shop', 'order_items') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

latest_orders as (

    -- the latest version of each order (stg_shop__orders' rule)
    select
        source_orders.*,
        row_number() over (
            partition by source_orders.order_id
            order by source_orders.updated_at desc, source_orders._load_id desc
        ) as version_rank

    from source_orders

),

orders as (

    select
        latest_orders.order_id,
        latest_orders.customer_id,
        lower(trim(latest_orders.status)) as order_status,
        lower(trim(latest_orders.status)) = 'cancelled' as is_cancelled,
        lower(trim(latest_orders.payment_method)) as payment_method,
        latest_orders.order_ts as ordered_at,
        latest_orders.updated_at

    from latest_orders
    where latest_orders.version_rank = 1

),

order_items as (

    select
        source_order_items.order_id,
        source_order_items.line_no,
        trim(source_order_items.sku) as sku,
        source_order_items.quantity,
        source_order_items.unit_price,
        coalesce(source_order_items.line_discount, 0) as discount_amount

    from source_order_items

),

lines as (

    -- the online line rules of fct_sales
    select
        'online' as channel,
        orders.order_id::text as order_ref,
        order_items.line_no,
        orders.ordered_at as sold_at,
        (orders.ordered_at at time zone 'Asia/Hong_Kong')::date as business_date,
        order_items.sku,
        order_items.quantity,
        order_items.unit_price,
        (order_items.quantity * order_items.unit_price)::numeric(12, 2) as gross_amount,
        order_items.discount_amount::numeric(12, 2) as discount_amount,
        false as is_return,
        false as is_void,
        orders.payment_method,
        orders.order_status,
        orders.is_cancelled,
        orders.customer_id,
        orders.updated_at as order_updated_at

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id

),

final as (

    select
        lines.channel,
        lines.order_ref,
        lines.line_no,
        lines.sold_at,
        lines.business_date,
        lines.sku,
        lines.quantity,
        lines.unit_price,
        lines.gross_amount,
        lines.discount_amount,
        lines.gross_amount - lines.discount_amount as net_amount,
        lines.is_return,
        lines.is_void,
        lines.payment_method,
        lines.order_status,
        lines.is_cancelled,
        -- no customer_id: the order of a customer whose erasure was carried out
        case
            when lines.customer_id is not null
                then coalesce(
                    person_map.customer_key,
                    'pending:shop:' || lines.customer_id::text
                )
        end as customer_key,
        lines.customer_id is not null and person_map.customer_key is null
            as is_customer_pending,
        lines.customer_id is null as is_customer_erased,
        lines.order_updated_at

    from lines
    left join person_map
        on 'shop:' || lines.customer_id::text = person_map.identity_id

)

select * from final
