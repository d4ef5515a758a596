-- One row per complaint ticket: its latest version known by the business
-- date (the latest updated_at wins), with what only the version history
-- shows: when it was first resolved and how often it was reopened
-- (int_service__ticket_events). resolved_at is the final resolution and is
-- null while the ticket is open (new, open, pending or reopened).
with

ticket_versions as (

    select * from {{ ref('stg_complaints__ticket_versions') }}

),

ticket_events as (

    select * from {{ ref('int_service__ticket_events') }}

),

latest_versions as (

    select
        ticket_versions.*,
        row_number() over (
            partition by ticket_versions.ticket_id
            order by ticket_versions.version_no desc
        ) as recency_rank,
        (ticket_versions.created_at at time zone 'Asia/Hong_Kong')::date as business_date,
        ticket_versions.ticket_status in ('new', 'open', 'pending', 'reopened') as is_open

    from ticket_versions

),

event_summary as (

    select
        ticket_events.ticket_id,
        min(ticket_events.event_at) filter (
            where ticket_events.event_type = 'first_response'
        ) as first_response_at,
        min(ticket_events.event_at) filter (
            where ticket_events.event_type = 'resolved'
        ) as first_resolved_at,
        count(*) filter (where ticket_events.event_type = 'reopened') as reopen_count

    from ticket_events
    group by 1

),

version_summary as (

    select
        ticket_versions.ticket_id,
        count(*) as version_count

    from ticket_versions
    group by 1

),

final as (

    select
        -- ids
        latest_versions.ticket_id,
        latest_versions.order_ref,

        -- attributes
        latest_versions.channel,
        latest_versions.category,
        latest_versions.severity,
        latest_versions.ticket_status,
        latest_versions.is_open,
        latest_versions.satisfaction_score,
        latest_versions.assigned_team,
        coalesce(event_summary.reopen_count, 0) as reopen_count,
        version_summary.version_count,

        -- timestamps
        latest_versions.created_at,
        latest_versions.business_date,
        event_summary.first_response_at,
        event_summary.first_resolved_at,
        -- a ticket resolved or closed without resolved_at: at the latest
        -- moment it can have been resolved, its version's updated_at
        case
            when not latest_versions.is_open
                then coalesce(latest_versions.resolved_at, latest_versions.updated_at)
        end as resolved_at,
        latest_versions.updated_at as last_updated_at

    from latest_versions
    inner join version_summary
        on latest_versions.ticket_id = version_summary.ticket_id
    left join event_summary
        on latest_versions.ticket_id = event_summary.ticket_id
    where
        latest_versions.recency_rank = 1
        and {{ business_date_filter("latest_versions.business_date") }}

)

select * from final
