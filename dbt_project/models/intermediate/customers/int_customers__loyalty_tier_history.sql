-- The loyalty tier of each person over time, from every version of their
-- loyalty cards known by the business date (stg_loyalty__member_versions),
-- grouped into persons by today's identity stitch. A person's tier on a
-- day is the best tier among their cards' latest versions by the end of
-- that day (as dim_customer's loyalty_tier). One row per person and day on
-- which that tier changed, with the change:
--   baseline  - the first tier seen for a member who joined before the
--               loyalty history starts (the first delta file loaded): not
--               a migration;
--   joined    - the first tier of a member who joined on or after that day;
--   upgrade / downgrade - a higher / lower tier than the day before.
with

member_versions as (

    select * from {{ ref('stg_loyalty__member_versions') }}

),

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

-- the first loyalty file loaded is the baseline: it carries every member
-- who joined before, with the tier they held then
history_start as (

    select min(member_versions.loaded_on) as first_history_date
    from member_versions

),

card_versions as (

    select
        person_map.customer_key,
        member_versions.card_no,
        member_versions.joined_on,
        member_versions.updated_on,
        member_versions.updated_at,
        member_versions.loyalty_tier,
        case member_versions.loyalty_tier
            when 'platinum' then 4
            when 'gold' then 3
            when 'silver' then 2
            when 'classic' then 1
        end as tier_rank

    from member_versions
    inner join person_map
        on 'loyalty:' || member_versions.card_no = person_map.identity_id
    cross join as_of
    where
        member_versions.updated_on <= as_of.as_of_date
        and member_versions.loyalty_tier in ('classic', 'silver', 'gold', 'platinum')

),

-- the days on which one of the person's cards changed
person_days as (

    select distinct
        card_versions.customer_key,
        card_versions.updated_on as tier_date

    from card_versions

),

-- each card's latest version by the end of each of those days
card_state_by_day as (

    select
        person_days.customer_key,
        person_days.tier_date,
        card_versions.tier_rank,
        card_versions.loyalty_tier,
        row_number() over (
            partition by person_days.customer_key, person_days.tier_date, card_versions.card_no
            order by card_versions.updated_at desc
        ) as version_rank

    from person_days
    inner join card_versions
        on
            person_days.customer_key = card_versions.customer_key
            and person_days.tier_date >= card_versions.updated_on

),

person_tier_by_day as (

    select
        card_state_by_day.customer_key,
        card_state_by_day.tier_date,
        max(card_state_by_day.tier_rank) as tier_rank

    from card_state_by_day
    where card_state_by_day.version_rank = 1
    group by 1, 2

),

person_joined as (

    select
        card_versions.customer_key,
        min(card_versions.joined_on) as joined_on

    from card_versions
    group by 1

),

with_previous as (

    select
        person_tier_by_day.customer_key,
        person_tier_by_day.tier_date,
        person_tier_by_day.tier_rank,
        lag(person_tier_by_day.tier_rank) over (
            partition by person_tier_by_day.customer_key
            order by person_tier_by_day.tier_date
        ) as previous_tier_rank

    from person_tier_by_day

),

changes as (

    select
        with_previous.customer_key,
        with_previous.tier_date,
        with_previous.previous_tier_rank,
        with_previous.tier_rank,
        case
            when
                with_previous.previous_tier_rank is null
                and person_joined.joined_on >= history_start.first_history_date
                then 'joined'
            when with_previous.previous_tier_rank is null then 'baseline'
            when with_previous.tier_rank > with_previous.previous_tier_rank then 'upgrade'
            else 'downgrade'
        end as change_type

    from with_previous
    inner join person_joined
        on with_previous.customer_key = person_joined.customer_key
    cross join history_start
    where
        with_previous.previous_tier_rank is null
        or with_previous.tier_rank <> with_previous.previous_tier_rank

),

final as (

    select
        changes.customer_key,
        changes.tier_date,
        lead(changes.tier_date) over (
            partition by changes.customer_key
            order by changes.tier_date
        ) as next_tier_date,
        case changes.previous_tier_rank
            when 4 then 'platinum'
            when 3 then 'gold'
            when 2 then 'silver'
            when 1 then 'classic'
        end as from_tier,
        case changes.tier_rank
            when 4 then 'platinum'
            when 3 then 'gold'
            when 2 then 'silver'
            when 1 then 'classic'
        end as to_tier,
        changes.tier_rank - changes.previous_tier_rank as tier_steps,
        changes.change_type

    from changes

)

select * from final
