-- Loyalty tier migrations: one row per person and day their tier changed
-- (upgrade, downgrade) or they joined the programme since the loyalty
-- history starts, from the card versions known by the business date
-- (int_customers__loyalty_tier_history). A person's tier is the best of
-- their cards, as in dim_customer.
with

tier_history as (

    select * from {{ ref('int_customers__loyalty_tier_history') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

final as (

    select
        md5(tier_history.customer_key || '|' || tier_history.tier_date::text) as tier_change_key,
        tier_history.customer_key,
        tier_history.tier_date as changed_on,
        date_trunc('month', tier_history.tier_date)::date as changed_month,
        tier_history.from_tier,
        tier_history.to_tier,
        tier_history.change_type,
        tier_history.tier_steps,
        as_of.as_of_date

    from tier_history
    cross join as_of
    where tier_history.change_type <> 'baseline'

)

select * from final
