{#-
    The edges of the identity graph: one row per (record, identifier value)
    that a match rule (seed identity_match_rules) lets take part, with the
    guard that decides whether it links.

    Two records are one person when they share a linking identifier value
    (and transitively: int_identity__person_map takes connected components).
    An edge does not link when, in this order:
      blocked        the value is a junk placeholder (seed blocked_identifiers);
      over_cap       the value is held by more than
                     var('identity_max_records_per_identifier') records of one
                     system that keeps one record per person (rules with
                     counts_toward_cap: shop accounts, loyalty cards), e.g. a
                     household phone on two shop accounts: it links none of
                     them, and no cookie or ticket through it either;
      vetoed         the rule is vetoed_by 'email' and the value's holders
                     carry different (unblocked) emails: a phone on a shop
                     account and on a card with another email is a phone
                     shared by two people, not one person;
      shared_record  the record holds several values of the identifier type
                     (a cookie that logged in as two customers: a shared
                     device), so none of them links;
      sole_holder    no other record passing the guards holds the value
                     (nothing to link; kept so every identifier is visible).
    Edges that pass are 'linked'. Non-linking edges are kept to explain why
    two records were NOT merged. Raw identifier values: schema pii.
-#}
with

records as (

    select * from {{ ref('int_identity__records') }}

),

web_events as (

    select * from {{ ref('stg_web__events') }}

),

match_rules as (

    select * from {{ ref('identity_match_rules') }}

),

blocked_identifiers as (

    select * from {{ ref('blocked_identifiers') }}

),

-- every identifier value each record carries (normalised in staging)
observations as (

    select
        records.identity_id,
        records.identity_type,
        'shop_customer_id' as identifier_type,
        records.shop_customer_id::text as identifier_value
    from records

    union all

    select
        records.identity_id,
        records.identity_type,
        'email' as identifier_type,
        records.email as identifier_value
    from records

    union all

    select
        records.identity_id,
        records.identity_type,
        'phone' as identifier_type,
        records.phone as identifier_value
    from records

    union all

    select
        records.identity_id,
        records.identity_type,
        'loyalty_card_no' as identifier_type,
        records.loyalty_card_no as identifier_value
    from records

    union all

    -- a cookie carries every customer_id it was logged in as
    select distinct
        'web:' || web_events.anonymous_id as identity_id,
        'web' as identity_type,
        'shop_customer_id' as identifier_type,
        web_events.customer_id::text as identifier_value
    from web_events
    where web_events.anonymous_id is not null

),

-- only what a match rule lets in
ruled_edges as (

    select
        observations.identity_id,
        observations.identity_type,
        observations.identifier_type,
        observations.identifier_value,
        match_rules.rule_name,
        match_rules.counts_toward_cap,
        match_rules.vetoed_by

    from observations
    inner join match_rules
        on
            observations.identity_type = match_rules.record_type
            and observations.identifier_type = match_rules.identifier_type
    where observations.identifier_value is not null

),

screened as (

    select
        ruled_edges.*,
        blocked_identifiers.identifier_value is not null as is_blocked

    from ruled_edges
    left join blocked_identifiers
        on
            ruled_edges.identifier_type = blocked_identifiers.identifier_type
            and ruled_edges.identifier_value = blocked_identifiers.identifier_value

),

-- window functions rather than self-joins: one pass, whatever the row estimates
record_counts as (

    select
        screened.*,
        -- records holding the value within the record's own system
        count(*) over (
            partition by
                screened.identifier_type,
                screened.identifier_value,
                screened.identity_type
        ) as holders_in_system,
        -- values of this identifier type the record holds
        count(*) over (
            partition by screened.identity_id, screened.identifier_type
        ) as values_per_record,
        -- the record's own usable email, for the email veto
        max(
            case
                when screened.identifier_type = 'email' and not screened.is_blocked
                    then screened.identifier_value
            end
        ) over (partition by screened.identity_id) as record_email

    from screened

),

guarded as (

    select
        record_counts.*,
        coalesce(
            max(record_counts.holders_in_system) filter (
                where record_counts.counts_toward_cap
            ) over (
                partition by record_counts.identifier_type, record_counts.identifier_value
            ),
            0
        ) as max_holders_per_system,
        -- the holders' emails: two different ones mean two people
        min(record_counts.record_email) over (
            partition by record_counts.identifier_type, record_counts.identifier_value
        ) as first_holder_email,
        max(record_counts.record_email) over (
            partition by record_counts.identifier_type, record_counts.identifier_value
        ) as last_holder_email

    from record_counts

),

guard_verdicts as (

    select
        guarded.*,
        case
            when guarded.is_blocked then 'blocked'
            when
                guarded.max_holders_per_system
                > {{ var('identity_max_records_per_identifier') }}
                then 'over_cap'
            when
                guarded.vetoed_by = 'email'
                and guarded.first_holder_email <> guarded.last_holder_email
                then 'vetoed'
            when guarded.values_per_record > 1 then 'shared_record'
        end as guard

    from guarded

),

-- records the value still links once the guards have spoken
linkable_holders as (

    select
        guard_verdicts.*,
        count(*) filter (where guard_verdicts.guard is null) over (
            partition by guard_verdicts.identifier_type, guard_verdicts.identifier_value
        ) as linkable_holder_count

    from guard_verdicts

),

final as (

    select
        linkable_holders.identity_id,
        linkable_holders.identity_type,
        linkable_holders.identifier_type,
        linkable_holders.identifier_value,
        linkable_holders.rule_name,
        linkable_holders.max_holders_per_system,
        linkable_holders.linkable_holder_count,
        coalesce(
            linkable_holders.guard,
            case
                when linkable_holders.linkable_holder_count > 1 then 'linked' else 'sole_holder'
            end
        ) as edge_status,
        linkable_holders.guard is null
        and linkable_holders.linkable_holder_count > 1 as is_linking

    from linkable_holders

)

select * from final
