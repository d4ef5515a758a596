with

source as (

    select * from {{ source('shop', 'orders') }}
    where {{ known_by_business_date() }}

),

latest as (

    select
        source.*,
        row_number() over (
            partition by source.order_id
            order by source.updated_at desc, source._load_id desc
        ) as version_rank

    from source

),

flagged as (

    -- deleted in the shop after this version (a key created again later shows again)
    {{ shop_deletion_flags('latest', 'orders', "latest.order_id::text") }}
    where latest.version_rank = 1

),

renamed as (

    select
        -- ids
        order_id,
        customer_id,

        -- attributes
        lower(trim(status)) as order_status,
        lower(trim(payment_method)) as payment_method,
        nullif(trim(delivery_district), '') as delivery_district,
        upper(trim(currency)) as currency,
        -- an order deleted in the shop never became a sale either
        lower(trim(status)) = 'cancelled' or is_deleted_in_shop as is_cancelled,
        is_deleted_in_shop,

        -- amounts (HKD)
        coalesce(shipping_fee, 0) as shipping_fee,
        coalesce(discount, 0) as order_discount_amount,

        -- timestamps
        order_ts as ordered_at,
        updated_at,

        -- lineage: a deletion is a change of the order
        greatest(_load_id, deleted_load_id) as load_id

    from flagged

)

select * from renamed
