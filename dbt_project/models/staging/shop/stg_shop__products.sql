with

source as (

    select * from {{ source('shop', 'products') }}
    where {{ known_by_business_date() }}

),

latest as (

    select
        source.*,
        row_number() over (
            partition by source.sku
            order by source.updated_at desc, source._load_id desc
        ) as version_rank

    from source

),

renamed as (

    select
        -- ids
        sku,

        -- attributes
        name as product_name,
        category,
        subcategory,
        brand,
        unit_price as list_price,
        coalesce(active, false) as is_active,

        -- timestamps
        updated_at,

        -- lineage
        _load_id as load_id

    from latest
    where version_rank = 1

)

select * from renamed
