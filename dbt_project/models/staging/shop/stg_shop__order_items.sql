{%- set line_key = "source.order_id::text || '|' || source.line_no::text" -%}
with

source as (

    -- lines never change once the order is placed: raw holds one row per
    -- (order_id, line_no) (its primary key), so there is nothing to dedupe
    select * from {{ source('shop', 'order_items') }}
    where {{ known_by_business_date() }}

),

flagged as (

    -- removed from its order in the shop: kept, flagged, so that the order is rebuilt
    -- downstream without it (int_sales__lines)
    {{ shop_deletion_flags('source', 'order_items', line_key) }}

),

renamed as (

    select
        -- ids
        order_id,
        line_no,
        trim(sku) as sku,

        -- amounts (HKD)
        quantity,
        unit_price,
        coalesce(line_discount, 0) as discount_amount,
        is_deleted_in_shop,

        -- lineage: a removal is a change of the line
        greatest(_load_id, deleted_load_id) as load_id

    from flagged

)

select * from renamed
