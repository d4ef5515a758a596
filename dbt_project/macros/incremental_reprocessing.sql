{#-
    Incremental facts (intermediate/sales, intermediate/web) rebuild whole
    "units" (an online order, a POS trading day, a web session) and must end
    equal to a full refresh after any sequence of nightly runs D1 < D2 < ...
    A unit can change only when a load brings new raw rows for it: a new
    order version (status change), a POS re-export, late web events. So a
    night reprocesses every unit with a row from a "recent" load: a load whose
    ops.load_ledger business_date is at most var('incremental_lookback_days')
    (default 14 = the loader's CRM_LATE_DAYS) before the previous run's
    horizon (the latest load business date already in the table, capped at
    D - 1), or that is newer than every load the table holds (load ids grow
    with time). The loader lists late files CRM_LATE_DAYS back each night and
    finds older ones in its periodic sweep (CRM_LATE_SWEEP_DAYS): such a file
    is dated before the window, and its load id alone makes it recent. The
    rows of a unit carry `load_id`, the newest load behind them. See
    DECISIONLOG.md "Sales".

    A night for a business date earlier than what the table already holds (a
    backfill) is a rewind: incremental_is_rewind() is true, the model selects
    every unit, and the post-hook incremental_forget_later_loads() deletes the
    rows of units known only after D.

    source() is called unconditionally so that dbt records the dependency on
    the ledger at parse time, when is_incremental() is false.
-#}

{% macro incremental_lookback_days() -%}
    {%- set days = var('incremental_lookback_days', 14) | int -%}
    {%- if days < 0 -%}
        {{ exceptions.raise_compiler_error("var incremental_lookback_days must be >= 0, got " ~ days) }}
    {%- endif -%}
    {{ return(days) }}
{%- endmacro %}

{#-
    The load_ids an incremental run need not reprocess (a subquery): loads
    dated before the look-back window and no newer than the newest load the
    table holds. A row whose load_id is not in it is reprocessed, so a load
    missing from the ledger counts as recent, and an empty table (no horizon)
    reprocesses everything.
-#}
{% macro incremental_settled_load_ids() -%}
    {%- set ledger = source('ops', 'load_ledger') -%}
    {%- set value = business_date() -%}
    {%- set day = "'" ~ value ~ "'::date" if value is not none else "null::date" -%}
    select settled_loads.load_id
    from {{ ledger }} as settled_loads
    where settled_loads.business_date < (
        select
            case
                when max(known_loads.business_date) is null then '-infinity'::date
                else least(max(known_loads.business_date), {{ day }} - 1)
                    - {{ incremental_lookback_days() }}
            end
        from {{ ledger }} as known_loads
        where known_loads.load_id in (select previous.load_id from {{ this }} as previous)
    )
    and settled_loads.load_id <= (select max(newest.load_id) from {{ this }} as newest)
{%- endmacro %}

{#- True (SQL) when the table holds rows of loads dated after the run's business date. -#}
{% macro incremental_is_rewind() -%}
    {%- set ledger = source('ops', 'load_ledger') -%}
    {%- set value = business_date() -%}
    {%- if value is none -%}
        false
    {%- else -%}
        exists (
            select 1
            from {{ this }} as previous
            inner join {{ ledger }} as later_loads
                on previous.load_id = later_loads.load_id
            where later_loads.business_date > '{{ value }}'::date
        )
    {%- endif -%}
{%- endmacro %}

{#-
    Post-hook of the incremental facts: after a rewind every unit known at D
    was rebuilt, so rows still carrying a load dated after D belong to units
    unknown at D. Runs inside the model's transaction. A no-op otherwise.
-#}
{% macro incremental_forget_later_loads() -%}
    {%- set ledger = source('ops', 'load_ledger') -%}
    {%- set value = business_date() -%}
    {%- if value is not none and is_incremental() -%}
        delete from {{ this }}
        where load_id in (
            select later_loads.load_id
            from {{ ledger }} as later_loads
            where later_loads.business_date > '{{ value }}'::date
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
