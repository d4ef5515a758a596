-- Each complaint ticket (int_service__ticket_lifecycle) with its SLA targets,
-- due times, response and resolution durations and breach flags.
--   Targets: seed sla_targets, the version in force on the ticket's HK
--   creation date, by severity; calendar hours from created_at.
--   Breached: the first response (or the final resolution) came after its
--   due time; or it has not come and the due time passed before the end of
--   the as-of date (int_service__as_of.as_of_end_at, never now()). A response
--   exactly at the due time meets the target.
--   Overdue: breached and still missing, i.e. the ticket is waiting for it.
with

ticket_lifecycle as (

    select * from {{ ref('int_service__ticket_lifecycle') }}

),

sla_targets as (

    select * from {{ ref('sla_targets') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

target_versions as (

    select
        sla_targets.severity,
        sla_targets.sla_version,
        sla_targets.valid_from,
        lead(sla_targets.valid_from) over (
            partition by sla_targets.severity
            order by sla_targets.valid_from
        ) as valid_until,
        sla_targets.first_response_hours,
        sla_targets.resolution_hours

    from sla_targets

),

targeted as (

    select
        ticket_lifecycle.*,
        target_versions.sla_version,
        target_versions.first_response_hours as sla_first_response_hours,
        target_versions.resolution_hours as sla_resolution_hours,
        ticket_lifecycle.created_at
        + target_versions.first_response_hours * interval '1 hour' as first_response_due_at,
        ticket_lifecycle.created_at
        + target_versions.resolution_hours * interval '1 hour' as resolution_due_at,
        as_of.as_of_date,
        as_of.as_of_end_at

    from ticket_lifecycle
    cross join as_of
    left join target_versions
        on
            ticket_lifecycle.severity = target_versions.severity
            and ticket_lifecycle.business_date >= target_versions.valid_from
            and (
                target_versions.valid_until is null
                or ticket_lifecycle.business_date < target_versions.valid_until
            )

),

final as (

    select
        targeted.ticket_id,
        targeted.order_ref,
        targeted.channel,
        targeted.category,
        targeted.severity,
        targeted.ticket_status,
        targeted.is_open,
        targeted.satisfaction_score,
        targeted.assigned_team,
        targeted.reopen_count,
        targeted.version_count,
        targeted.created_at,
        targeted.business_date,
        targeted.first_response_at,
        targeted.first_resolved_at,
        targeted.resolved_at,
        targeted.last_updated_at,
        targeted.sla_version,
        targeted.sla_first_response_hours,
        targeted.sla_resolution_hours,
        targeted.first_response_due_at,
        targeted.resolution_due_at,
        targeted.as_of_date,
        targeted.as_of_end_at,

        round(
            extract(epoch from targeted.first_response_at - targeted.created_at) / 60, 1
        ) as first_response_minutes,
        round(
            extract(epoch from targeted.resolved_at - targeted.created_at) / 3600, 2
        ) as resolution_hours,

        -- a missing response or resolution is measured at the end of the as-of date
        coalesce(targeted.first_response_at, targeted.as_of_end_at)
        > targeted.first_response_due_at as is_first_response_sla_breached,
        coalesce(targeted.resolved_at, targeted.as_of_end_at)
        > targeted.resolution_due_at as is_resolution_sla_breached,
        targeted.first_response_at is null
        and targeted.as_of_end_at > targeted.first_response_due_at as is_first_response_overdue,
        targeted.is_open
        and targeted.as_of_end_at > targeted.resolution_due_at as is_resolution_overdue

    from targeted

)

select * from final
