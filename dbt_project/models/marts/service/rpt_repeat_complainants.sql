-- Customers who complained at least var('repeat_complaint_threshold') times
-- (default 3) in the var('repeat_complaint_window_days') days (default 90)
-- up to and including the as-of date, counting tickets by their HK creation
-- date. Tickets not attributed to a customer are left out.
{%- set threshold = var('repeat_complaint_threshold', 3) | int %}
{%- set window_days = var('repeat_complaint_window_days', 90) | int %}
with

complaints as (

    select * from {{ ref('fct_complaints') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

windowed as (

    select
        complaints.customer_key,
        complaints.category,
        complaints.channel,
        complaints.severity,
        complaints.is_open,
        complaints.is_resolution_sla_breached,
        complaints.reopen_count,
        complaints.satisfaction_score,
        complaints.created_at,
        as_of.as_of_date - {{ window_days - 1 }} as window_start_date,
        as_of.as_of_date

    from complaints
    cross join as_of
    where
        complaints.customer_key is not null
        and complaints.business_date
        between as_of.as_of_date - {{ window_days - 1 }} and as_of.as_of_date

),

per_customer as (

    select
        windowed.customer_key,
        windowed.window_start_date,
        windowed.as_of_date,
        count(*) as complaint_count,
        count(*) filter (where windowed.is_open) as open_complaint_count,
        count(distinct windowed.category) as category_count,
        string_agg(distinct windowed.category, ', ' order by windowed.category) as categories,
        string_agg(distinct windowed.channel, ', ' order by windowed.channel) as channels,
        max(
            case windowed.severity
                when 'critical' then 4
                when 'high' then 3
                when 'medium' then 2
                when 'low' then 1
            end
        ) as max_severity_rank,
        count(*) filter (where windowed.is_resolution_sla_breached) as resolution_sla_breach_count,
        sum(windowed.reopen_count) as reopen_count,
        round(avg(windowed.satisfaction_score), 2) as avg_satisfaction_score,
        min(windowed.created_at) as first_complaint_at,
        max(windowed.created_at) as last_complaint_at

    from windowed
    group by 1, 2, 3

),

final as (

    select
        per_customer.customer_key,
        per_customer.complaint_count,
        per_customer.open_complaint_count,
        per_customer.category_count,
        per_customer.categories,
        per_customer.channels,
        case per_customer.max_severity_rank
            when 4 then 'critical'
            when 3 then 'high'
            when 2 then 'medium'
            when 1 then 'low'
        end as max_severity,
        per_customer.resolution_sla_breach_count,
        per_customer.reopen_count,
        per_customer.avg_satisfaction_score,
        per_customer.first_complaint_at,
        per_customer.last_complaint_at,
        per_customer.window_start_date,
        {{ threshold }} as complaint_threshold,
        per_customer.as_of_date

    from per_customer
    where per_customer.complaint_count >= {{ threshold }}

)

select * from final
