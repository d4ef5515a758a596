-- One row per source identity (shop account, loyalty card, web cookie that
-- logged in, complaint ticket) with its person_anchor and its attributes,
-- so that dim_customer, pii_customer and the opt-out match read them from
-- one place. Personal data: schema pii.
with

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

records as (

    select * from {{ ref('int_identity__records') }}

),

blocked_identifiers as (

    select * from {{ ref('blocked_identifiers') }}

),

final as (

    select
        person_map.identity_id,
        person_map.person_anchor,
        person_map.identity_type,
        -- same as identity_type; the name dim_customer reads
        person_map.identity_type as source_system,
        -- whose contact data a person's preferred contact comes from first
        case person_map.identity_type
            when 'shop' then 1
            when 'loyalty' then 2
            when 'complaint' then 3
            when 'web' then 4
        end as contact_preference_rank,
        records.shop_customer_id,
        records.loyalty_card_no,
        records.full_name,
        records.email,
        records.phone,
        records.date_of_birth,
        records.district,
        records.loyalty_tier,
        records.is_marketing_opt_in,
        records.is_account_closed,
        records.first_seen_at,
        records.updated_at,
        case records.loyalty_tier
            when 'platinum' then 4
            when 'gold' then 3
            when 'silver' then 2
            when 'classic' then 1
        end as loyalty_tier_rank,
        blocked_emails.identifier_value is not null as is_email_blocked,
        blocked_phones.identifier_value is not null as is_phone_blocked,
        blocked_cards.identifier_value is not null as is_loyalty_card_blocked

    from person_map
    inner join records
        on person_map.identity_id = records.identity_id
    left join blocked_identifiers as blocked_emails
        on
            blocked_emails.identifier_type = 'email'
            and records.email = blocked_emails.identifier_value
    left join blocked_identifiers as blocked_phones
        on
            blocked_phones.identifier_type = 'phone'
            and records.phone = blocked_phones.identifier_value
    left join blocked_identifiers as blocked_cards
        on
            blocked_cards.identifier_type = 'loyalty_card_no'
            and records.loyalty_card_no = blocked_cards.identifier_value

)

select * from final
