{#-
    First identity stitch: one row per source identity (a shop account or a
    loyalty card) with the person it belongs to, person_anchor.

    Match rules (the one place they are stated; the yml says the same):
      1. Every shop account is its own person: 'shop:' || customer_id.
      2. A loyalty member links to the shop account with the same normalised
         email. If several shop accounts have that email, the smallest
         customer_id wins.
      3. Else it links to the shop account with the same normalised phone, but
         only when that phone belongs to exactly one shop account AND exactly
         one member (households share phones: a shared phone never merges).
      4. Blocked identifiers (seed blocked_identifiers) never link.
      5. Otherwise the member is its own person: 'loyalty:' || card_no.
    Shop accounts are never merged with each other, nor members with members.
-#}
with

shop_customers as (

    select * from {{ ref('stg_shop__customers') }}

),

loyalty_members as (

    select * from {{ ref('stg_loyalty__members') }}

),

blocked_identifiers as (

    select * from {{ ref('blocked_identifiers') }}

),

blocked_emails as (

    select blocked_identifiers.identifier_value as email
    from blocked_identifiers
    where blocked_identifiers.identifier_type = 'email'

),

blocked_phones as (

    select blocked_identifiers.identifier_value as phone
    from blocked_identifiers
    where blocked_identifiers.identifier_type = 'phone'

),

-- identifiers usable for matching: blocked values are dropped (rule 4)
shop_keys as (

    select
        shop_customers.customer_id,
        case
            when blocked_emails.email is null then shop_customers.email
        end as email,
        case
            when blocked_phones.phone is null then shop_customers.phone
        end as phone

    from shop_customers
    left join blocked_emails
        on shop_customers.email = blocked_emails.email
    left join blocked_phones
        on shop_customers.phone = blocked_phones.phone

),

member_keys as (

    select
        loyalty_members.card_no,
        case
            when blocked_emails.email is null then loyalty_members.email
        end as email,
        case
            when blocked_phones.phone is null then loyalty_members.phone
        end as phone

    from loyalty_members
    left join blocked_emails
        on loyalty_members.email = blocked_emails.email
    left join blocked_phones
        on loyalty_members.phone = blocked_phones.phone

),

-- rule 2: same email, smallest customer_id
email_matches as (

    select
        member_keys.card_no,
        min(shop_keys.customer_id) as customer_id

    from member_keys
    inner join shop_keys
        on member_keys.email = shop_keys.email
    group by 1

),

-- rule 3: a phone held by exactly one shop account and exactly one member
shop_phones_held_once as (

    select shop_keys.phone
    from shop_keys
    where shop_keys.phone is not null
    group by 1
    having count(*) = 1

),

member_phones_held_once as (

    select member_keys.phone
    from member_keys
    where member_keys.phone is not null
    group by 1
    having count(*) = 1

),

phone_matches as (

    select
        member_keys.card_no,
        shop_keys.customer_id

    from member_keys
    inner join member_phones_held_once
        on member_keys.phone = member_phones_held_once.phone
    inner join shop_phones_held_once
        on member_keys.phone = shop_phones_held_once.phone
    inner join shop_keys
        on member_keys.phone = shop_keys.phone

),

shop_identities as (

    select
        'shop' as source_system,
        shop_keys.customer_id::text as source_id,
        shop_keys.customer_id as linked_customer_id,
        'shop_account' as match_rule

    from shop_keys

),

loyalty_identities as (

    select
        'loyalty' as source_system,
        member_keys.card_no as source_id,
        coalesce(
            email_matches.customer_id, phone_matches.customer_id
        ) as linked_customer_id,
        case
            when email_matches.customer_id is not null then 'email'
            when phone_matches.customer_id is not null then 'phone'
            else 'none'
        end as match_rule

    from member_keys
    left join email_matches
        on member_keys.card_no = email_matches.card_no
    left join phone_matches
        on member_keys.card_no = phone_matches.card_no

),

identities as (

    select * from shop_identities
    union all
    select * from loyalty_identities

),

final as (

    select
        identities.source_system || ':' || identities.source_id as identity_id,
        identities.source_system,
        identities.source_id,
        case
            when identities.linked_customer_id is not null
                then 'shop:' || identities.linked_customer_id::text
            else 'loyalty:' || identities.source_id
        end as person_anchor,
        identities.match_rule,
        identities.linked_customer_id

    from identities

)

select * from final
