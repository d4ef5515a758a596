-- Line-level sales, online and in store, one row per order or receipt line.
-- What counts as a sale, and how VOID, RETURN, cancelled orders and
-- superseded POS exports are handled: DECISIONLOG.md "Sales".
-- The lines are kept incrementally in int_sales__lines; this model adds the
-- product and the customer as known today, so a product change or a person
-- merge reaches every past line at once and the fact always equals a full
-- rebuild. With var('business_date') set, no line dated after that HK date.
with

sales_lines as (

    select * from {{ ref('int_sales__lines') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

sold_lines as (

    -- lines of cancelled orders never became sales
    select sales_lines.*
    from sales_lines
    where
        not sales_lines.is_cancelled
        and {{ business_date_filter('sales_lines.business_date') }}

),

final as (

    select
        sold_lines.sales_line_key,
        sold_lines.channel,
        sold_lines.order_ref,
        md5(sold_lines.channel || '|' || sold_lines.order_ref) as order_key,
        sold_lines.line_no,
        sold_lines.sold_at,
        sold_lines.business_date,
        sold_lines.store_code,

        sold_lines.sku,
        coalesce(products.category, 'unknown') as category,
        coalesce(products.subcategory, 'unknown') as subcategory,
        coalesce(products.brand, 'unknown') as brand,
        products.sku is null as is_unknown_sku,

        sold_lines.quantity,
        sold_lines.unit_price,
        sold_lines.gross_amount,
        sold_lines.discount_amount,
        sold_lines.net_amount,

        sold_lines.is_return,
        sold_lines.is_void,
        sold_lines.payment_method,
        sold_lines.order_status,

        -- null for walk-ins (no card, or a card unknown to the loyalty data)
        person_map.customer_key,

        {% if business_date() is none -%}
            (select max(all_lines.business_date) as max_business_date from sales_lines as all_lines)
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from sold_lines
    left join products
        on sold_lines.sku = products.sku
    left join person_map
        on sold_lines.identity_id = person_map.identity_id

)

select * from final
