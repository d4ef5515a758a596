-- The privacy officer's register of data-subject requests: one row per
-- request, with whom it matched (pseudonymous customer keys) and, when it
-- matched nobody, why. A request is never dropped: one that matched nobody is
-- reported by the marts gate (expectations/privacy.py) while it may still be
-- answered in time. DECISIONLOG "Privacy requests".
with

privacy_requests as (

    select * from {{ ref('stg_privacy__requests') }}

),

request_matches as (

    select * from {{ ref('int_privacy__request_matches') }}

),

person_map as (

    select distinct
        person_map.person_anchor,
        person_map.customer_key
    from {{ ref('int_identity__person_map') }} as person_map

),

erasures as (

    -- the erasures carried out (include/erasure.py): whom each erased, and when
    select
        erased.request_id,
        min(erased.business_date) as erased_on,
        count(distinct erased.customer_key) as erased_customers,
        string_agg(distinct erased.customer_key, ',' order by erased.customer_key)
            as customer_keys
    from {{ source('erasure', 'erased_identities') }} as erased
    group by 1

),

matched as (

    select
        request_matches.request_id,
        max(request_matches.usable_identifier_count) as usable_identifier_count,
        count(distinct person_map.customer_key) as matched_customers,
        string_agg(distinct person_map.customer_key, ',' order by person_map.customer_key)
            as customer_keys

    from request_matches
    left join person_map
        on request_matches.person_anchor = person_map.person_anchor
    group by 1

),

final as (

    select
        privacy_requests.request_id,
        privacy_requests.request_type,
        privacy_requests.received_at,
        privacy_requests.identifiers_given,
        matched.usable_identifier_count,
        coalesce(erasures.erased_customers, matched.matched_customers) as matched_customers,
        coalesce(erasures.customer_keys, matched.customer_keys, '') as customer_keys,
        erasures.erased_on,
        case
            when erasures.request_id is not null then 'erased'
            when matched.matched_customers > 0 then 'matched'
            when matched.usable_identifier_count = 0 then 'no_usable_identifier'
            else 'matches_nobody'
        end as match_status

    from privacy_requests
    inner join matched
        on privacy_requests.request_id = matched.request_id
    left join erasures
        on privacy_requests.request_id = erasures.request_id

)

select * from final
