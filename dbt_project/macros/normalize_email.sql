{#- An email as the identity stitch compares it: trimmed, lower-cased, '' -> null. -#}
{% macro normalize_email(col) -%}
    nullif(lower(trim({{ col }})), '')
{%- endmacro %}
