{#-
    Every model lands in exactly its configured schema (staging, intermediate,
    marts, pii), never "<target schema>_<custom schema>": in production Cosmos
    builds the profile from an Airflow connection with a target schema of its
    own, and the grants per schema must not depend on it. Nodes without a
    configured schema fall back to the target schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
