-- One row per online order or till receipt of a known customer (walk-ins
-- have no customer_key and are left out), built from the sales lines.
-- A purchase is an order or receipt with at least one sold line (neither a
-- till RETURN nor a VOID): a receipt holding only returns is not a purchase
-- occasion, but its (negative) net amount still counts towards the
-- customer's net revenue. Cancelled online orders are not in fct_sales.
with

sales as (

    select * from {{ ref('fct_sales') }}

),

customer_lines as (

    select * from sales
    where customer_key is not null

),

final as (

    select
        md5(customer_lines.channel || '|' || customer_lines.order_ref) as order_key,
        customer_lines.customer_key,
        customer_lines.channel,
        customer_lines.order_ref,

        min(customer_lines.business_date) as business_date,
        min(customer_lines.sold_at) as sold_at,

        bool_or(
            not customer_lines.is_return and not customer_lines.is_void
        ) as is_purchase,
        bool_or(customer_lines.is_return) as has_return,
        sum(customer_lines.net_amount) as net_amount

    from customer_lines
    group by 1, 2, 3, 4

)

select * from final
