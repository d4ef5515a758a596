with

source as (

    select * from {{ source('shop', 'customers') }}
    where {{ known_by_business_date() }}

),

latest as (

    -- raw keeps every version seen: the latest updated_at wins
    select
        source.*,
        row_number() over (
            partition by source.customer_id
            order by source.updated_at desc, source._load_id desc
        ) as version_rank

    from source

),

renamed as (

    select
        -- ids
        customer_id,

        -- personal data
        full_name,
        {{ normalize_email('email') }} as email,
        {{ normalize_hk_phone('phone') }} as phone,
        date_of_birth,

        -- attributes
        nullif(trim(district), '') as district,
        coalesce(marketing_opt_in, false) as is_marketing_opt_in,
        deleted_at is not null as is_deleted,

        -- timestamps
        created_at,
        updated_at,
        deleted_at,

        -- lineage
        _load_id as load_id

    from latest
    where version_rank = 1

)

select * from renamed
