"""Who reads what in the warehouse: department roles, grants and row-level security,
all from the privacy policy (contract/privacy.yml, ``access`` and each dataset's
``departments``, column ``departments`` and ``rows``).

:func:`apply` runs after every migration (as the admin, on everything) and every
dbt build (as the transformer, on what it owns: include/roles.py), because dbt
replaces a table with a new one that has no grants: until it runs, a rebuilt
relation is closed to every department, never open. It revokes what the
departments hold on every relation of the policy's schemas and grants again what
the policy says, in one transaction, so a reader never sees a half-applied set.
The marts gate's ``access_grants`` check (expectations/privacy.py) compares the
warehouse with the policy through :func:`drift_query` and stops publication on
any difference, the same question a test asks by connecting as each role.

Roles are ``crm_<department>`` (NOLOGIN: a person's login role is made a member).
The row-security department also has ``crm_<department>_<region>`` roles, each a
member of it: a login in ``crm_store_operations_kowloon`` reads the store
datasets and sees only Kowloon's rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from include.config import CrmError
from include.privacy import Policy, policy
from include.roles import PUBLISHER, TRANSFORMER

ROLE_PREFIX = "crm_"
OWN_REGION_POLICY = "crm_own_region"
ALL_ROWS_POLICY = "crm_all_rows"
PIPELINE_POLICY = "crm_pipeline_rows"
STORE_CODES_FUNCTION = "ops.store_codes_in"
IN_FLIGHT = r"__dbt_(tmp|backup)$"
"""dbt's relations while it swaps a model in; never granted, never checked."""


def role(department: str) -> str:
    return ROLE_PREFIX + department


def region_role(department: str, region: str) -> str:
    return f"{role(department)}_{re.sub(r'[^a-z0-9]+', '_', region.lower()).strip('_')}"


def department_roles(rules: Policy) -> dict[str, str]:
    """Department -> its role, in the policy's order."""
    return {d: role(d) for d in rules.departments}


def region_roles(rules: Policy) -> dict[str, str]:
    """Region -> the role whose members see its rows."""
    return {r: region_role(rules.access.row_department, r) for r in rules.access.regions}


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # pg_class.relkind
    columns: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def catalogue(
    conn: psycopg.Connection, schemas: Iterable[str], *, own_only: bool = False
) -> list[Relation]:
    """Every table and view of ``schemas``, dbt's in-flight relations left out (and,
    ``own_only``, those whose owner's privileges the session lacks)."""
    found = conn.execute(
        """
        select ns.nspname, cls.relname, cls.relkind,
               array_agg(att.attname::text order by att.attnum)
        from pg_class as cls
        join pg_namespace as ns on ns.oid = cls.relnamespace
        join pg_attribute as att
            on att.attrelid = cls.oid and att.attnum > 0 and not att.attisdropped
        where ns.nspname = any(%s) and cls.relkind in ('r', 'p', 'v', 'm', 'f')
          and cls.relname !~ %s
          and (not %s or pg_has_role(current_user, cls.relowner, 'USAGE'))
        group by 1, 2, 3
        order by 1, 2
        """,
        (list(schemas), IN_FLIGHT, own_only),
    ).fetchall()
    return [Relation(s, n, k, tuple(cols)) for s, n, k, cols in found]


def _region_expression(rules: Policy) -> sql.Composable:
    """The regions the querying role may see, as a text[] (empty: none)."""
    cases = [
        sql.SQL("case when pg_has_role(current_user, {}, 'MEMBER') then {} end").format(
            sql.Literal(member), sql.Literal(region)
        )
        for region, member in region_roles(rules).items()
    ]
    return sql.SQL("array_remove(array[{}], null)").format(sql.SQL(", ").join(cases))


def _row_filter(rules: Policy, key: str, column: str) -> sql.Composable:
    regions = _region_expression(rules)
    if key == "region":
        return sql.SQL("{} = any({})").format(sql.Identifier(column), regions)
    return sql.SQL("{} in (select {}({}))").format(
        sql.Identifier(column), sql.SQL(STORE_CODES_FUNCTION), regions
    )


def _ensure_roles(rules: Policy) -> sql.Composable:
    """One DO block creating the missing roles (servers share roles between databases,
    so two databases set up at once may race: the loser's error is ignored)."""
    body = []
    for name in department_roles(rules).values():
        body.append(
            sql.SQL(
                "if to_regrole({name}) is null then begin create role {ident} nologin;"
                " exception when duplicate_object or unique_violation then null; end; end if;"
            ).format(name=sql.Literal(name), ident=sql.Identifier(name))
        )
    parent = role(rules.access.row_department)
    for member in region_roles(rules).values():
        body.append(
            sql.SQL(
                "if to_regrole({name}) is null then begin create role {ident} nologin;"
                " exception when duplicate_object or unique_violation then null; end; end if;"
                " if not pg_has_role({name}, {parent}, 'MEMBER') then begin"
                " grant {parent_ident} to {ident};"
                " exception when duplicate_object or unique_violation then null; end; end if;"
            ).format(
                name=sql.Literal(member),
                ident=sql.Identifier(member),
                parent=sql.Literal(parent),
                parent_ident=sql.Identifier(parent),
            )
        )
    return sql.SQL("do $roles$ begin {} end $roles$").format(sql.SQL(" ").join(body))


def statements(
    rules: Policy, relations: list[Relation], schemas: set[str] | None = None
) -> list[sql.Composable]:
    """Everything :func:`apply` runs, in order, for the relations that exist; schema
    grants and the row-security function only in ``schemas`` (default: all)."""
    roles = department_roles(rules)
    everyone = sql.SQL(", ").join(sql.Identifier(r) for r in roles.values())
    owned = set(rules.access.schemas) if schemas is None else schemas
    out: list[sql.Composable] = [_ensure_roles(rules)]
    if "ops" in owned:
        out.extend(_store_codes_function(rules))
    out.extend(_grants(rules, relations, roles, everyone, owned))
    return out


def _store_codes_function(rules: Policy) -> list[sql.Composable]:
    out: list[sql.Composable] = []
    out.append(
        sql.SQL(
            "create or replace function {}(regions text[]) returns setof text"
            " language sql stable security definer set search_path = pg_catalog as $fn$"
            " select stores.store_code from raw.stores as stores"
            " where stores.region = any(regions)"
            " and stores._load_id = (select max(latest._load_id) from raw.stores as latest)"
            " $fn$"
        ).format(sql.SQL(STORE_CODES_FUNCTION))
    )
    out.append(
        sql.SQL("revoke all on function {}(text[]) from public").format(
            sql.SQL(STORE_CODES_FUNCTION)
        )
    )
    out.append(
        sql.SQL("grant execute on function {}(text[]) to {}").format(
            sql.SQL(STORE_CODES_FUNCTION), sql.Identifier(role(rules.access.row_department))
        )
    )
    return out


def _grants(rules, relations, roles, everyone, owned) -> list[sql.Composable]:
    out: list[sql.Composable] = []
    readers_of_schema: dict[str, set[str]] = {s: set(d) for s, d in rules.access.schemas.items()}
    for rel in relations:
        readers_of_schema.setdefault(rel.schema, set()).update(
            d for c in rel.columns for d in rules.readers(rel.qualified, c)
        )
    present = {rel.schema for rel in relations}
    for schema in rules.access.schemas:
        if schema not in present or schema not in owned:
            continue
        ident = sql.Identifier(schema)
        out.append(sql.SQL("revoke all on schema {} from {}").format(ident, everyone))
        readers = [roles[d] for d in roles if d in readers_of_schema[schema]]
        if readers:
            out.append(
                sql.SQL("grant usage on schema {} to {}").format(
                    ident, sql.SQL(", ").join(sql.Identifier(r) for r in readers)
                )
            )
    for rel in relations:
        table = sql.Identifier(rel.schema, rel.name)
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in rel.columns)
        out.append(sql.SQL("revoke all on {} from {}").format(table, everyone))
        out.append(sql.SQL("revoke all ({}) on {} from {}").format(columns, table, everyone))
        for department, name in roles.items():
            readable = [c for c in rel.columns if department in rules.readers(rel.qualified, c)]
            if not readable:
                continue
            if len(readable) == len(rel.columns):
                out.append(sql.SQL("grant select on {} to {}").format(table, sql.Identifier(name)))
            else:
                out.append(
                    sql.SQL("grant select ({}) on {} to {}").format(
                        sql.SQL(", ").join(sql.Identifier(c) for c in readable),
                        table,
                        sql.Identifier(name),
                    )
                )
        dataset = rules.datasets.get(rel.qualified)
        if dataset is not None and dataset.rows is not None:
            out.extend(_row_security(rules, rel, dataset.departments, *dataset.rows))
    return out


def _row_security(
    rules: Policy, rel: Relation, readers: tuple[str, ...], key: str, column: str
) -> list[sql.Composable]:
    if rel.kind not in ("r", "p"):
        raise CrmError(
            f"contract/privacy.yml: {rel.qualified} has rows: (row-level security), which"
            " PostgreSQL enforces on tables only: materialise it as a table"
        )
    table = sql.Identifier(rel.schema, rel.name)
    filtered = rules.access.row_department
    out = [
        sql.SQL("alter table {} enable row level security").format(table),
        sql.SQL("alter table {} force row level security").format(table),
        sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(ALL_ROWS_POLICY), table),
        sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(OWN_REGION_POLICY), table),
        sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(PIPELINE_POLICY), table),
        # the steps that rebuild, purge, erase, check and publish these rows see them all
        sql.SQL("create policy {} on {} for all to {} using (true) with check (true)").format(
            sql.Identifier(PIPELINE_POLICY),
            table,
            sql.SQL(", ").join(sql.Identifier(r) for r in (TRANSFORMER, PUBLISHER)),
        ),
    ]
    unfiltered = [role(d) for d in readers if d != filtered]
    if unfiltered:
        out.append(
            sql.SQL("create policy {} on {} for select to {} using (true)").format(
                sql.Identifier(ALL_ROWS_POLICY),
                table,
                sql.SQL(", ").join(sql.Identifier(r) for r in unfiltered),
            )
        )
    if filtered in readers and column in rel.columns:
        # without its column the filtered department sees no row; the check reports it
        out.append(
            sql.SQL("create policy {} on {} for select to {} using ({})").format(
                sql.Identifier(OWN_REGION_POLICY),
                table,
                sql.Identifier(role(filtered)),
                _row_filter(rules, key, column),
            )
        )
    return out


def apply(target: str | psycopg.Connection, rules: Policy | None = None) -> int:
    """Bring the warehouse's grants and row security to the policy; the statements run.

    ``target`` is a URL (one transaction of its own) or an open connection (its
    transaction: :func:`include.warehouse.apply_schema` runs this last).
    """
    rules = rules or policy()
    if isinstance(target, str):
        with psycopg.connect(target) as conn, conn.transaction():
            return apply(conn, rules)
    conn = target
    conn.execute("select pg_advisory_xact_lock(hashtext('crm.access.apply'))")
    # The admin grants on everything; the transformer after a build on what it built.
    owned = {
        name
        for (name,) in conn.execute(
            "select nspname from pg_namespace where nspname = any(%s)"
            " and pg_has_role(current_user, nspowner, 'USAGE')",
            (list(rules.access.schemas),),
        )
    }
    relations = catalogue(conn, rules.access.schemas, own_only=True)
    todo = statements(rules, relations, owned)
    try:
        for statement in todo:
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CrmError(
            "Cannot apply the department grants of contract/privacy.yml: the warehouse user"
            f" needs CREATEROLE and to own the project's relations ({exc.diag.message_primary})."
        ) from exc
    return len(todo)


def _values(rows: list[tuple], names: str) -> str:
    def lit(value) -> str:
        if isinstance(value, (list, tuple)):
            return "cast(array[" + ", ".join(lit(v) for v in value) + "] as text[])"
        return "'" + str(value).replace("'", "''") + "'"

    if not rows:
        return f"(select {', '.join('null' for _ in names.split(','))} where false) as {names}"
    body = ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)
    return f"(values {body}) as {names}"


def drift_query(rules: Policy | None = None, columns: str = "ops.warehouse_columns") -> str:
    """Rows (relation, column_name, role_name, problem) where the warehouse differs from
    the policy: a grant missing or extra, a role missing, row security off.

    ``columns`` is a relation of (schema_name, relation_name, column_name); the gate
    passes GX's ``{batch}``. Who may read a column is the column's departments, else
    its dataset's, else its schema's (:meth:`include.privacy.Policy.readers`), here
    as a ``coalesce`` over the three lists generated from the policy.
    """
    rules = rules or policy()
    roles = department_roles(rules)
    column_rows = [
        (name, col, list(spec.departments))
        for name, ds in sorted(rules.datasets.items())
        for col, spec in sorted(ds.columns.items())
    ]
    dataset_rows = [(name, list(ds.departments)) for name, ds in sorted(rules.datasets.items())]
    schema_rows = [(s, list(d)) for s, d in rules.access.schemas.items()]
    role_rows = [(d, r) for d, r in roles.items()]
    rls_rows = [(name,) for name, ds in sorted(rules.datasets.items()) if ds.rows]
    cols_of = f"(select * from {columns})"
    return f"""
select checked.relation, checked.column_name, checked.role_name,
    case
        when checked.allowed then 'the policy lets it read this column; no grant does'
        else 'it can read this column; the policy does not let it'
    end as problem
from (
    select
        cols.schema_name || '.' || cols.relation_name as relation,
        cols.column_name,
        roles.role_name,
        roles.department = any(coalesce(
            column_rule.readers, dataset_rule.readers, schema_rule.readers,
            cast(array[] as text[])
        )) as allowed,
        coalesce(to_regrole(roles.role_name) is not null
            and has_schema_privilege(roles.role_name, cols.schema_name, 'USAGE')
            and has_column_privilege(
                roles.role_name,
                quote_ident(cols.schema_name) || '.' || quote_ident(cols.relation_name),
                cols.column_name,
                'SELECT'
            ), false) as granted
    from {cols_of} as cols
    cross join {_values(role_rows, "roles (department, role_name)")}
    left join {_values(column_rows, "column_rule (relation, column_name, readers)")}
        on column_rule.relation = cols.schema_name || '.' || cols.relation_name
        and column_rule.column_name = cols.column_name
    left join {_values(dataset_rows, "dataset_rule (relation, readers)")}
        on dataset_rule.relation = cols.schema_name || '.' || cols.relation_name
    left join {_values(schema_rows, "schema_rule (schema_name, readers)")}
        on schema_rule.schema_name = cols.schema_name
    where cols.relation_name !~ '{IN_FLIGHT}'
) as checked
where checked.allowed <> checked.granted
union all
select rls.relation, null, null, 'row-level security is not forced, or its policy is missing'
from {_values(rls_rows, "rls (relation)")}
join pg_class as cls on cls.oid = to_regclass(rls.relation)
where not (
    cls.relrowsecurity and cls.relforcerowsecurity
    and exists (
        select 1 from pg_policy as pol
        where pol.polrelid = cls.oid and pol.polname = '{OWN_REGION_POLICY}'
    )
)
"""


def drift(conn: psycopg.Connection, rules: Policy | None = None) -> list[tuple]:
    """What :func:`drift_query` finds, sorted: empty when the warehouse matches the policy."""
    return sorted(conn.execute(drift_query(rules)).fetchall(), key=lambda r: tuple(map(str, r)))


@dataclass(frozen=True)
class Reach:
    """What one department reads: the role matrix, summed up."""

    department: str
    role: str
    relations: int
    columns: int
    personal_columns: int
    row_filtered: tuple[str, ...]


def matrix(conn: psycopg.Connection, rules: Policy | None = None) -> list[Reach]:
    """Per department, what the policy lets it read among the relations that exist."""
    rules = rules or policy()
    relations = catalogue(conn, rules.access.schemas)
    out = []
    for department, name in department_roles(rules).items():
        readable = [
            (rel.qualified, col)
            for rel in relations
            for col in rel.columns
            if department in rules.readers(rel.qualified, col)
        ]
        personal = [
            (r, c)
            for r, c in readable
            if r in rules.datasets
            and c in rules.datasets[r].columns
            and rules.datasets[r].columns[c].is_personal
        ]
        filtered = (
            tuple(
                sorted({r for r, _ in readable} & {n for n, d in rules.datasets.items() if d.rows})
            )
            if department == rules.access.row_department
            else ()
        )
        out.append(
            Reach(
                department,
                name,
                len({r for r, _ in readable}),
                len(readable),
                len(personal),
                filtered,
            )
        )
    return out
