{#-
    The deletions of one shop table known by the business date
    (raw.shop_deletions, from the extract's reconciliation): per entity key,
    the latest reconciliation load that found it gone and when. A staging
    model left-joins it on its key and counts a row deleted when the deletion
    came after the row's version (deleted_load_id > the row's load): a key
    the shop creates again later shows again.
-#}
{% macro shop_deletions(table_name) -%}
    select
        deletions.entity_key,
        max(deletions._load_id) as deleted_load_id,
        max(deletions.detected_at) as deleted_detected_at
    from {{ source('shop', 'deletions') }} as deletions
    where
        deletions.table_name = '{{ table_name }}'
        and {{ known_by_business_date('deletions._load_id') }}
    group by deletions.entity_key
{%- endmacro %}
