-- Complaint tickets, one row per ticket as of the business date (its latest
-- version known by then), with lifecycle metrics and SLA breach flags.
-- Definitions (breach, overdue, reopen, resolution time): DECISIONLOG.md,
-- "Customer service". No free-text description and no contact details.
with

complaint_sla as (

    select * from {{ ref('int_service__complaint_sla') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

attributed as (

    select
        complaint_sla.*,
        -- a POS receipt_no ('TST01-20261120-000123') names its store;
        -- an online order_id is numeric
        case
            when complaint_sla.order_ref ~ '^[0-9]+$' then 'online'
            when complaint_sla.order_ref ~ '^[A-Z]+[0-9]*-[0-9]{8}-[0-9]+$' then 'store'
        end as order_channel,
        case
            when complaint_sla.order_ref ~ '^[A-Z]+[0-9]*-[0-9]{8}-[0-9]+$'
                then split_part(complaint_sla.order_ref, '-', 1)
        end as store_code,
        -- null until the identity stitch knows the ticket (the ticket still counts)
        person_map.customer_key

    from complaint_sla
    left join person_map
        on 'complaint:' || complaint_sla.ticket_id = person_map.identity_id

),

final as (

    select
        -- keys
        md5(attributed.ticket_id) as complaint_key,
        attributed.ticket_id,
        attributed.customer_key,

        -- attributes
        attributed.channel,
        attributed.category,
        attributed.severity,
        attributed.ticket_status as status,
        attributed.is_open,
        attributed.assigned_team,
        attributed.order_ref,
        attributed.order_channel,
        attributed.store_code,
        attributed.satisfaction_score,

        -- lifecycle
        attributed.created_at,
        attributed.business_date,
        attributed.first_response_at,
        attributed.first_resolved_at,
        attributed.resolved_at,
        attributed.last_updated_at,
        attributed.first_response_minutes,
        attributed.resolution_hours,
        attributed.reopen_count,

        -- SLA
        attributed.sla_version,
        attributed.sla_first_response_hours,
        attributed.sla_resolution_hours,
        attributed.first_response_due_at,
        attributed.resolution_due_at,
        attributed.is_first_response_sla_breached,
        attributed.is_resolution_sla_breached,
        attributed.is_first_response_overdue,
        attributed.is_resolution_overdue,

        attributed.as_of_date

    from attributed

)

select * from final
