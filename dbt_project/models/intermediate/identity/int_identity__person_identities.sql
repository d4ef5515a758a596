-- One row per source identity with its person_anchor and its attributes,
-- so that dim_customer, pii_customer and the opt-out match read them from
-- one place.
with

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

shop_customers as (

    select * from {{ ref('stg_shop__customers') }}

),

loyalty_members as (

    select * from {{ ref('stg_loyalty__members') }}

),

blocked_identifiers as (

    select * from {{ ref('blocked_identifiers') }}

),

shop_identities as (

    select
        person_map.identity_id,
        person_map.person_anchor,
        person_map.source_system,
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

    from person_map
    inner join shop_customers
        on person_map.source_id = shop_customers.customer_id::text
    where person_map.source_system = 'shop'

),

loyalty_identities as (

    select
        person_map.identity_id,
        person_map.person_anchor,
        person_map.source_system,
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

    from person_map
    inner join loyalty_members
        on person_map.source_id = loyalty_members.card_no
    where person_map.source_system = 'loyalty'

),

identities as (

    select * from shop_identities
    union all
    select * from loyalty_identities

),

final as (

    select
        identities.*,
        case identities.loyalty_tier
            when 'platinum' then 4
            when 'gold' then 3
            when 'silver' then 2
            when 'classic' then 1
        end as loyalty_tier_rank,
        blocked_emails.identifier_value is not null as is_email_blocked,
        blocked_phones.identifier_value is not null as is_phone_blocked

    from identities
    left join blocked_identifiers as blocked_emails
        on
            blocked_emails.identifier_type = 'email'
            and identities.email = blocked_emails.identifier_value
    left join blocked_identifiers as blocked_phones
        on
            blocked_phones.identifier_type = 'phone'
            and identities.phone = blocked_phones.identifier_value

)

select * from final
