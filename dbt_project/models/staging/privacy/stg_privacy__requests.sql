with

source as (

    select * from {{ source('privacy', 'requests') }}
    where {{ latest_daily_export('privacy') }}

),

first_seen as (

    -- a request delivered twice is still one request: keep its first copy
    select
        source.*,
        row_number() over (
            partition by trim(source.request_id)
            order by source._load_id asc, source._line asc
        ) as copy_rank

    from source

),

renamed as (

    select
        -- ids
        trim(request_id) as request_id,

        -- requester identifiers (personal data), normalised for matching
        {{ normalize_email('email') }} as email,
        {{ normalize_hk_phone('phone') }} as phone,
        nullif(trim(loyalty_card_no), '') as loyalty_card_no,
        -- which identifiers the requester gave, before normalising (a phone
        -- outside Hong Kong normalises to null, and must not vanish unreported)
        concat_ws(
            ',',
            case when nullif(trim(email), '') is not null then 'email' end,
            case when nullif(trim(phone), '') is not null then 'phone' end,
            case when nullif(trim(loyalty_card_no), '') is not null then 'loyalty_card_no' end
        ) as identifiers_given,

        -- attributes
        lower(trim(request_type)) as request_type,

        -- timestamps
        received_at,

        -- lineage
        _load_id as load_id

    from first_seen
    where copy_rank = 1

)

select * from renamed
