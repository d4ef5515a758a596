-- Erasure reaches the quarantine (include/erasure.py): a rejected line kept for an
-- operator (quarantine.rejected_rows.raw_content, 90 days) may hold an erased
-- person's card number, ticket id or web id. A raw rule may now carry `content`
-- ({"<source>": ["<identity type>", ...]}): the rows of that source whose raw
-- content holds one of the person's source ids of those types as a whole word
-- match, and the rule's `empty` columns are emptied. Otherwise as in 015.
create or replace function ops.erasure_conditions(
    raw_rules jsonb, schemas text[], identity_columns text[], key_columns text[], facts text[]
)
returns table (relation text, matched text, remaining text, empty_columns text[])
language plpgsql stable
as $$
declare
    rule record;
    tbl record;
    m record;
    parts text[];
    empties text[];
begin
    for rule in select r.key as relation, r.value as spec from jsonb_each(raw_rules) as r
        where to_regclass(r.key) is not null
        order by 1
    loop
        parts := array(
            select format(
                't.%I::text in (select e.source_id from pii.erased_identities as e'
                ' where e.identity_type = %L)', m2.value, m2.key
            )
            from jsonb_each_text(coalesce(rule.spec -> 'match', '{}')) as m2 order by m2.key
        ) || array(
            -- a quarantined line of `source` holding an erased source id as a whole word
            select format(
                '(t.source = %L and exists (select 1 from pii.erased_identities as e'
                ' where e.identity_type = any(%L::text[]) and e.source_id'
                ' = any(regexp_split_to_array(t.raw_content, ''[^[:alnum:]_-]+''))))',
                c.key, array(select jsonb_array_elements_text(c.value))
            )
            from jsonb_each(coalesce(rule.spec -> 'content', '{}')) as c order by c.key
        );
        empties := array(select jsonb_array_elements_text(rule.spec -> 'empty'));
        relation := rule.relation;
        matched := '(' || array_to_string(parts, ' or ') || ')';
        if coalesce(array_length(empties, 1), 0) = 0 then
            remaining := matched;
            empty_columns := null;
        else
            remaining := matched || ' and (' || array_to_string(
                array(select format('t.%I is not null', c) from unnest(empties) as c), ' or '
            ) || ')';
            empty_columns := empties;
        end if;
        return next;
    end loop;

    for tbl in
        select cols.table_schema::text || '.' || cols.table_name::text as relation,
            array_agg(cols.column_name::text order by cols.column_name)
                filter (where cols.column_name = any(identity_columns)) as ids,
            array_agg(cols.column_name::text order by cols.column_name)
                filter (where cols.column_name = any(key_columns)) as keys
        from information_schema.columns as cols
        inner join information_schema.tables as t
            on t.table_schema = cols.table_schema and t.table_name = cols.table_name
        where cols.table_schema = any(schemas)
          and t.table_type = 'BASE TABLE'
          and cols.table_name !~ '__dbt_(tmp|backup)$'
          and not (cols.table_schema = 'pii' and cols.table_name = 'erased_identities')
          and cols.column_name = any(identity_columns || key_columns)
        group by 1
        order by 1
    loop
        parts := array(
            select format('t.%I in (select e.identity_id from pii.erased_identities as e)', c)
            from unnest(coalesce(tbl.ids, '{}')) as c
            union all
            select format('t.%I in (select e.customer_key from pii.erased_identities as e)', c)
            from unnest(coalesce(tbl.keys, '{}')) as c
        );
        relation := tbl.relation;
        matched := '(' || array_to_string(parts, ' or ') || ')';
        remaining := matched;
        if tbl.relation = any(facts) then
            empty_columns := coalesce(tbl.ids, '{}') || coalesce(tbl.keys, '{}');
        else
            empty_columns := null;
        end if;
        return next;
    end loop;
end
$$;
