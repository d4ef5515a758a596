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

flagged as (

    -- deleted in the shop after this version: closed when the reconciliation found it gone
    {{ shop_deletion_flags('latest', 'customers', "latest.customer_id::text") }}
    where latest.version_rank = 1

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
        coalesce(deleted_at, deleted_detected_at) is not null as is_deleted,

        -- timestamps
        created_at,
        updated_at,
        coalesce(deleted_at, deleted_detected_at) as deleted_at,

        -- lineage
        greatest(_load_id, deleted_load_id) as load_id

    from flagged

)

select * from renamed
