{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='session_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['session_key']},
            {'columns': ['load_id']},
        ],
        post_hook=[
            "{{ incremental_forget_later_loads() }}",
            "analyze {{ this }}",
        ],
    )
}}
{#-
    One row per web session (the tracker's session_id), with the identities
    it can be attributed through, before the join to the identity map
    (fct_web_sessions adds customer_key).

    Incremental by session (macros/incremental_reprocessing.sql): a session
    with an event from a recent load (late events land in later hourly files
    and folders) is rebuilt from all its events.
-#}
{%- set settled_load_ids = incremental_settled_load_ids() -%}
{%- set is_rewind = incremental_is_rewind() -%}
with

events as (

    select * from {{ ref('stg_web__events') }}

),

{% if is_incremental() %}

    changed_sessions as (

        select distinct events.session_id
        from events
        where events.load_id not in ({{ settled_load_ids }}) or {{ is_rewind }}

    ),

{% endif %}

session_events as (

    select events.*
    from events
    {% if is_incremental() %}
        -- changed_sessions holds each session_id once: no duplicated events
        inner join changed_sessions
            on events.session_id = changed_sessions.session_id
    {% endif %}
    where
        events.session_id is not null

),

sessions as (

    -- entry attributes (device, campaign) are those of the session's first event
    select
        session_events.session_id,
        min(session_events.event_at) as started_at,
        max(session_events.event_at) as ended_at,
        (array_agg(
            session_events.anonymous_id order by session_events.event_at, session_events.event_id
        ) filter (where session_events.anonymous_id is not null))[1] as anonymous_id,
        (array_agg(
            session_events.customer_id order by session_events.event_at, session_events.event_id
        ) filter (where session_events.customer_id is not null))[1] as customer_id,
        (array_agg(
            session_events.device_type order by session_events.event_at, session_events.event_id
        ))[1] as device_type,
        (array_agg(
            session_events.utm_source order by session_events.event_at, session_events.event_id
        ))[1] as utm_source,
        (array_agg(
            session_events.utm_medium order by session_events.event_at, session_events.event_id
        ))[1] as utm_medium,
        (array_agg(
            session_events.utm_campaign order by session_events.event_at, session_events.event_id
        ))[1] as utm_campaign,
        count(*) as event_count,
        count(*) filter (where session_events.event_type = 'page_view') as page_views,
        count(*) filter (where session_events.event_type = 'product_view') as product_views,
        count(*) filter (where session_events.event_type = 'search') as searches,
        count(*) filter (where session_events.event_type = 'add_to_cart') as add_to_cart_events,
        count(*) filter (where session_events.event_type = 'checkout_start') as checkout_events,
        count(distinct session_events.order_id) filter (
            where session_events.event_type = 'purchase'
        ) as purchased_orders,
        bool_or(session_events.event_type = 'login') as has_login,
        max(session_events.load_id) as load_id

    from session_events
    group by 1

),

final as (

    select
        md5(sessions.session_id) as session_key,
        sessions.session_id,
        sessions.started_at,
        sessions.ended_at,
        (sessions.started_at at time zone 'Asia/Hong_Kong')::date as business_date,
        extract(epoch from sessions.ended_at - sessions.started_at)::integer as duration_seconds,
        sessions.device_type,
        sessions.utm_source,
        sessions.utm_medium,
        sessions.utm_campaign,
        sessions.event_count,
        sessions.page_views,
        sessions.product_views,
        sessions.searches,
        sessions.add_to_cart_events,
        sessions.checkout_events,
        sessions.purchased_orders,
        sessions.product_views > 0 as has_product_view,
        sessions.add_to_cart_events > 0 as has_add_to_cart,
        sessions.checkout_events > 0 as has_checkout,
        sessions.purchased_orders > 0 as has_purchase,
        sessions.has_login,
        sessions.customer_id is not null as is_logged_in,
        'shop:' || sessions.customer_id::text as shop_identity_id,
        'web:' || sessions.anonymous_id as web_identity_id,
        sessions.load_id

    from sessions

)

select * from final
