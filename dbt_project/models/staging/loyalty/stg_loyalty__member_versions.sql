-- Every version of every loyalty member known by the business date: the
-- daily deltas repeat a member each time it changes. One row per card_no
-- and updated_at (a re-sent file repeats a version: the latest load wins).
-- Only the attributes whose history the marts track (tier, district,
-- consent); names, emails and phones stay in stg_loyalty__members.
with

source as (

    select * from {{ source('loyalty', 'members') }}
    where {{ latest_daily_export('loyalty') }}

),

load_ledger as (

    select * from {{ source('ops', 'load_ledger') }}

),

deduplicated as (

    select
        source.*,
        load_ledger.business_date as loaded_on,
        row_number() over (
            partition by trim(source.card_no), source.updated_at
            order by source._load_id desc, source._line desc
        ) as copy_rank

    from source
    left join load_ledger
        on source._load_id = load_ledger.load_id
    where source.updated_at is not null

),

renamed as (

    select
        -- ids
        trim(card_no) as card_no,

        -- attributes
        nullif(trim(district), '') as district,
        lower(trim(tier)) as loyalty_tier,
        coalesce(marketing_opt_in, false) as is_marketing_opt_in,

        -- dates and timestamps
        joined_on,
        {{ local_hk_to_utc('updated_at') }} as updated_at,
        updated_at::date as updated_on,

        -- lineage
        _load_id as load_id,
        loaded_on

    from deduplicated
    where copy_rank = 1

)

select * from renamed
