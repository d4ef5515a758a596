-- Line-level sales, online and in store, one row per order or receipt line.
-- What counts as a sale, and how VOID, RETURN, cancelled orders and
-- superseded POS exports are handled: DECISIONLOG.md.
-- With var('business_date') set, no line dated after that HK business date.
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

products as (

    select * from {{ ref('stg_shop__products') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

online_lines as (

    -- lines of cancelled orders never became sales
    select
        'online' as channel,
        orders.order_id::text as order_ref,
        order_items.line_no,
        orders.ordered_at as sold_at,
        null::text as store_code,
        order_items.sku,
        order_items.quantity,
        order_items.unit_price,
        (order_items.quantity * order_items.unit_price)::numeric(12, 2) as gross_amount,
        order_items.discount_amount::numeric(12, 2) as discount_amount,
        false as is_return,
        false as is_void,
        orders.payment_method,
        orders.order_status,
        'shop:' || orders.customer_id::text as identity_id

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    where not orders.is_cancelled

),

store_lines as (

    -- a VOID line stays visible but sells nothing: zero quantity and money
    select
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
        pos_lines.payment_method,
        null::text as order_status,
        'loyalty:' || pos_lines.loyalty_card_no as identity_id

    from pos_lines

),

sales_lines as (

    select * from online_lines
    union all
    select * from store_lines

),

joined as (

    select
        md5(
            sales_lines.channel || '|' || sales_lines.order_ref
            || '|' || sales_lines.line_no::text
        ) as sales_line_key,

        sales_lines.channel,
        sales_lines.order_ref,
        sales_lines.line_no,
        sales_lines.sold_at,
        (sales_lines.sold_at at time zone 'Asia/Hong_Kong')::date as business_date,
        sales_lines.store_code,

        sales_lines.sku,
        coalesce(products.category, 'unknown') as category,
        products.sku is null as is_unknown_sku,

        sales_lines.quantity,
        sales_lines.unit_price,
        sales_lines.gross_amount,
        sales_lines.discount_amount,
        sales_lines.gross_amount - sales_lines.discount_amount as net_amount,

        sales_lines.is_return,
        sales_lines.is_void,
        sales_lines.payment_method,
        sales_lines.order_status,

        -- null for walk-ins (no card, or a card unknown to the loyalty data)
        {{ pseudonymise('person_map.person_anchor') }} as customer_key

    from sales_lines
    left join products
        on sales_lines.sku = products.sku
    left join person_map
        on sales_lines.identity_id = person_map.identity_id

),

final as (

    select * from joined
    where {{ business_date_filter('joined.business_date') }}

)

select * from final
