-- Erasure requests carried out (include/erasure.py; contract/privacy.yml `erasure`).
--
-- pii.erased_identities is the suppression list: every source record of a person
-- whose erasure request was carried out, so a re-sent file, a new extract or a
-- rebuild from raw does not bring them back. ops.erasure_actions is the audit.
create schema if not exists pii;

create table if not exists pii.erased_identities (
    identity_id text primary key,
    identity_type text not null,
    source_id text not null,
    person_anchor text not null,
    customer_key text not null,
    request_id text not null,
    business_date date not null,
    erased_at timestamptz not null default clock_timestamp()
);
create index if not exists erased_identities_by_type on pii.erased_identities (
    identity_type, source_id
);
create index if not exists erased_identities_by_key on pii.erased_identities (customer_key);

create table if not exists ops.erasure_actions (
    action_id bigint generated always as identity primary key,
    run_id text not null,
    business_date date not null,
    dataset text not null,
    action text not null check (action in ('delete', 'empty')),
    columns_emptied text[] not null default '{}',
    rows_affected bigint not null,
    acted_at timestamptz not null default clock_timestamp()
);
create index if not exists erasure_actions_by_date on ops.erasure_actions (business_date);

-- Where an erased person's data can be, one row per table: `matched` selects the
-- rows of an erased identity, `remaining` those still holding something of them
-- (what the erasure acts on, what the marts gate counts), `empty_columns` what
-- the erasure sets to null (null: it deletes the rows). The one place the
-- conditions are written: the erasure and the check both read them.
--   raw_rules        {"raw.t": {"match": {"<identity type>": "<column>"}, "empty": [...]}}
--   schemas          schemas downstream of raw the erasure reaches
--   identity_columns columns holding an identity id or person anchor
--   key_columns      columns holding a customer_key
--   facts            tables whose matching rows stay with those columns emptied
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
            from jsonb_each_text(rule.spec -> 'match') as m2 order by m2.key
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

-- The marts gate's erasure check: the rows of each table still holding something
-- of an erased person (counts only).
create or replace function ops.erased_findings(
    raw_rules jsonb, schemas text[], identity_columns text[], key_columns text[], facts text[]
)
returns table (relation text, rows_found bigint)
language plpgsql stable
as $$
declare
    target record;
    found bigint;
begin
    if not exists (select 1 from pii.erased_identities) then
        return;
    end if;
    for target in
        select * from ops.erasure_conditions(
            raw_rules, schemas, identity_columns, key_columns, facts
        )
    loop
        execute format('select count(*) from %s as t where %s',
            target.relation, target.remaining) into found;
        if found > 0 then
            relation := target.relation;
            rows_found := found;
            return next;
        end if;
    end loop;
end
$$;
