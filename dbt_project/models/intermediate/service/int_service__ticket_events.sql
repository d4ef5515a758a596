-- Lifecycle events of each complaint ticket, read from its version history
-- (stg_complaints__ticket_versions: one version per day the ticket changed).
--   created         created_at
--   first_response  the earliest first_response_at seen
--   resolved        every distinct resolved_at seen: a ticket resolved,
--                   reopened and resolved again has two
--   reopened        a version whose status is 'reopened' when the version
--                   before it was not; or a version whose resolved_at differs
--                   from the previous version's (reopened and resolved again
--                   between two exports, so 'reopened' was never exported).
--                   Dated at the updated_at of that version.
with

ticket_versions as (

    select * from {{ ref('stg_complaints__ticket_versions') }}

),

version_changes as (

    select
        ticket_versions.ticket_id,
        ticket_versions.version_no,
        ticket_versions.ticket_status,
        ticket_versions.updated_at,
        ticket_versions.resolved_at,
        lag(ticket_versions.ticket_status) over ticket_history as previous_status,
        lag(ticket_versions.resolved_at) over ticket_history as previous_resolved_at

    from ticket_versions
    window ticket_history as (
        partition by ticket_versions.ticket_id
        order by ticket_versions.version_no
    )

),

created_events as (

    select
        ticket_versions.ticket_id,
        'created' as event_type,
        min(ticket_versions.created_at) as event_at

    from ticket_versions
    group by 1, 2

),

first_response_events as (

    select
        ticket_versions.ticket_id,
        'first_response' as event_type,
        min(ticket_versions.first_response_at) as event_at

    from ticket_versions
    where ticket_versions.first_response_at is not null
    group by 1, 2

),

resolved_events as (

    select distinct
        ticket_versions.ticket_id,
        'resolved' as event_type,
        ticket_versions.resolved_at as event_at

    from ticket_versions
    where ticket_versions.resolved_at is not null

),

reopened_events as (

    select
        version_changes.ticket_id,
        'reopened' as event_type,
        version_changes.updated_at as event_at

    from version_changes
    where
        (
            version_changes.ticket_status = 'reopened'
            and version_changes.previous_status is distinct from 'reopened'
        )
        or version_changes.resolved_at <> version_changes.previous_resolved_at

),

events as (

    select * from created_events
    union all
    select * from first_response_events
    union all
    select * from resolved_events
    union all
    select * from reopened_events

),

final as (

    select
        md5(
            events.ticket_id || '|' || events.event_type
            || '|' || (events.event_at at time zone 'UTC')::text
        ) as ticket_event_key,
        events.ticket_id,
        events.event_type,
        events.event_at,
        (events.event_at at time zone 'Asia/Hong_Kong')::date as event_date

    from events

)

select * from final
