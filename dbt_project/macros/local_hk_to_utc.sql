{#-
    A Hong Kong wall-clock timestamp (timestamp without time zone, as the tills
    and the loyalty system export it) as an absolute instant (timestamptz).
-#}
{% macro local_hk_to_utc(col) -%}
    ({{ col }} at time zone 'Asia/Hong_Kong')
{%- endmacro %}
