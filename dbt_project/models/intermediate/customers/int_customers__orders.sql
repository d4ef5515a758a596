-- One row per online order or till receipt of a known customer (walk-ins
-- have no customer_key and are left out), built from the sales lines.
-- A purchase is an order or receipt with at least one positive sale line
-- (macro metric_is_sale_line: neither a RETURN nor a VOID, net amount above
-- 0), the one definition the management metrics, the customer marts and ml/
-- share: a receipt holding only returns or free lines is not a purchase
-- occasion, but its net amount still counts towards the customer's net
-- revenue. Cancelled online orders are not in fct_sales.
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

        bool_or({{ metric_is_sale_line('customer_lines') }}) as is_purchase,
        bool_or(customer_lines.is_return) as has_return,
        sum(customer_lines.net_amount) as net_amount

    from customer_lines
    group by 1, 2, 3, 4

)

select * from final
