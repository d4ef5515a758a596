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
