with

source as (

    -- lines never change once the order is placed: raw holds one row per
    -- (order_id, line_no) (its primary key), so there is nothing to dedupe
    select * from {{ source('shop', 'order_items') }}
    where {{ known_by_business_date() }}

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

        -- lineage
        _load_id as load_id

    from source

)

select * from renamed
