-- One row per online order or till receipt. Kept incrementally in
-- int_sales__orders; this model adds the customer as the identity map knows
-- them today. Cancelled online orders are kept (is_cancelled) with no money;
-- online amounts include the order-level coupon (fct_sales does not).
-- With var('business_date') set, no order dated after that HK date.
with

orders as (

    select * from {{ ref('int_sales__orders') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

dated_orders as (

    select orders.*
    from orders
    where {{ business_date_filter('orders.business_date') }}

),

final as (

    select
        dated_orders.order_key,
        dated_orders.channel,
        dated_orders.order_ref,
        person_map.customer_key,
        dated_orders.business_date,
        dated_orders.ordered_at,
        dated_orders.store_code,
        dated_orders.payment_method,
        dated_orders.order_status,
        dated_orders.line_count,
        dated_orders.item_quantity,
        dated_orders.gross_amount,
        dated_orders.line_discount_amount,
        dated_orders.order_discount_amount,
        dated_orders.discount_amount,
        dated_orders.net_amount,
        dated_orders.shipping_fee,
        dated_orders.is_cancelled,
        dated_orders.has_return,
        {% if business_date() is none -%}
            (select max(all_orders.business_date) as max_business_date from orders as all_orders)
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from dated_orders
    left join person_map
        on dated_orders.identity_id = person_map.identity_id

)

select * from final
