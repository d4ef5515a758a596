{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='sales_unit_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['sales_unit_key']},
            {'columns': ['load_id']},
            {'columns': ['business_date']},
        ],
        post_hook=[
            "{{ incremental_forget_later_loads() }}",
            "analyze {{ this }}",
        ],
    )
}}
{#-
    Sales lines of both channels with the money rules applied, before any
    join to the product catalogue or the identity map (fct_sales adds those,
    so a product or person change never leaves stale rows here).

    Incremental by unit (macros/incremental_reprocessing.sql): an online
    order (all its lines) or a POS trading day (all stores' lines of the
    current exports). A unit touched by a recent load is rebuilt whole: an
    order cancelled or returned long after it was placed, a re-export that
    drops receipts. Lines of cancelled orders stay here (is_cancelled, no
    money), so an order never vanishes; fct_sales leaves them out. An order
    deleted in the shop counts as cancelled; a line removed from its order
    (raw.shop_deletions, stg_shop__order_items) stays as a VOID line (no
    quantity or money), like a line cancelled at the till, so the order's
    rows are replaced even when every line was removed (delete+insert only
    replaces units that still have rows).
-#}
{%- set settled_load_ids = incremental_settled_load_ids() -%}
{%- set is_rewind = incremental_is_rewind() -%}
with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

pos_lines as (

    select * from {{ ref('stg_pos__lines') }}

),

{% if is_incremental() %}

    changed_orders as (

        select orders.order_id
        from orders
        where orders.load_id not in ({{ settled_load_ids }}) or {{ is_rewind }}

        union

        select order_items.order_id
        from order_items
        where order_items.load_id not in ({{ settled_load_ids }})

    ),

    changed_trading_days as (

        select distinct pos_lines.file_business_date
        from pos_lines
        where pos_lines.load_id not in ({{ settled_load_ids }}) or {{ is_rewind }}

    ),

{% endif %}

online_lines as (

    -- a cancelled order never became a sale, nor did a line removed from its
    -- order: they keep no quantity or money
    select
        'online|' || orders.order_id::text as sales_unit_key,
        'online' as channel,
        orders.order_id::text as order_ref,
        order_items.line_no,
        orders.ordered_at as sold_at,
        null::text as store_code,
        order_items.sku,
        case
            when orders.is_cancelled or order_items.is_deleted_in_shop then 0
            else order_items.quantity
        end as quantity,
        order_items.unit_price,
        case
            when orders.is_cancelled or order_items.is_deleted_in_shop then 0
            else order_items.quantity * order_items.unit_price
        end::numeric(12, 2) as gross_amount,
        case
            when orders.is_cancelled or order_items.is_deleted_in_shop then 0
            else order_items.discount_amount
        end::numeric(12, 2) as discount_amount,
        false as is_return,
        coalesce(order_items.is_deleted_in_shop, false) as is_void,
        orders.is_cancelled,
        orders.payment_method,
        orders.order_status,
        'shop:' || orders.customer_id::text as identity_id,
        greatest(orders.load_id, order_items.load_id) as load_id

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    {% if is_incremental() %}
        where orders.order_id in (select changed_orders.order_id from changed_orders)
    {% endif %}

),

store_lines as (

    -- a VOID line stays visible but sells nothing: zero quantity and money
    -- (stg_pos__lines already zeroes its amounts)
    select
        'store|' || pos_lines.file_business_date::text as sales_unit_key,
        'store' as channel,
        pos_lines.receipt_no as order_ref,
        pos_lines.line_no,
        pos_lines.sold_at,
        pos_lines.store_code,
        pos_lines.sku,
        case when pos_lines.is_void then 0 else pos_lines.quantity end as quantity,
        pos_lines.unit_price,
        pos_lines.gross_amount,
        pos_lines.discount_amount,
        pos_lines.is_return,
        pos_lines.is_void,
        false as is_cancelled,
        pos_lines.payment_method,
        null::text as order_status,
        'loyalty:' || pos_lines.loyalty_card_no as identity_id,
        pos_lines.load_id

    from pos_lines
    {% if is_incremental() %}
        where pos_lines.file_business_date in (
            select changed_trading_days.file_business_date from changed_trading_days
        )
    {% endif %}

),

sales_lines as (

    select * from online_lines
    union all
    select * from store_lines

),

final as (

    select
        md5(
            sales_lines.channel || '|' || sales_lines.order_ref
            || '|' || sales_lines.line_no::text
        ) as sales_line_key,
        sales_lines.sales_unit_key,
        sales_lines.channel,
        sales_lines.order_ref,
        sales_lines.line_no,
        sales_lines.sold_at,
        (sales_lines.sold_at at time zone 'Asia/Hong_Kong')::date as business_date,
        sales_lines.store_code,
        sales_lines.sku,
        sales_lines.quantity,
        sales_lines.unit_price,
        sales_lines.gross_amount,
        sales_lines.discount_amount,
        sales_lines.gross_amount - sales_lines.discount_amount as net_amount,
        sales_lines.is_return,
        sales_lines.is_void,
        sales_lines.is_cancelled,
        sales_lines.payment_method,
        sales_lines.order_status,
        sales_lines.identity_id,
        sales_lines.load_id

    from sales_lines

)

select * from final
