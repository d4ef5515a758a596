-- Daily customer-service KPIs per Hong Kong day x complaint channel x
-- category x assigned team (the ticket's attributes as of the business
-- date). Each measure is dated by its own event:
--   created, first responses, resolutions, reopens  the HK date it happened
--   open / overdue at end of day                    tickets open at the day's end
--   response and resolution times                   over that day's first
--                                                   responses / resolutions
--   SLA breach rates                                over the tickets whose target
--                                                   fell due that day (all are
--                                                   decided by then: met or missed)
--   satisfaction                                    over tickets finally resolved that day
-- A combination with no activity and nothing open that day has no row.
with

complaints as (

    select * from {{ ref('fct_complaints') }}

),

ticket_events as (

    select * from {{ ref('int_service__ticket_events') }}

),

ticket_open_days as (

    select * from {{ ref('int_service__ticket_open_days') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

created as (

    select
        complaints.business_date as kpi_date,
        complaints.ticket_id,
        1 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from complaints

),

first_responses as (

    select
        (complaints.first_response_at at time zone 'Asia/Hong_Kong')::date as kpi_date,
        complaints.ticket_id,
        0 as is_created,
        1 as is_first_response,
        complaints.first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from complaints
    where complaints.first_response_at is not null

),

-- every resolution counts, also one later undone by a reopen
resolutions as (

    select
        ticket_events.event_date as kpi_date,
        ticket_events.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        1 as is_resolution,
        round(
            extract(epoch from ticket_events.event_at - complaints.created_at) / 3600, 2
        ) as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from ticket_events
    inner join complaints
        on ticket_events.ticket_id = complaints.ticket_id
    where ticket_events.event_type = 'resolved'

),

reopens as (

    select
        ticket_events.event_date as kpi_date,
        ticket_events.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        1 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from ticket_events
    where ticket_events.event_type = 'reopened'

),

open_at_end as (

    select
        ticket_open_days.status_date as kpi_date,
        ticket_open_days.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        1 as is_open_at_end,
        case
            when
                complaints.resolution_due_at
                < (ticket_open_days.status_date + 1)::timestamp at time zone 'Asia/Hong_Kong'
                then 1
            else 0
        end as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from ticket_open_days
    inner join complaints
        on ticket_open_days.ticket_id = complaints.ticket_id

),

first_response_due as (

    select
        (complaints.first_response_due_at at time zone 'Asia/Hong_Kong')::date as kpi_date,
        complaints.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        1 as is_first_response_due,
        complaints.is_first_response_sla_breached::int as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        null::integer as satisfaction_score

    from complaints

),

resolution_due as (

    select
        (complaints.resolution_due_at at time zone 'Asia/Hong_Kong')::date as kpi_date,
        complaints.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        1 as is_resolution_due,
        complaints.is_resolution_sla_breached::int as is_resolution_breach,
        null::integer as satisfaction_score

    from complaints

),

satisfaction as (

    select
        (complaints.resolved_at at time zone 'Asia/Hong_Kong')::date as kpi_date,
        complaints.ticket_id,
        0 as is_created,
        0 as is_first_response,
        null::numeric as first_response_minutes,
        0 as is_resolution,
        null::numeric as resolution_hours,
        0 as is_reopen,
        0 as is_open_at_end,
        0 as is_overdue_at_end,
        0 as is_first_response_due,
        0 as is_first_response_breach,
        0 as is_resolution_due,
        0 as is_resolution_breach,
        complaints.satisfaction_score

    from complaints
    where complaints.satisfaction_score is not null and complaints.resolved_at is not null

),

measures as (

    select * from created
    union all
    select * from first_responses
    union all
    select * from resolutions
    union all
    select * from reopens
    union all
    select * from open_at_end
    union all
    select * from first_response_due
    union all
    select * from resolution_due
    union all
    select * from satisfaction

),

daily as (

    select
        measures.kpi_date,
        complaints.channel,
        complaints.category,
        complaints.assigned_team,

        sum(measures.is_created) as tickets_created,
        sum(measures.is_first_response) as first_responses,
        sum(measures.is_resolution) as resolutions,
        sum(measures.is_reopen) as reopens,
        sum(measures.is_open_at_end) as open_tickets_at_end_of_day,
        sum(measures.is_overdue_at_end) as overdue_tickets_at_end_of_day,

        percentile_cont(0.5) within group (
            order by measures.first_response_minutes
        ) as median_first_response_minutes,
        avg(measures.first_response_minutes) as avg_first_response_minutes,
        percentile_cont(0.5) within group (
            order by measures.resolution_hours
        ) as median_resolution_hours,
        avg(measures.resolution_hours) as avg_resolution_hours,

        sum(measures.is_first_response_due) as first_response_sla_due,
        sum(measures.is_first_response_breach) as first_response_sla_breaches,
        sum(measures.is_resolution_due) as resolution_sla_due,
        sum(measures.is_resolution_breach) as resolution_sla_breaches,

        count(measures.satisfaction_score) as satisfaction_responses,
        avg(measures.satisfaction_score) as avg_satisfaction_score

    from measures
    inner join complaints
        on measures.ticket_id = complaints.ticket_id
    cross join as_of
    where measures.kpi_date <= as_of.as_of_date
    group by 1, 2, 3, 4

),

final as (

    select
        md5(
            daily.kpi_date::text || '|' || coalesce(daily.channel, '') || '|'
            || coalesce(daily.category, '') || '|' || coalesce(daily.assigned_team, '')
        ) as service_kpi_key,
        daily.kpi_date,
        daily.channel,
        daily.category,
        daily.assigned_team,

        daily.tickets_created,
        daily.first_responses,
        daily.resolutions,
        daily.reopens,
        daily.open_tickets_at_end_of_day,
        daily.overdue_tickets_at_end_of_day,

        round(daily.median_first_response_minutes::numeric, 1) as median_first_response_minutes,
        round(daily.avg_first_response_minutes, 1) as avg_first_response_minutes,
        round(daily.median_resolution_hours::numeric, 2) as median_resolution_hours,
        round(daily.avg_resolution_hours, 2) as avg_resolution_hours,

        daily.first_response_sla_due,
        daily.first_response_sla_breaches,
        round(
            daily.first_response_sla_breaches::numeric / nullif(daily.first_response_sla_due, 0), 4
        ) as first_response_sla_breach_rate,
        daily.resolution_sla_due,
        daily.resolution_sla_breaches,
        round(
            daily.resolution_sla_breaches::numeric / nullif(daily.resolution_sla_due, 0), 4
        ) as resolution_sla_breach_rate,

        daily.satisfaction_responses,
        round(daily.avg_satisfaction_score, 2) as avg_satisfaction_score,

        as_of.as_of_date

    from daily
    cross join as_of

)

select * from final
