-- Every version of every complaint ticket known by the business date, one
-- row per (ticket_id, updated_at): the ticket's history, from which the
-- lifecycle (reopens, first resolution) is read. Only the ticket's workflow
-- fields: no contact details, no free-text description.
with

source as (

    select * from {{ source('complaints', 'tickets') }}
    where {{ latest_daily_export('complaints') }}

),

deduplicated as (

    -- a file landed twice repeats its versions: keep the latest load's copy
    select
        source.*,
        row_number() over (
            partition by trim(source.ticket_id), source.updated_at
            order by source._load_id desc, source._line desc
        ) as copy_rank

    from source

),

renamed as (

    select
        -- ids
        trim(ticket_id) as ticket_id,
        nullif(trim(order_ref), '') as order_ref,

        -- attributes
        lower(trim(channel)) as channel,
        lower(trim(category)) as category,
        lower(trim(severity)) as severity,
        lower(trim(status)) as ticket_status,
        satisfaction_score,
        assigned_team,

        -- timestamps
        created_at,
        updated_at,
        first_response_at,
        resolved_at,

        -- lineage
        _load_id as load_id

    from deduplicated
    where copy_rank = 1

),

numbered as (

    select
        renamed.*,
        row_number() over (
            partition by renamed.ticket_id
            order by renamed.updated_at
        ) as version_no

    from renamed

)

select * from numbered
