-- One row per person who asked not to receive marketing: an
-- opt_out_marketing privacy request that matched them
-- (int_privacy__request_matches, where the matching rule lives).
with

request_matches as (

    select * from {{ ref('int_privacy__request_matches') }}

),

privacy_requests as (

    select * from {{ ref('stg_privacy__requests') }}

),

final as (

    select
        request_matches.person_anchor,
        min(privacy_requests.received_at) as first_opt_out_at,
        count(distinct privacy_requests.request_id) as opt_out_request_count

    from request_matches
    inner join privacy_requests
        on request_matches.request_id = privacy_requests.request_id
    where
        privacy_requests.request_type = 'opt_out_marketing'
        and request_matches.person_anchor is not null
    group by 1

)

select * from final
