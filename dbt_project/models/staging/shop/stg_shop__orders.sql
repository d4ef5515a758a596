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
        lower(trim(status)) = 'cancelled' as is_cancelled,

        -- amounts (HKD)
        coalesce(shipping_fee, 0) as shipping_fee,
        coalesce(discount, 0) as order_discount_amount,

        -- timestamps
        order_ts as ordered_at,
        updated_at,

        -- lineage
        _load_id as load_id

    from latest
    where version_rank = 1

)

select * from renamed
