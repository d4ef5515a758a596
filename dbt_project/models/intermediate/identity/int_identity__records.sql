{#-
    The nodes of the identity graph: one row per source record that can be
    (part of) a person, with the identifiers and attributes it carries.
    Shop accounts, loyalty cards and complaint tickets are all records; a web
    cookie (anonymous_id) is a record only once a web event carried a
    customer_id for it (a login, a signup or a remembered session): a cookie
    that never logged in identifies nobody and is left out. A cookie's
    customer_ids are edges (int_identity__edges), not attributes: it may
    carry several.

    anchor_rank and anchor_sort_key fix the order in which a person's records
    compete to be its person_anchor: shop accounts first (the smallest
    customer_id, i.e. the oldest account), then loyalty cards, web cookies and
    complaint tickets, each by its id.
-#}
with

shop_customers as (

    select * from {{ ref('stg_shop__customers') }}

),

loyalty_members as (

    select * from {{ ref('stg_loyalty__members') }}

),

web_events as (

    select * from {{ ref('stg_web__events') }}

),

complaint_tickets as (

    select * from {{ ref('stg_complaints__tickets') }}

),

shop_records as (

    select
        'shop' as identity_type,
        shop_customers.customer_id::text as source_id,
        1 as anchor_rank,
        -- numeric order as text: '10001' must not sort before '9999'
        lpad(shop_customers.customer_id::text, 20, '0') as anchor_sort_key,
        shop_customers.customer_id as shop_customer_id,
        null::text as loyalty_card_no,
        shop_customers.full_name,
        shop_customers.email,
        shop_customers.phone,
        shop_customers.date_of_birth,
        shop_customers.district,
        null::text as loyalty_tier,
        shop_customers.is_marketing_opt_in,
        shop_customers.is_deleted as is_account_closed,
        shop_customers.created_at as first_seen_at,
        shop_customers.updated_at

    from shop_customers

),

loyalty_records as (

    select
        'loyalty' as identity_type,
        loyalty_members.card_no as source_id,
        2 as anchor_rank,
        loyalty_members.card_no as anchor_sort_key,
        null::bigint as shop_customer_id,
        loyalty_members.card_no as loyalty_card_no,
        loyalty_members.full_name,
        loyalty_members.email,
        loyalty_members.phone,
        null::date as date_of_birth,
        loyalty_members.district,
        loyalty_members.loyalty_tier,
        loyalty_members.is_marketing_opt_in,
        false as is_account_closed,
        coalesce(
            {{ local_hk_to_utc('loyalty_members.joined_on::timestamp') }},
            loyalty_members.updated_at
        ) as first_seen_at,
        loyalty_members.updated_at

    from loyalty_members

),

cookies as (

    select
        web_events.anonymous_id,
        min(web_events.event_at) as first_event_at,
        max(web_events.event_at) as last_event_at

    from web_events
    where web_events.anonymous_id is not null
    group by 1
    having count(web_events.customer_id) > 0

),

web_records as (

    -- a cookie carries no personal attributes and gives no consent
    select
        'web' as identity_type,
        cookies.anonymous_id as source_id,
        3 as anchor_rank,
        cookies.anonymous_id as anchor_sort_key,
        null::bigint as shop_customer_id,
        null::text as loyalty_card_no,
        null::text as full_name,
        null::text as email,
        null::text as phone,
        null::date as date_of_birth,
        null::text as district,
        null::text as loyalty_tier,
        false as is_marketing_opt_in,
        false as is_account_closed,
        cookies.first_event_at as first_seen_at,
        cookies.last_event_at as updated_at

    from cookies

),

complaint_records as (

    -- the contact written on the ticket; a complaint gives no consent
    select
        'complaint' as identity_type,
        complaint_tickets.ticket_id as source_id,
        4 as anchor_rank,
        complaint_tickets.ticket_id as anchor_sort_key,
        null::bigint as shop_customer_id,
        complaint_tickets.customer_loyalty_card_no as loyalty_card_no,
        complaint_tickets.customer_name as full_name,
        complaint_tickets.customer_email as email,
        complaint_tickets.customer_phone as phone,
        null::date as date_of_birth,
        null::text as district,
        null::text as loyalty_tier,
        false as is_marketing_opt_in,
        false as is_account_closed,
        complaint_tickets.created_at as first_seen_at,
        complaint_tickets.updated_at

    from complaint_tickets

),

records as (

    select * from shop_records
    union all
    select * from loyalty_records
    union all
    select * from web_records
    union all
    select * from complaint_records

),

erased_identities as (

    select * from {{ source('erasure', 'erased_identities') }}

),

final as (

    -- a record on the erasure suppression list is nobody any more: what is
    -- left of it (a de-identified ticket) is not linked to anyone
    select
        records.identity_type || ':' || records.source_id as identity_id,
        records.*

    from records
    left join erased_identities
        on records.identity_type || ':' || records.source_id = erased_identities.identity_id
    where erased_identities.identity_id is null

)

select * from final
