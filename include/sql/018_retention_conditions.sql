-- Which rows are past their retention (contract/privacy.yml `retention`), one row
-- per table of the policy with a retention period: the one place the condition is
-- written. The nightly purge (include/retention.py) deletes or empties the rows
-- `remaining` selects; the marts gate's `privacy_retention` check counts them
-- (ops.rows_past_retention), so a row the purge missed, or put back after it,
-- stops publication.
--   rules  {"raw.t": {"days": n, "from": "<column>", "action": "delete|anonymise",
--           "hold_days": n | null, "personal": [...], "versions_of": [...]}}
-- A `delete` within a longer legal hold only anonymises (de-identified facts kept);
-- an anonymise empties the personal columns that may be null; `versions_of` limits
-- a versioned table to the versions a newer one replaced before the cutoff.
-- `remaining` is null where there is nothing to act on: no such table yet
-- (`table_found` false), or no personal column an anonymise could empty.
create or replace function ops.retention_conditions(rules jsonb, night_end timestamptz)
returns table (
    relation text, action text, cutoff timestamptz, empty_columns text[],
    remaining text, table_found boolean
)
language plpgsql stable
as $$
declare
    rule record;
    nullable text[];
    parts text[];
    newer text;
begin
    for rule in select r.key as name, r.value as spec from jsonb_each(rules) as r order by 1
    loop
        relation := rule.name;
        action := rule.spec ->> 'action';
        -- whole days of 24 hours, whatever the session's time zone
        cutoff := night_end - make_interval(hours => 24 * (rule.spec ->> 'days')::int);
        empty_columns := '{}';
        remaining := null;
        nullable := (
            select array_agg(att.attname::text order by att.attname)
                filter (where not att.attnotnull)
            from pg_class as cls
            inner join pg_attribute as att
                on att.attrelid = cls.oid and att.attnum > 0 and not att.attisdropped
            where cls.oid = to_regclass(rule.name) and cls.relkind in ('r', 'p')
        );
        table_found := exists (
            select 1 from pg_class as cls
            where cls.oid = to_regclass(rule.name) and cls.relkind in ('r', 'p')
        );
        if not table_found then
            return next;
            continue;
        end if;
        if action = 'delete' and (rule.spec ->> 'hold_days')::int > (rule.spec ->> 'days')::int
        then
            action := 'anonymise';
        end if;
        parts := array[format('t.%I < %L::timestamptz', rule.spec ->> 'from', cutoff)];
        if action = 'anonymise' then
            empty_columns := array(
                select c from jsonb_array_elements_text(rule.spec -> 'personal') as c
                where c = any(coalesce(nullable, '{}')) order by c
            );
            if coalesce(array_length(empty_columns, 1), 0) = 0 then
                return next;  -- nothing it could empty: checked, nothing to do
                continue;
            end if;
            parts := parts || ('(' || array_to_string(
                array(select format('t.%I is not null', c) from unnest(empty_columns) as c),
                ' or '
            ) || ')');
        end if;
        if jsonb_array_length(coalesce(rule.spec -> 'versions_of', '[]')) > 0 then
            newer := array_to_string(
                array(
                    select format('newer.%1$I = t.%1$I', k)
                    from jsonb_array_elements_text(rule.spec -> 'versions_of') as k
                ),
                ' and '
            );
            -- replaced before the cutoff: kept `days` after it stopped being current
            parts := parts || format(
                'exists (select 1 from %s as newer where %s and newer.%3$I > t.%3$I'
                ' and newer.%3$I < %4$L::timestamptz)',
                rule.name, newer, rule.spec ->> 'from', cutoff
            );
        end if;
        remaining := array_to_string(parts, ' and ');
        return next;
    end loop;
end
$$;

-- The marts gate's row-level retention check: per table, the rows past their
-- retention at `night_end` (counts only).
create or replace function ops.rows_past_retention(rules jsonb, night_end timestamptz)
returns table (relation text, action text, cutoff timestamptz, rows_found bigint)
language plpgsql stable
as $$
declare
    target record;
    found bigint;
begin
    for target in
        select * from ops.retention_conditions(rules, night_end) as c
        where c.remaining is not null
    loop
        execute format('select count(*) from %s as t where %s', target.relation, target.remaining)
        into found;
        if found > 0 then
            relation := target.relation;
            action := target.action;
            cutoff := target.cutoff;
            rows_found := found;
            return next;
        end if;
    end loop;
end
$$;
