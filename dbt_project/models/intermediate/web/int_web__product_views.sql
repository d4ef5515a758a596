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
    One row per web session and product viewed in it (product_view events),
    the input of fct_ropo. Incremental by session, like int_web__sessions: a
    session with an event from a recent load is rebuilt whole.
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

product_views as (

    select events.*
    from events
    {% if is_incremental() %}
        -- changed_sessions holds each session_id once: no duplicated events
        inner join changed_sessions
            on events.session_id = changed_sessions.session_id
    {% endif %}
    where
        events.session_id is not null
        and events.event_type = 'product_view'
        and events.sku is not null

),

final as (

    select
        md5(product_views.session_id || '|' || product_views.sku) as session_product_key,
        md5(product_views.session_id) as session_key,
        product_views.sku,
        min(product_views.event_at) as first_viewed_at,
        count(*) as view_count,
        max(product_views.load_id) as load_id

    from product_views
    group by 1, 2, 3

)

select * from final
