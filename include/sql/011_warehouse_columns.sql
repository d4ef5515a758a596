-- Every column of the project's schemas, for the privacy check of the marts gate
-- (expectations/privacy.py): a personal-looking column that contract/privacy.yml
-- does not classify stops publication.
create or replace view ops.warehouse_columns as
select
    columns.table_schema::text as schema_name,
    columns.table_name::text as relation_name,
    columns.column_name::text as column_name
from information_schema.columns as columns
where columns.table_schema in (
    'raw', 'staging', 'intermediate', 'pii', 'snapshots', 'marts', 'reporting', 'quarantine', 'ops'
);
