-- The content check of the marts gate (expectations/privacy.py): for every text,
-- json or array column of the given schemas, how many rows match each pattern
-- (contract/privacy.yml detection.content). Counts only: a finding never copies
-- the personal data it found into ops.quality_results or Data Docs. dbt's
-- in-flight relations are left out.
create or replace function ops.personal_data_findings(
    schemas text[], pattern_names text[], patterns text[]
)
returns table (relation text, column_name text, pattern_name text, rows_found bigint)
language plpgsql stable
as $$
declare
    col record;
begin
    for col in
        select cols.table_schema::text as schema_name, cols.table_name::text as table_name,
            cols.column_name::text as column_name
        from information_schema.columns as cols
        where cols.table_schema = any(schemas)
          and cols.table_name !~ '__dbt_(tmp|backup)$'
          and cols.data_type in ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')
        order by 1, 2, 3
    loop
        return query execute format(
            'select %L::text, %L::text, p.name, count(*) from %I.%I as t'
            ' cross join unnest($1, $2) as p (name, re)'
            ' where t.%I::text ~ p.re group by p.name',
            col.schema_name || '.' || col.table_name, col.column_name,
            col.schema_name, col.table_name, col.column_name
        ) using pattern_names, patterns;
    end loop;
end
$$;
