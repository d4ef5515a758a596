with

source as (

    select * from {{ source('complaints', 'tickets') }}
    where {{ latest_daily_export('complaints') }}

),

latest as (

    -- a ticket is exported again each day it changes: latest updated_at wins
    select
        source.*,
        row_number() over (
            partition by trim(source.ticket_id)
            order by
                source.updated_at desc nulls last,
                source._load_id desc,
                source._line desc
        ) as version_rank

    from source

),

renamed as (

    select
        -- ids
        trim(ticket_id) as ticket_id,
        nullif(trim(order_ref), '') as order_ref,

        -- customer contact (personal data), normalised for matching
        {{ normalize_email('customer_email') }} as customer_email,
        {{ normalize_hk_phone('customer_phone') }} as customer_phone,
        nullif(trim(customer_name), '') as customer_name,
        nullif(trim(customer_loyalty_card_no), '') as customer_loyalty_card_no,

        -- attributes
        lower(trim(channel)) as channel,
        lower(trim(category)) as category,
        lower(trim(severity)) as severity,
        lower(trim(status)) as ticket_status,
        satisfaction_score,
        assigned_team,
        description,
        extra,

        -- timestamps
        created_at,
        updated_at,
        first_response_at,
        resolved_at,

        -- lineage
        _load_id as load_id

    from latest
    where version_rank = 1

)

select * from renamed
