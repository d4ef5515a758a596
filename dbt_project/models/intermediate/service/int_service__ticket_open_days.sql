-- One row per complaint ticket and Hong Kong day at whose end the ticket was
-- open (status new, open, pending or reopened), by the version in force at
-- that moment: the version with the latest updated_at before the day's end.
-- Days run up to the as-of date. Feeds "open at end of day" counts.
with

ticket_versions as (

    select * from {{ ref('stg_complaints__ticket_versions') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

version_spans as (

    -- a version is in force from its updated_at until the next version's
    select
        ticket_versions.ticket_id,
        ticket_versions.ticket_status,
        ticket_versions.updated_at as valid_from_at,
        lead(ticket_versions.updated_at) over (
            partition by ticket_versions.ticket_id
            order by ticket_versions.version_no
        ) as valid_until_at

    from ticket_versions

),

open_spans as (

    select version_spans.*
    from version_spans
    where version_spans.ticket_status in ('new', 'open', 'pending', 'reopened')

),

span_days as (

    select
        open_spans.ticket_id,
        open_spans.ticket_status,
        open_spans.valid_from_at,
        open_spans.valid_until_at,
        day_start.status_date::date as status_date,
        (day_start.status_date::date + 1)::timestamp at time zone 'Asia/Hong_Kong' as day_end_at

    from open_spans
    cross join as_of
    cross join lateral generate_series(
        (open_spans.valid_from_at at time zone 'Asia/Hong_Kong')::date,
        least(
            (
                coalesce(open_spans.valid_until_at, as_of.as_of_end_at)
                at time zone 'Asia/Hong_Kong'
            )::date,
            as_of.as_of_date
        ),
        interval '1 day'
    ) as day_start (status_date)

),

final as (

    select
        md5(span_days.ticket_id || '|' || span_days.status_date::text) as ticket_open_day_key,
        span_days.ticket_id,
        span_days.status_date,
        span_days.ticket_status

    from span_days
    where
        span_days.valid_from_at < span_days.day_end_at
        and (span_days.valid_until_at is null or span_days.valid_until_at >= span_days.day_end_at)

)

select * from final
