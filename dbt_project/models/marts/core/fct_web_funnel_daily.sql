-- The web funnel per Hong Kong day (of the session start) and device type:
-- sessions, and sessions reaching each step (product view, add to cart,
-- checkout start, purchase), with step conversion rates. A step counts a
-- session that has the event, whatever came before it. A small aggregate of
-- the incremental sessions, rebuilt whole each night.
with

sessions as (

    select * from {{ ref('int_web__sessions') }}

),

dated_sessions as (

    select sessions.*
    from sessions
    where {{ business_date_filter('sessions.business_date') }}

),

daily as (

    select
        dated_sessions.business_date,
        coalesce(dated_sessions.device_type, 'unknown') as device_type,
        count(*) as sessions,
        count(*) filter (where dated_sessions.has_product_view) as product_view_sessions,
        count(*) filter (where dated_sessions.has_add_to_cart) as add_to_cart_sessions,
        count(*) filter (where dated_sessions.has_checkout) as checkout_sessions,
        count(*) filter (where dated_sessions.has_purchase) as purchase_sessions

    from dated_sessions
    group by 1, 2

),

final as (

    select
        md5(daily.business_date::text || '|' || daily.device_type) as funnel_day_key,
        daily.business_date,
        daily.device_type,
        daily.sessions,
        daily.product_view_sessions,
        daily.add_to_cart_sessions,
        daily.checkout_sessions,
        daily.purchase_sessions,
        round(daily.product_view_sessions::numeric / daily.sessions, 4)
            as view_rate,
        round(daily.add_to_cart_sessions::numeric / nullif(daily.product_view_sessions, 0), 4)
            as view_to_cart_rate,
        round(daily.checkout_sessions::numeric / nullif(daily.add_to_cart_sessions, 0), 4)
            as cart_to_checkout_rate,
        round(daily.purchase_sessions::numeric / nullif(daily.checkout_sessions, 0), 4)
            as checkout_to_purchase_rate,
        round(daily.purchase_sessions::numeric / daily.sessions, 4)
            as session_conversion_rate,
        {% if business_date() is none -%}
            (select max(all_days.business_date) as max_business_date from daily as all_days)
        {%- else -%}
            '{{ business_date() }}'::date
        {%- endif %} as as_of_date

    from daily

)

select * from final
