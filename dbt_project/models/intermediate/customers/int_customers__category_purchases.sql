-- One row per customer, channel and product category the customer bought
-- (a sold line: not a till RETURN, not a VOID; lines of skus unknown to the
-- catalogue carry no category and are left out). Category breadth,
-- cross-sell gaps and first categories read this. Only what we sell is
-- observable: purchases the customer makes elsewhere are not.
with

sales as (

    select * from {{ ref('fct_sales') }}

),

sold_lines as (

    select * from sales
    where
        customer_key is not null
        and not is_return
        and not is_void
        -- (not category <> 'unknown': the planner badly misjudges that filter
        -- on fct_sales' coalesce and picks a nested loop over the person map)
        and not is_unknown_sku

),

final as (

    select
        sold_lines.customer_key,
        sold_lines.channel,
        sold_lines.category,

        min(sold_lines.business_date) as first_purchase_date,
        max(sold_lines.business_date) as last_purchase_date,
        count(distinct sold_lines.order_ref) as order_count,
        sum(sold_lines.quantity) as item_quantity,
        sum(sold_lines.net_amount) as net_amount

    from sold_lines
    group by 1, 2, 3

)

select * from final
