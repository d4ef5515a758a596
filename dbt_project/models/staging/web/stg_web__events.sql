-- A table, not a view: its ranking spans the whole history (DECISIONLOG "Staging rules").
{{ config(materialized='table', indexes=[{'columns': ['load_id']}]) }}
with

source as (

    select * from {{ source('web', 'events') }}
    where {{ known_by_business_date() }}

),

first_seen as (

    -- delivery is at-least-once: keep the first copy of each event_id
    select
        source.*,
        row_number() over (
            partition by source.event_id
            order by source._load_id asc, source._line asc
        ) as copy_rank

    from source

),

renamed as (

    -- the client ip is personal data and has no use downstream yet: left in raw
    select
        -- ids
        event_id,
        anonymous_id,
        customer_id,
        session_id,
        order_id,
        trim(sku) as sku,

        -- attributes
        lower(trim(event_type)) as event_type,
        lower(trim(device_type)) as device_type,
        page_url,
        referrer,
        search_query,
        utm_source,
        utm_medium,
        utm_campaign,
        user_agent,
        extra,

        -- timestamps
        event_ts as event_at,

        -- lineage
        _load_id as load_id,
        _file as source_file,
        _line as source_line

    from first_seen
    where copy_rank = 1

)

select * from renamed
