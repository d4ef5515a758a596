-- The date customer-service models are built for, and the instant it ends.
-- With var('business_date') set: that Hong Kong date, and its end is the
-- next HK midnight. Without it: the latest HK date of any ticket version.
-- Every "as of" rule (open, overdue, breached while open) reads as_of_end_at,
-- never now(), so a re-run or backfill of a day rebuilds the same rows.
with

ticket_versions as (

    select * from {{ ref('stg_complaints__ticket_versions') }}

),

as_of_date as (

    {% if business_date() is none -%}
        select max((ticket_versions.updated_at at time zone 'Asia/Hong_Kong')::date) as as_of_date
        from ticket_versions
    {%- else -%}
        select '{{ business_date() }}'::date as as_of_date
    {%- endif %}

),

final as (

    select
        as_of_date.as_of_date,
        (as_of_date.as_of_date + 1)::timestamp at time zone 'Asia/Hong_Kong' as as_of_end_at

    from as_of_date

)

select * from final
