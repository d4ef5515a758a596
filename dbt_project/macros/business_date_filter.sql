{#-
    The run's Hong Kong business date, var('business_date') ('YYYY-MM-DD'), or
    none when it is not set (meaning "everything").
-#}
{% macro business_date() -%}
    {%- set value = var('business_date', none) -%}
    {%- if value is none or (value | string | trim | lower) in ('', 'none', 'null') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error("var business_date must be 'YYYY-MM-DD', got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#-
    A predicate for facts: `<col> <= '<business_date>'::date` when the var is
    set, else `true`. A run for day D never shows rows dated after D, even
    when it is built (or re-built) later.
-#}
{% macro business_date_filter(col) -%}
    {%- set value = business_date() -%}
    {%- if value is none -%}
        true
    {%- else -%}
        {{ col }} <= '{{ value }}'::date
    {%- endif -%}
{%- endmacro %}

{#-
    A predicate for raw rows: only what was known by the end of the business
    date, `<load_id_col> in (loads of files dated up to D, or extracted by
    the runs up to D)` when the var is set, else `true`.

    Everything a night builds depends only on this, never on when it runs: a
    backfill or re-run of day D after later days were loaded rebuilds exactly
    what D's night built (later order statuses, late events in later files
    and newer store masters stay out). The ledger's business_date is the file
    date for dated files and the run's date for extracts and undated files.
-#}
{% macro known_by_business_date(load_id_col='_load_id') -%}
    {#- source() is called unconditionally so that dbt records the dependency at parse time -#}
    {%- set ledger = source('ops', 'load_ledger') -%}
    {%- set value = business_date() -%}
    {%- if value is none -%}
        true
    {%- else -%}
        {{ load_id_col }} in (
            select load_ledger.load_id from {{ ledger }} as load_ledger
            where load_ledger.business_date <= '{{ value }}'::date
        )
    {%- endif -%}
{%- endmacro %}

{#-
    known_by_business_date() for a source that sends one file per day (loyalty,
    complaints, privacy), without the files a correction superseded. A day is
    re-exported as `<date>_<seq>.<ext>` (the plain name is seq 1;
    `{correction}` in contract/sources.yml): among the loads known by the
    business date, the highest seq of a day supersedes the earlier files of
    that day whole, and of one file only its latest load counts.
-#}
{% macro latest_daily_export(source_name, load_id_col='_load_id') -%}
    {%- set ledger = source('ops', 'load_ledger') -%}
    {%- set value = business_date() -%}
    {{ known_by_business_date(load_id_col) }}
    and {{ load_id_col }} not in (
        select exports.load_id from (
            select
                load_ledger.load_id,
                row_number() over (
                    partition by load_ledger.business_date
                    order by
                        coalesce(
                            substring(load_ledger.object from '_([0-9]+)\.[^/]+$')::int, 1
                        ) desc,
                        load_ledger.load_id desc
                ) as export_rank
            from {{ ledger }} as load_ledger
            where
                load_ledger.source = '{{ source_name }}'
                and load_ledger.status = 'loaded'
                {%- if value is not none %}
                and load_ledger.business_date <= '{{ value }}'::date
                {%- endif %}
        ) as exports
        where exports.export_rank > 1
    )
{%- endmacro %}
