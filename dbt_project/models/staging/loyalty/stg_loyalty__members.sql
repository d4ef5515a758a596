with

source as (

    select * from {{ source('loyalty', 'members') }}
    where {{ latest_daily_export('loyalty') }}

),

latest as (

    -- daily deltas repeat a member each time it changes: the latest
    -- updated_at wins (then the latest load, then the last line)
    select
        source.*,
        row_number() over (
            partition by trim(source.card_no)
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
        trim(card_no) as card_no,

        -- personal data
        full_name,
        {{ normalize_email('email') }} as email,
        {{ normalize_hk_phone('phone') }} as phone,

        -- attributes
        nullif(trim(district), '') as district,
        lower(trim(tier)) as loyalty_tier,
        coalesce(marketing_opt_in, false) as is_marketing_opt_in,

        -- dates and timestamps
        joined_on,
        {{ local_hk_to_utc('updated_at') }} as updated_at,

        -- lineage
        _load_id as load_id

    from latest
    where version_rank = 1

)

select * from renamed
