-- Rows the shop hard-deleted: found by the periodic reconciliation of the shop's
-- keys against raw (include/extract_shop.py reconcile), one row per table, entity
-- key (its key columns joined by '|') and reconciliation load. A deletion hides
-- the versions loaded before it (a key created again later shows again); staging
-- reads it (macros/shop_deletions.sql).
create table if not exists raw.shop_deletions (
    table_name text not null,
    entity_key text not null,
    detected_at timestamptz not null,
    _load_id bigint not null,
    primary key (table_name, entity_key, _load_id)
);
