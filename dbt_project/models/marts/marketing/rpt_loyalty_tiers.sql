-- Loyalty tier distribution and migrations per period: for each period end
-- of int_customers__period_ends (the last month ends and the business
-- date), the members in each tier at that day's end, their share, and the
-- movements into and out of the tier during the period (since the previous
-- period end): joined, upgraded into, downgraded into, upgraded out of,
-- downgraded out of.
with

tier_history as (

    select * from {{ ref('int_customers__loyalty_tier_history') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

tiers as (

    select
        tier_list.loyalty_tier,
        tier_list.tier_rank
    from (
        values ('classic', 1), ('silver', 2), ('gold', 3), ('platinum', 4)
    ) as tier_list (loyalty_tier, tier_rank)

),

periods as (

    select
        period_ends.period_end_date,
        coalesce(
            lag(period_ends.period_end_date) over (order by period_ends.period_end_date),
            '-infinity'::date
        ) as previous_period_end_date,
        period_ends.is_month_end,
        period_ends.is_as_of_date,
        period_ends.as_of_date

    from period_ends

),

members_at_period_end as (

    select
        periods.period_end_date,
        tier_history.to_tier as loyalty_tier,
        count(*) as members

    from periods
    inner join tier_history
        on
            periods.period_end_date >= tier_history.tier_date
            and (
                tier_history.next_tier_date is null
                or periods.period_end_date < tier_history.next_tier_date
            )
    group by 1, 2

),

movements_in as (

    select
        periods.period_end_date,
        tier_history.to_tier as loyalty_tier,
        count(*) filter (where tier_history.change_type = 'joined') as joined,
        count(*) filter (where tier_history.change_type = 'upgrade') as upgraded_in,
        count(*) filter (where tier_history.change_type = 'downgrade') as downgraded_in

    from periods
    inner join tier_history
        on
            periods.previous_period_end_date < tier_history.tier_date
            and periods.period_end_date >= tier_history.tier_date
    group by 1, 2

),

movements_out as (

    select
        periods.period_end_date,
        tier_history.from_tier as loyalty_tier,
        count(*) filter (where tier_history.change_type = 'upgrade') as upgraded_out,
        count(*) filter (where tier_history.change_type = 'downgrade') as downgraded_out

    from periods
    inner join tier_history
        on
            periods.previous_period_end_date < tier_history.tier_date
            and periods.period_end_date >= tier_history.tier_date
    where tier_history.from_tier is not null
    group by 1, 2

),

final as (

    select
        periods.period_end_date,
        tiers.loyalty_tier,
        tiers.tier_rank,
        periods.is_month_end,
        periods.is_as_of_date,

        coalesce(members_at_period_end.members, 0) as members,
        round(
            coalesce(members_at_period_end.members, 0)::numeric
            / nullif(sum(coalesce(members_at_period_end.members, 0)) over (
                partition by periods.period_end_date
            ), 0),
            4
        ) as member_share,
        coalesce(movements_in.joined, 0) as joined,
        coalesce(movements_in.upgraded_in, 0) as upgraded_in,
        coalesce(movements_in.downgraded_in, 0) as downgraded_in,
        coalesce(movements_out.upgraded_out, 0) as upgraded_out,
        coalesce(movements_out.downgraded_out, 0) as downgraded_out,

        periods.as_of_date

    from periods
    cross join tiers
    left join members_at_period_end
        on
            periods.period_end_date = members_at_period_end.period_end_date
            and tiers.loyalty_tier = members_at_period_end.loyalty_tier
    left join movements_in
        on
            periods.period_end_date = movements_in.period_end_date
            and tiers.loyalty_tier = movements_in.loyalty_tier
    left join movements_out
        on
            periods.period_end_date = movements_out.period_end_date
            and tiers.loyalty_tier = movements_out.loyalty_tier

)

select * from final
