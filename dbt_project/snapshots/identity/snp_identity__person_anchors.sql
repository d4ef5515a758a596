{#-
    Merge history across runs: which person each source identity belonged to
    on each night (SCD2 of int_identity__person_map.person_anchor per
    identity_id), so a merge or a split can be audited after the fact.
    Identity ids are personal data (card numbers, cookie ids): schema pii.

    Business time, never wall-clock time, with the 'timestamp' strategy:
      * updated_at = anchor_since, the end of the business date (the next
        Hong Kong midnight) on which the identity got its current anchor.
        An identity whose anchor is the one already recorded keeps the
        recorded anchor_since, so nothing is recorded for it; one whose
        anchor changed (a merge or a split) or that is new gets tonight's
        time and a new version valid from the end of the business date.
        Re-running the same night changes nothing.
      * an identity that left the map (e.g. erased) gets a version with
        is_deleted = true, dated by the same business time (dbt's own
        hard_deletes option would date it with now()).
      * a run for a business date older than the latest recorded version (a
        backfill after later nights) hands the recorded versions back
        unchanged, so history is never rewritten.
    Without var business_date, the business date is the latest Hong Kong
    date in the identity records.
-#}
{% snapshot snp_identity__person_anchors %}

{{
    config(
        schema='pii',
        unique_key='identity_id',
        strategy='timestamp',
        updated_at='anchor_since',
    )
}}

    {%- set run_date = business_date() -%}
    {%- set recorded = load_relation(this) if execute else none -%}

    with

    person_map as (

        select * from {{ ref('int_identity__person_map') }}

    ),

    records as (

        select * from {{ ref('int_identity__records') }}

    ),

    -- the current recorded versions (none on the first run)
    recorded_current as (

        {% if recorded is not none -%}
            select
                recorded.identity_id,
                recorded.identity_type,
                recorded.person_anchor,
                recorded.is_deleted,
                recorded.anchor_since

            from {{ this }} as recorded
            where recorded.dbt_valid_to is null
        {%- else -%}
            select
                null::text as identity_id,
                null::text as identity_type,
                null::text as person_anchor,
                null::boolean as is_deleted,
                null::timestamptz as anchor_since

            where false
        {%- endif %}

    ),

    business_day as (

        -- one row: the run's business date, else the latest date in the records
        select
            coalesce(
                {{ "'" ~ run_date ~ "'::date" if run_date is not none else 'null::date' }},
                max((records.updated_at at time zone 'Asia/Hong_Kong')::date)
            ) as business_date

        from records

    ),

    run_night as (

        -- the end of the business date: the next Hong Kong midnight
        select
            {{ local_hk_to_utc('(business_day.business_date + 1)::timestamp') }} as snapshot_at

        from business_day

    ),

    is_backfill as (

        -- a night older than the latest recorded one
        select
            coalesce(max(recorded_current.anchor_since) > max(run_night.snapshot_at), false)
                as is_backfill

        from run_night
        cross join recorded_current

    ),

    current_anchors as (

        select
            person_map.identity_id,
            person_map.identity_type,
            person_map.person_anchor,
            false as is_deleted

        from person_map

    ),

    -- identities no longer in the map keep their last anchor, flagged deleted
    deleted_anchors as (

        select
            recorded_current.identity_id,
            recorded_current.identity_type,
            recorded_current.person_anchor,
            true as is_deleted

        from recorded_current
        left join current_anchors
            on recorded_current.identity_id = current_anchors.identity_id
        where current_anchors.identity_id is null

    ),

    tonight as (

        select * from current_anchors
        union all
        select * from deleted_anchors

    ),

    tonight_versions as (

        -- unchanged since recorded: keep the recorded time, so nothing is recorded
        select
            tonight.identity_id,
            tonight.identity_type,
            tonight.person_anchor,
            tonight.is_deleted,
            case
                when
                    recorded_current.person_anchor = tonight.person_anchor
                    and recorded_current.is_deleted = tonight.is_deleted
                    then recorded_current.anchor_since
                else run_night.snapshot_at
            end as anchor_since

        from tonight
        cross join run_night
        left join recorded_current
            on tonight.identity_id = recorded_current.identity_id

    ),

    final as (

        select tonight_versions.*
        from tonight_versions
        cross join is_backfill
        where not is_backfill.is_backfill

        union all

        -- a backfill of an older night: the recorded state, so nothing changes
        select recorded_current.*
        from recorded_current
        cross join is_backfill
        where is_backfill.is_backfill

    )

    select * from final

{% endsnapshot %}
