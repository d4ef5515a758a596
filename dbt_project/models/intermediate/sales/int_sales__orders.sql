{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='sales_unit_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['sales_unit_key']},
            {'columns': ['load_id']},
        ],
        post_hook=[
            "{{ incremental_forget_later_loads() }}",
            "analyze {{ this }}",
        ],
    )
}}
{#-
    One row per online order or till receipt, from int_sales__lines plus the
    order-level amounts of the shop (coupon discount, shipping fee), before
    the join to the identity map (fct_orders adds customer_key).

    Incremental by the same units as int_sales__lines (an online order, a POS
    trading day): a unit with a line from a recent load is rebuilt whole, so
    receipts dropped by a re-export disappear.
-#}
{%- set settled_load_ids = incremental_settled_load_ids() -%}
{%- set is_rewind = incremental_is_rewind() -%}
with

sales_lines as (

    select * from {{ ref('int_sales__lines') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

{% if is_incremental() %}

    changed_units as (

        select distinct sales_lines.sales_unit_key
        from sales_lines
        where sales_lines.load_id not in ({{ settled_load_ids }}) or {{ is_rewind }}

    ),

{% endif %}

unit_lines as (

    select sales_lines.*
    from sales_lines
    {% if is_incremental() %}
        where sales_lines.sales_unit_key in (
            select changed_units.sales_unit_key from changed_units
        )
    {% endif %}

),

order_totals as (

    select
        unit_lines.sales_unit_key,
        unit_lines.channel,
        unit_lines.order_ref,
        min(unit_lines.sold_at) as ordered_at,
        max(unit_lines.store_code) as store_code,
        max(unit_lines.identity_id) as identity_id,
        max(unit_lines.payment_method) as payment_method,
        max(unit_lines.order_status) as order_status,
        count(*) as line_count,
        sum(unit_lines.quantity) as item_quantity,
        sum(unit_lines.gross_amount) as gross_amount,
        sum(unit_lines.discount_amount) as line_discount_amount,
        bool_or(unit_lines.is_cancelled) as is_cancelled,
        bool_or(unit_lines.is_return) as has_return_line,
        bool_and(unit_lines.is_void) as has_only_void_lines,
        max(unit_lines.load_id) as load_id

    from unit_lines
    group by 1, 2, 3

),

joined as (

    -- a cancelled order, or one whose every line was removed in the shop,
    -- charged nothing: no coupon, no shipping fee
    select
        order_totals.*,
        case
            when order_totals.is_cancelled or order_totals.has_only_void_lines then 0
            else coalesce(orders.order_discount_amount, 0)
        end::numeric(12, 2) as order_discount_amount,
        case
            when order_totals.is_cancelled or order_totals.has_only_void_lines then 0
            else coalesce(orders.shipping_fee, 0)
        end::numeric(12, 2) as shipping_fee

    from order_totals
    left join orders
        on
            order_totals.channel = 'online'
            and order_totals.order_ref = orders.order_id::text

),

final as (

    select
        md5(joined.channel || '|' || joined.order_ref) as order_key,
        joined.sales_unit_key,
        joined.channel,
        joined.order_ref,
        joined.ordered_at,
        (joined.ordered_at at time zone 'Asia/Hong_Kong')::date as business_date,
        joined.store_code,
        joined.payment_method,
        joined.order_status,
        joined.line_count,
        joined.item_quantity,
        joined.gross_amount,
        joined.line_discount_amount,
        joined.order_discount_amount,
        (joined.line_discount_amount + joined.order_discount_amount)::numeric(12, 2)
            as discount_amount,
        (joined.gross_amount - joined.line_discount_amount - joined.order_discount_amount)
        ::numeric(12, 2) as net_amount,
        joined.shipping_fee,
        joined.is_cancelled,
        case
            when joined.channel = 'online' then coalesce(joined.order_status = 'returned', false)
            else joined.has_return_line
        end as has_return,
        joined.identity_id,
        joined.load_id

    from joined

)

select * from final
