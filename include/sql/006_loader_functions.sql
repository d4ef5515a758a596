-- The COPY fast path (include/loaders.py, _insert_staged) types each staged value with
-- CASE WHEN <the field type's check> THEN <cast> ELSE ops.refuse_value(...) END: a value
-- the contract refuses raises here, the file's fast path rolls back and it is loaded row
-- by row, which quarantines that row with its reason.
create or replace function ops.refuse_value(record_no bigint, field text)
returns text
language plpgsql
as $$
begin
    raise exception 'record %: the value of % is refused by the source contract', record_no, field;
end;
$$;
