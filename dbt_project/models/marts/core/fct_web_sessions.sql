-- One row per web session (the tracker's session_id). Kept incrementally in
-- int_web__sessions; this model attributes each session to a customer through
-- the identity map as it is today: the shop account the visitor logged in
-- with ('shop:<customer_id>'), else the cookie ('web:<anonymous_id>').
-- With var('business_date') set, no session started after that HK date.
with

sessions as (

    select * from {{ ref('int_web__sessions') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

dated_sessions as (

    select sessions.*
    from sessions
    where {{ business_date_filter('sessions.business_date') }}

),

final as (

    select
        dated_sessions.session_key,
        coalesce(shop_identity.customer_key, web_identity.customer_key) as customer_key,
        dated_sessions.business_date,
        dated_sessions.started_at,
        dated_sessions.ended_at,
        dated_sessions.duration_seconds,
        dated_sessions.device_type,
        dated_sessions.utm_source,
        dated_sessions.utm_medium,
        dated_sessions.utm_campaign,
        dated_sessions.event_count,
        dated_sessions.page_views,
        dated_sessions.product_views,
        dated_sessions.searches,
        dated_sessions.add_to_cart_events,
        dated_sessions.checkout_events,
        dated_sessions.purchased_orders,
        dated_sessions.has_product_view,
        dated_sessions.has_add_to_cart,
        dated_sessions.has_checkout,
        dated_sessions.has_purchase,
        dated_sessions.is_logged_in,
        {% if business_date() is none -%}
            (
                select max(all_sessions.business_date) as max_business_date
                from sessions as all_sessions
            )
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from dated_sessions
    left join person_map as shop_identity
        on dated_sessions.shop_identity_id = shop_identity.identity_id
    left join person_map as web_identity
        on dated_sessions.web_identity_id = web_identity.identity_id

)

select * from final
