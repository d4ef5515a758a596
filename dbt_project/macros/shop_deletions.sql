{#-
    `relation`'s rows with the shop's deletions of `table_name` known by the
    business date (raw.shop_deletions, from the extract's reconciliation):
    is_deleted_in_shop, and the reconciliation's deleted_load_id and
    deleted_detected_at. A row counts as deleted when the deletion came after
    its version (deleted_load_id > its _load_id): a key the shop creates again
    later shows again. `key_sql` is the row's entity key as the extract writes
    it (its key columns as text, joined by '|').
-#}
{% macro shop_deletion_flags(relation, table_name, key_sql) -%}
    select
        {{ relation }}.*,
        deletions.deleted_load_id,
        deletions.deleted_detected_at,
        deletions.entity_key is not null as is_deleted_in_shop

    from {{ relation }}
    left join (
        select
            shop_deletions.entity_key,
            max(shop_deletions._load_id) as deleted_load_id,
            max(shop_deletions.detected_at) as deleted_detected_at
        from {{ source('shop', 'deletions') }} as shop_deletions
        where
            shop_deletions.table_name = '{{ table_name }}'
            and {{ known_by_business_date('shop_deletions._load_id') }}
        group by shop_deletions.entity_key
    ) as deletions
        on
            {{ key_sql }} = deletions.entity_key
            and {{ relation }}._load_id < deletions.deleted_load_id
{%- endmacro %}
