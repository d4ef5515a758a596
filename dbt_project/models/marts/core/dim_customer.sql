-- One row per person (see int_identity__person_map for who is one person):
-- a shop account, a loyalty card, or a complaint ticket matching nobody,
-- with every identity linked to it. customer_key is the only customer
-- identifier in marts: no names, emails, phones, addresses, card numbers or
-- shop ids.
with

person_identities as (

    select * from {{ ref('int_identity__person_identities') }}

),

marketing_opt_outs as (

    select * from {{ ref('int_identity__marketing_opt_outs') }}

),

persons as (

    select
        person_identities.person_anchor,

        bool_or(person_identities.identity_type = 'shop') as has_shop_account,
        bool_or(person_identities.identity_type = 'loyalty') as has_loyalty_card,
        bool_or(person_identities.identity_type = 'web') as has_web_identity,
        bool_or(person_identities.identity_type = 'complaint') as has_complaint_ticket,

        -- the best tier among the person's cards
        (array_agg(
            person_identities.loyalty_tier
            order by person_identities.loyalty_tier_rank desc
        ) filter (where person_identities.loyalty_tier is not null))[1] as loyalty_tier,

        -- the shop account's district first, else the latest member district
        (array_agg(
            person_identities.district
            order by
                (person_identities.identity_type = 'shop') desc,
                person_identities.updated_at desc
        ) filter (where person_identities.district is not null))[1] as home_district,

        -- consent given at the shop lapses with the closed account; cookies
        -- and complaint tickets never give consent
        coalesce(bool_or(
            person_identities.is_marketing_opt_in
            and not person_identities.is_account_closed
        ) filter (where person_identities.identity_type in ('shop', 'loyalty')), false)
            as has_marketing_consent,

        -- account creation or joining; for a person with neither, the first
        -- logged-in visit or complaint
        coalesce(
            min(person_identities.first_seen_at) filter (
                where person_identities.identity_type in ('shop', 'loyalty')
            ),
            min(person_identities.first_seen_at)
        ) as first_seen_at,
        coalesce(bool_or(person_identities.is_account_closed) filter (
            where person_identities.identity_type = 'shop'
        ), false) as is_account_closed

    from person_identities
    group by 1

),

final as (

    select
        {{ pseudonymise('persons.person_anchor') }} as customer_key,

        persons.has_shop_account,
        persons.has_loyalty_card,
        persons.loyalty_tier,
        persons.home_district,

        persons.has_marketing_consent,
        marketing_opt_outs.person_anchor is not null as is_marketing_opted_out,
        persons.has_marketing_consent
        and marketing_opt_outs.person_anchor is null as is_marketing_opt_in,

        persons.first_seen_at,
        persons.is_account_closed,
        persons.has_web_identity,
        persons.has_complaint_ticket

    from persons
    left join marketing_opt_outs
        on persons.person_anchor = marketing_opt_outs.person_anchor

)

select * from final
