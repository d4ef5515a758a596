-- The follow-up queue: every complaint still open at the end of the as-of
-- date (status new, open, pending or reopened), with its age, SLA due times
-- and overdue flags, in working order (followup_rank 1 first):
--   1. overdue tickets first (resolution overdue, then first response overdue),
--   2. then by severity (critical first),
--   3. then by the next due time (the earliest first),
--   4. then the oldest ticket first.
with

complaints as (

    select * from {{ ref('fct_complaints') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

open_complaints as (

    select
        complaints.*,
        as_of.as_of_end_at,
        case complaints.severity
            when 'critical' then 1
            when 'high' then 2
            when 'medium' then 3
            when 'low' then 4
        end as severity_rank,
        -- the next target the ticket must meet: its first response, else its resolution
        case
            when complaints.first_response_at is null then complaints.first_response_due_at
            else complaints.resolution_due_at
        end as next_due_at

    from complaints
    cross join as_of
    where complaints.is_open

),

ranked as (

    select
        open_complaints.*,
        row_number() over (
            order by
                open_complaints.is_resolution_overdue desc,
                open_complaints.is_first_response_overdue desc,
                open_complaints.severity_rank asc,
                open_complaints.next_due_at asc,
                open_complaints.created_at asc,
                open_complaints.ticket_id asc
        ) as followup_rank

    from open_complaints

),

final as (

    select
        ranked.complaint_key,
        ranked.ticket_id,
        ranked.followup_rank,
        ranked.customer_key,
        ranked.channel,
        ranked.category,
        ranked.severity,
        ranked.status,
        ranked.assigned_team,
        ranked.order_ref,
        ranked.store_code,
        ranked.reopen_count,
        ranked.created_at,
        ranked.business_date,
        round(extract(epoch from ranked.as_of_end_at - ranked.created_at) / 3600, 1) as age_hours,
        ranked.first_response_at,
        ranked.first_response_due_at,
        ranked.resolution_due_at,
        ranked.next_due_at,
        round(
            extract(epoch from ranked.next_due_at - ranked.as_of_end_at) / 3600, 1
        ) as hours_to_next_due,
        ranked.is_first_response_overdue,
        ranked.is_resolution_overdue,
        ranked.is_first_response_overdue or ranked.is_resolution_overdue as is_overdue,
        ranked.as_of_date

    from ranked

)

select * from final
