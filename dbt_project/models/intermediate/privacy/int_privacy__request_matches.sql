-- One row per privacy request (any type) and person it matches, or one row
-- without a person for a request that matches nobody, never dropped: a
-- request matches a person when its normalised email, phone or loyalty card
-- equals one of the person's identifiers (DECISIONLOG "Privacy requests").
-- Shared phones match every person holding them (for an opt-out,
-- suppressing too much is the safe side; an erasure or access request is
-- checked by the privacy officer, who sees every match in
-- rpt_privacy_requests); blocked identifiers identify nobody and never match.
with

person_identities as (

    select * from {{ ref('int_identity__person_identities') }}

),

privacy_requests as (

    select * from {{ ref('stg_privacy__requests') }}

),

blocked_identifiers as (

    select * from {{ ref('blocked_identifiers') }}

),

person_identifiers as (

    select
        person_identities.person_anchor,
        'email' as identifier_type,
        person_identities.email as identifier_value
    from person_identities
    where person_identities.email is not null

    union all

    select
        person_identities.person_anchor,
        'phone' as identifier_type,
        person_identities.phone as identifier_value
    from person_identities
    where person_identities.phone is not null

    union all

    select
        person_identities.person_anchor,
        'loyalty_card_no' as identifier_type,
        person_identities.loyalty_card_no as identifier_value
    from person_identities
    where person_identities.loyalty_card_no is not null

),

request_identifiers as (

    select
        privacy_requests.request_id,
        'email' as identifier_type,
        privacy_requests.email as identifier_value
    from privacy_requests
    where privacy_requests.email is not null

    union all

    select
        privacy_requests.request_id,
        'phone' as identifier_type,
        privacy_requests.phone as identifier_value
    from privacy_requests
    where privacy_requests.phone is not null

    union all

    select
        privacy_requests.request_id,
        'loyalty_card_no' as identifier_type,
        privacy_requests.loyalty_card_no as identifier_value
    from privacy_requests
    where privacy_requests.loyalty_card_no is not null

),

usable_request_identifiers as (

    select request_identifiers.*
    from request_identifiers
    left join blocked_identifiers
        on
            request_identifiers.identifier_type = blocked_identifiers.identifier_type
            and request_identifiers.identifier_value = blocked_identifiers.identifier_value
    where blocked_identifiers.identifier_value is null

),

usable_counts as (

    select
        usable_request_identifiers.request_id,
        count(*) as usable_identifier_count

    from usable_request_identifiers
    group by 1

),

matches as (

    select distinct
        usable_request_identifiers.request_id,
        person_identifiers.person_anchor

    from usable_request_identifiers
    inner join person_identifiers
        on
            usable_request_identifiers.identifier_type = person_identifiers.identifier_type
            and usable_request_identifiers.identifier_value = person_identifiers.identifier_value

),

final as (

    select
        privacy_requests.request_id,
        matches.person_anchor,
        coalesce(usable_counts.usable_identifier_count, 0) as usable_identifier_count

    from privacy_requests
    left join matches
        on privacy_requests.request_id = matches.request_id
    left join usable_counts
        on privacy_requests.request_id = usable_counts.request_id

)

select * from final
