-- The personal data behind each customer_key: the only place names, emails,
-- phones and card numbers appear downstream of raw (with the identity graph's
-- working models, also in schema pii). One row per person, including persons
-- known only from a complaint ticket. Schema pii, restricted.
with

person_identities as (

    select * from {{ ref('int_identity__person_identities') }}

),

persons as (

    select
        person_identities.person_anchor,

        min(person_identities.shop_customer_id) as shop_customer_id,

        -- preferred contact: the shop account's, else the latest loyalty
        -- member's, else the latest complaint ticket's; blocked junk values
        -- are no contact at all
        (array_agg(
            person_identities.full_name
            order by
                person_identities.contact_preference_rank asc,
                person_identities.updated_at desc
        ) filter (where person_identities.full_name is not null))[1] as full_name,
        (array_agg(
            person_identities.email
            order by
                person_identities.contact_preference_rank asc,
                person_identities.updated_at desc
        ) filter (
            where person_identities.email is not null
            and not person_identities.is_email_blocked
        ))[1] as email,
        (array_agg(
            person_identities.phone
            order by
                person_identities.contact_preference_rank asc,
                person_identities.updated_at desc
        ) filter (
            where person_identities.phone is not null
            and not person_identities.is_phone_blocked
        ))[1] as phone,
        max(person_identities.date_of_birth) as date_of_birth,
        (array_agg(
            person_identities.district
            order by
                person_identities.contact_preference_rank asc,
                person_identities.updated_at desc
        ) filter (where person_identities.district is not null))[1] as district,

        -- everything known, for lookups, access requests and erasure
        array_agg(distinct person_identities.full_name) filter (
            where person_identities.full_name is not null
        ) as all_full_names,
        array_agg(distinct person_identities.email) filter (
            where person_identities.email is not null
        ) as all_emails,
        array_agg(distinct person_identities.phone) filter (
            where person_identities.phone is not null
        ) as all_phones,
        array_agg(distinct person_identities.loyalty_card_no) filter (
            where person_identities.loyalty_card_no is not null
        ) as loyalty_card_nos,
        array_agg(
            person_identities.identity_id order by person_identities.identity_id
        ) as identity_ids

    from person_identities
    group by 1

),

final as (

    select
        {{ pseudonymise('persons.person_anchor') }} as customer_key,
        persons.person_anchor,
        persons.shop_customer_id,
        persons.full_name,
        persons.email,
        persons.phone,
        persons.date_of_birth,
        persons.district,
        persons.all_full_names,
        persons.all_emails,
        persons.all_phones,
        persons.loyalty_card_nos,
        persons.identity_ids

    from persons

)

select * from final
