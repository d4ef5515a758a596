"""The pipeline's own roles: each step connects with only the privileges it needs.

No step of the nightly pipeline runs as a superuser or as the warehouse's owner.
The login (``crm_pipeline`` on the embedded warehouse; ``WAREHOUSE_URL``'s user on
your own) is NOINHERIT: it holds no privilege itself, and each step's sessions
start in one of the roles below (libpq ``options=-c role=...``, see
:func:`as_role`), so a loader's SQL cannot read a mart and a model cannot rewrite
raw data:

- ``crm_loader``: loads raw, quarantine and the ledger (``ops``); owns the raw
  tables (only an owner may ANALYZE them). Reads nothing downstream of raw.
- ``crm_transformer``: dbt, and the retention purge and erasure that run before it.
  Owns the dbt schemas (staging, intermediate, marts, snapshots) and creates in
  ``pii``; reads raw and quarantine, deletes and empties there (purge, erasure),
  never inserts. Applies the department grants of what it builds
  (:func:`include.access.apply`, own relations only).
- ``crm_publisher``: the quality gates, the models and the reporting tables. Reads
  every layer, writes ``reporting``, ``ml_stage`` and the ops results, nothing else.
- ``crm_shop_reader``: the shop extract; SELECT on the shop's tables, in read-only
  sessions (the read-only session is set on any shop database, yours included).

Migrations, role creation and the department grants of tables the admin owns
run as the admin (``crm warehouse start`` / :func:`include.warehouse.apply_schema`),
which calls :func:`grant_statements` each time, so a new migration's tables get
their pipeline grants at once.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

LOGIN = "crm_pipeline"
LOADER = "crm_loader"
TRANSFORMER = "crm_transformer"
PUBLISHER = "crm_publisher"
SHOP_READER = "crm_shop_reader"
PIPELINE_ROLES = (LOADER, TRANSFORMER, PUBLISHER)

DBT_SCHEMAS = ("staging", "intermediate", "marts", "snapshots")
"""The schemas dbt alone builds: the transformer owns them."""
ADMIN_SCHEMAS = ("raw", "quarantine", "ops", "pii", "reporting", "ml_stage")
"""The schemas of the migrations (include/sql): the admin owns them."""

WRITES: dict[str, dict[str, str]] = {
    # role -> schema -> table privileges (besides what the role owns)
    LOADER: {
        "raw": "select, insert, update, delete",
        "quarantine": "select, insert, update, delete",
        "ops": "select, insert, update, delete",
    },
    TRANSFORMER: {
        "raw": "select, update, delete",
        "quarantine": "select, update, delete",
        "ops": "select, insert, update, delete",
        "pii": "select, insert, update, delete",
        "reporting": "select, update, delete",
    },
    PUBLISHER: {
        "raw": "select",
        "quarantine": "select",
        "ops": "select, insert, update, delete",
        "pii": "select",
        "reporting": "select, insert, update, delete",
        "ml_stage": "select, insert, update, delete",
    },
}
CREATES: dict[str, tuple[str, ...]] = {
    TRANSFORMER: ("pii",),
    PUBLISHER: ("reporting", "ml_stage"),
}
"""Admin schemas a role may create tables in (dbt's pii models, the models' tables)."""
READS_DBT = (PUBLISHER,)
"""Who reads what dbt builds (granted by default privileges on every rebuilt table)."""
# Tables one role creates that another must change (erasure empties reporting keys).
DEFAULT_GRANTS = ((PUBLISHER, ("reporting",), "select, update, delete", TRANSFORMER),)


def as_role(url: str, role: str, *, read_only: bool = False) -> str:
    """``url`` whose sessions start as ``role`` (and read-only): libpq's ``options``."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    options = [o for o in [query.get("options", "")] if o]
    if role:
        options.append(f"-c role={role}")
    if read_only:
        options.append("-c default_transaction_read_only=on")
    query["options"] = " ".join(options)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _once(statement: str, condition: str) -> str:
    """``statement`` unless ``condition``; roles are the server's, shared by its databases,
    so another session creating the same role at once is not an error."""
    return (
        f"do $r$ begin if not ({condition}) then {statement}; end if;"
        " exception when duplicate_object or unique_violation then null; end $r$"
    )


def ensure_statements(login: str | None = None, password: str | None = None) -> list[str]:
    """Create the pipeline roles (and the login, a member of each) where missing."""
    names = (*PIPELINE_ROLES, SHOP_READER)
    out = [_once(f"create role {_q(n)} nologin", f"to_regrole('{n}') is not null") for n in names]
    if login:
        out.append(
            _once(f"create role {_q(login)} login noinherit", f"to_regrole('{login}') is not null")
        )
        out.append(f"alter role {_q(login)} login noinherit nosuperuser nocreaterole nocreatedb")
        if password is not None:
            out.append(f"alter role {_q(login)} password '" + password.replace("'", "''") + "'")
        out.extend(
            _once(f"grant {_q(n)} to {_q(login)}", f"pg_has_role('{login}', '{n}', 'MEMBER')")
            for n in names
        )
    # The admin (a superuser, or a CREATEROLE user on your own server) hands tables
    # to these roles and, on your own server, is the login that steps into them.
    out.extend(
        _once(f"grant {_q(n)} to current_user", f"pg_has_role(current_user, '{n}', 'MEMBER')")
        for n in names
    )
    return out


def grant_statements() -> list[str]:
    """The pipeline roles' privileges in the warehouse, granted by the admin (idempotent)."""
    out = []
    for schema in DBT_SCHEMAS:
        out.append(f"create schema if not exists {schema} authorization {TRANSFORMER}")
        out.append(f"alter schema {schema} owner to {TRANSFORMER}")
    # Relations an earlier version built as the admin go to the transformer, which
    # must be able to replace them; raw tables to the loader (ANALYZE needs the owner).
    out.append(
        "do $own$ declare r record; begin for r in"
        " select ns.nspname, cls.relname, cls.relkind,"
        "  case when ns.nspname = 'raw' then 'crm_loader' else 'crm_transformer' end as owner"
        " from pg_class cls join pg_namespace ns on ns.oid = cls.relnamespace"
        f" where (ns.nspname in ({', '.join(repr(s) for s in DBT_SCHEMAS)})"
        "   or (ns.nspname = 'raw' and cls.relkind in ('r', 'p')))"
        "  and cls.relkind in ('r', 'p', 'v', 'm', 'S')"
        "  and cls.relowner <> (case when ns.nspname = 'raw' then 'crm_loader'"
        "   else 'crm_transformer' end)::regrole"
        " loop execute format('alter %s %I.%I owner to %I',"
        "  case r.relkind when 'v' then 'view' when 'm' then 'materialized view'"
        "   when 'S' then 'sequence' else 'table' end, r.nspname, r.relname, r.owner);"
        " end loop; end $own$"
    )
    everyone = ", ".join(PIPELINE_ROLES)
    for schema in ADMIN_SCHEMAS:
        out.append(f"create schema if not exists {schema}")
        out.append(f"grant usage on schema {schema} to {everyone}")
        out.append(f"revoke create on schema {schema} from {everyone}")
        for role, schemas in WRITES.items():
            if schema in schemas:
                out.append(f"grant {schemas[schema]} on all tables in schema {schema} to {role}")
                out.append(
                    f"grant usage, select, update on all sequences in schema {schema} to {role}"
                )
        for role, schemas in CREATES.items():
            if schema in schemas:
                out.append(f"grant create on schema {schema} to {role}")
    for schema in DBT_SCHEMAS:
        for reader in READS_DBT:
            out.append(f"grant usage on schema {schema} to {reader}")
            out.append(f"grant select on all tables in schema {schema} to {reader}")
    for schema in (*DBT_SCHEMAS, "pii"):
        for reader in READS_DBT:
            out.append(
                f"alter default privileges for role {TRANSFORMER} in schema {schema}"
                f" grant select on tables to {reader}"
            )
    for creator, schemas, privileges, grantee in DEFAULT_GRANTS:
        for schema in schemas:
            out.append(
                f"alter default privileges for role {creator} in schema {schema}"
                f" grant {privileges} on tables to {grantee}"
            )
    return out


def shop_statements() -> list[str]:
    """The shop reader's SELECT on the embedded shop's tables, now and to come."""
    return [
        f"grant usage on schema public to {SHOP_READER}",
        f"grant select on all tables in schema public to {SHOP_READER}",
        f"alter default privileges in schema public grant select on tables to {SHOP_READER}",
    ]
