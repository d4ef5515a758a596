-- One row per person who asked not to receive marketing: an
-- opt_out_marketing privacy request whose normalised email, phone or loyalty
-- card equals one of the person's identifiers. Shared phones do opt out every
-- person holding them (suppressing too much is the safe side); blocked
-- identifiers identify nobody and never match.
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

opt_out_requests as (

    select * from privacy_requests
    where request_type = 'opt_out_marketing'

),

request_identifiers as (

    select
        opt_out_requests.request_id,
        opt_out_requests.received_at,
        'email' as identifier_type,
        opt_out_requests.email as identifier_value
    from opt_out_requests
    where opt_out_requests.email is not null

    union all

    select
        opt_out_requests.request_id,
        opt_out_requests.received_at,
        'phone' as identifier_type,
        opt_out_requests.phone as identifier_value
    from opt_out_requests
    where opt_out_requests.phone is not null

    union all

    select
        opt_out_requests.request_id,
        opt_out_requests.received_at,
        'loyalty_card_no' as identifier_type,
        opt_out_requests.loyalty_card_no as identifier_value
    from opt_out_requests
    where opt_out_requests.loyalty_card_no is not null

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

final as (

    select
        person_identifiers.person_anchor,
        min(usable_request_identifiers.received_at) as first_opt_out_at,
        count(distinct usable_request_identifiers.request_id) as opt_out_request_count

    from person_identifiers
    inner join usable_request_identifiers
        on
            person_identifiers.identifier_type = usable_request_identifiers.identifier_type
            and person_identifiers.identifier_value = usable_request_identifiers.identifier_value
    group by 1

)

select * from final
