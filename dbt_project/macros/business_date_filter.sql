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
