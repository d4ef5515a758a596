{#-
    SCD2 history of the attributes of dim_customer that marketing segments
    on: loyalty tier, home district and the consent flags, per customer_key
    (pseudonymous: no personal data is snapshotted).

    Business time, never wall-clock time:
      * strategy 'check' on the tracked columns, with updated_at =
        snapshot_at, the end of the run's business date (the next Hong Kong
        midnight, from int_customers__period_ends). A version recorded by
        the night of day D is valid from the end of D, so history dates are
        business dates, and re-running the same night changes nothing (the
        values are the same). The 'timestamp' strategy is not used: its
        updated_at would move every night for every customer and record a
        new version of everyone.
      * a customer_key that leaves dim_customer (the identity stitch merged
        the person into another) gets a version with is_deleted = true,
        dated by the same business time (dbt's own hard_deletes option would
        date it with now()).
      * a night that is not later than the latest recorded version (a re-run
        of a night that recorded changes, or a backfill of an older night)
        must not rewrite history: it hands the current versions back
        unchanged, so nothing is recorded. The first run of a night wins; a
        correction shows up as a change dated the next night.
-#}
{% snapshot snp_customer_attributes %}

{{
    config(
        schema='snapshots',
        unique_key='customer_key',
        strategy='check',
        check_cols=[
            'loyalty_tier',
            'home_district',
            'has_marketing_consent',
            'is_marketing_opted_out',
            'is_marketing_opt_in',
            'is_deleted',
        ],
        updated_at='snapshot_at',
    )
}}

{%- set recorded = adapter.get_relation(
    database=this.database, schema=this.schema, identifier=this.identifier
) if execute else none -%}

    with

    dim_customer as (

        select * from {{ ref('dim_customer') }}

    ),

    period_ends as (

        select * from {{ ref('int_customers__period_ends') }}

    ),

    recorded_versions as (

        {% if recorded is not none -%}
            select * from {{ this }}
        {%- else -%}
            -- the first night: nothing recorded yet
            select
                null::text as customer_key,
                null::text as loyalty_tier,
                null::text as home_district,
                null::boolean as has_marketing_consent,
                null::boolean as is_marketing_opted_out,
                null::boolean as is_marketing_opt_in,
                null::boolean as is_deleted,
                null::timestamptz as dbt_valid_from,
                null::timestamptz as dbt_valid_to
            where false
        {%- endif %}

    ),

    latest_recorded as (

        select max(recorded_versions.dbt_valid_from) as latest_valid_from
        from recorded_versions

    ),

    run_night as (

        select
            period_ends.period_end_at as snapshot_at,
            coalesce(
                latest_recorded.latest_valid_from >= period_ends.period_end_at, false
            ) as is_replay

        from period_ends
        cross join latest_recorded
        where period_ends.is_as_of_date

    ),

    current_attributes as (

        select
            dim_customer.customer_key,
            dim_customer.loyalty_tier,
            dim_customer.home_district,
            dim_customer.has_marketing_consent,
            dim_customer.is_marketing_opted_out,
            dim_customer.is_marketing_opt_in,
            false as is_deleted

        from dim_customer

    ),

    recorded_current as (

        select
            recorded_versions.customer_key,
            recorded_versions.loyalty_tier,
            recorded_versions.home_district,
            recorded_versions.has_marketing_consent,
            recorded_versions.is_marketing_opted_out,
            recorded_versions.is_marketing_opt_in,
            recorded_versions.is_deleted

        from recorded_versions
        where recorded_versions.dbt_valid_to is null

    ),

    -- keys no longer in dim_customer keep their last values, flagged deleted
    deleted_attributes as (

        select
            recorded_current.customer_key,
            recorded_current.loyalty_tier,
            recorded_current.home_district,
            recorded_current.has_marketing_consent,
            recorded_current.is_marketing_opted_out,
            recorded_current.is_marketing_opt_in,
            true as is_deleted

        from recorded_current
        left join current_attributes
            on recorded_current.customer_key = current_attributes.customer_key
        where current_attributes.customer_key is null

    ),

    tonight as (

        select * from current_attributes
        union all
        select * from deleted_attributes

    ),

    final as (

        select
            tonight.*,
            run_night.snapshot_at

        from tonight
        cross join run_night
        where not run_night.is_replay

        union all

        -- a re-run or a backfill: the recorded state, so nothing changes
        select
            recorded_current.*,
            run_night.snapshot_at

        from recorded_current
        cross join run_night
        where run_night.is_replay

    )

    select * from final

{% endsnapshot %}
