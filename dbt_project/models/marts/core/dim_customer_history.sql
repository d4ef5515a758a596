-- SCD2 history of each customer's loyalty tier, home district and marketing
-- consent, from the snapshot snp_customer_attributes, as known on the
-- business date: one row per customer_key and version. valid_from is the
-- end of the business day whose night first saw the values (the next Hong
-- Kong midnight), valid_to the end of the day they changed (exclusive),
-- null while current. A re-run for an older business date shows the
-- history as it stood that night. History starts with the first night the
-- snapshot ran; a key that left dim_customer (merged into another person)
-- has its last version closed and no current one.
with

snapshot_versions as (

    select * from {{ ref('snp_customer_attributes') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select
        period_ends.as_of_date,
        period_ends.period_end_at as as_of_end_at

    from period_ends
    where period_ends.is_as_of_date

),

known_versions as (

    select
        snapshot_versions.*,
        as_of.as_of_date,
        as_of.as_of_end_at

    from snapshot_versions
    cross join as_of
    where snapshot_versions.dbt_valid_from <= as_of.as_of_end_at

),

final as (

    select
        known_versions.dbt_scd_id as customer_version_key,
        known_versions.customer_key,

        known_versions.loyalty_tier,
        known_versions.home_district,
        known_versions.has_marketing_consent,
        known_versions.is_marketing_opted_out,
        known_versions.is_marketing_opt_in,

        known_versions.dbt_valid_from as valid_from,
        case
            when known_versions.dbt_valid_to <= known_versions.as_of_end_at
                then known_versions.dbt_valid_to
        end as valid_to,
        ((known_versions.dbt_valid_from at time zone 'Asia/Hong_Kong')::date - 1)
            as valid_from_business_date,
        coalesce(
            known_versions.dbt_valid_to is null
            or known_versions.dbt_valid_to > known_versions.as_of_end_at,
            false
        ) as is_current,

        known_versions.as_of_date

    from known_versions
    -- the marker version of a key that left dim_customer is not a state
    where not known_versions.is_deleted

)

select * from final
