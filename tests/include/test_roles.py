"""The pipeline's own roles (include/roles.py), tested by connecting as each one through
the embedded warehouse's unprivileged login, as the nightly steps do."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest

from include import access, roles
from include.warehouse import apply_schema

RAW = "raw.pos_lines"
LEDGER = "ops.load_ledger"
MODEL_OUTPUT = "reporting.churn_scores"


@pytest.fixture(scope="module")
def warehouse(module_make_database, test_server) -> dict[str, str]:
    """A migrated warehouse and a table the transformer built in marts, as dbt does."""
    admin = module_make_database("t_roles")
    apply_schema(admin)
    login = test_server.pipeline_url(urlsplit(admin).path.lstrip("/"))
    urls = {role: roles.as_role(login, role) for role in roles.PIPELINE_ROLES}
    with psycopg.connect(urls[roles.TRANSFORMER], autocommit=True) as conn:
        conn.execute("create table marts.fct_brand_new (week text, revenue numeric)")
        conn.execute("insert into marts.fct_brand_new values ('2026-W01', 10)")
    return {"admin": admin, "login": login, **urls}


def _allowed(url: str, statement: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()  # nothing a probe does is kept
    return True


# (role, statement, allowed): what each step of the night may and may not do
MATRIX = [
    (roles.LOADER, f"insert into {LEDGER} select * from {LEDGER}", True),
    (roles.LOADER, f"delete from {RAW}", True),
    (roles.LOADER, "select * from marts.fct_brand_new", False),
    (roles.LOADER, "create table marts.t (n int)", False),
    (roles.LOADER, f"delete from {MODEL_OUTPUT}", False),
    (roles.LOADER, "create table raw.t (n int)", False),
    (roles.TRANSFORMER, f"select * from {RAW}", True),
    (roles.TRANSFORMER, f"delete from {RAW}", True),  # retention purge, erasure
    (roles.TRANSFORMER, f"insert into {RAW} select * from {RAW}", False),
    (roles.TRANSFORMER, "create table marts.t (n int)", True),
    (roles.TRANSFORMER, "create table raw.t (n int)", False),
    (roles.TRANSFORMER, f"insert into {MODEL_OUTPUT} select * from {MODEL_OUTPUT}", False),
    (roles.TRANSFORMER, f"update {MODEL_OUTPUT} set customer_key = null", True),  # erasure
    (roles.PUBLISHER, "select * from marts.fct_brand_new", True),
    (roles.PUBLISHER, f"select * from {RAW}", True),  # the raw gate
    (roles.PUBLISHER, f"insert into {MODEL_OUTPUT} select * from {MODEL_OUTPUT}", True),
    (roles.PUBLISHER, "create table reporting.t (n int)", True),
    (roles.PUBLISHER, "update marts.fct_brand_new set revenue = 0", False),
    (roles.PUBLISHER, "create table marts.t (n int)", False),
    (roles.PUBLISHER, f"delete from {RAW}", False),
    ("login", f"select * from {RAW}", False),
    ("login", "select * from marts.fct_brand_new", False),
]


@pytest.mark.parametrize(
    ("who", "statement", "allowed"), MATRIX, ids=[f"{w}: {s[:40]}" for w, s, _ in MATRIX]
)
def test_each_pipeline_role_does_only_its_step(warehouse, who, statement, allowed):
    assert _allowed(warehouse[who], statement) is allowed


def test_no_step_runs_as_a_superuser_or_holds_privileges_of_its_own(warehouse):
    for who in (*roles.PIPELINE_ROLES, "login"):
        with psycopg.connect(warehouse[who]) as conn:
            session, current, superuser, inherits = conn.execute(
                "select session_user, current_user, rolsuper, rolinherit"
                " from pg_roles where rolname = session_user"
            ).fetchone()
            (current_super,) = conn.execute(
                "select rolsuper from pg_roles where rolname = current_user"
            ).fetchone()
        assert session == roles.LOGIN
        assert current == (roles.LOGIN if who == "login" else who)
        assert not superuser and not current_super and not inherits


def test_the_transformer_grants_the_departments_what_it_built(warehouse):
    """dbt's tables are the transformer's; it applies their department grants after a
    build without the admin, and the check finds nothing missing."""
    access.apply(warehouse[roles.TRANSFORMER])
    with psycopg.connect(warehouse["admin"]) as conn:
        assert conn.execute(
            "select has_table_privilege('crm_bi_reader', 'marts.fct_brand_new', 'select')"
        ).fetchone() == (True,)
        assert [r for r in access.drift(conn) if r[0] == "marts.fct_brand_new"] == []


def test_the_shop_is_read_in_read_only_sessions_by_a_select_only_role(test_server):
    shop = test_server.pipeline_url("shop")
    reader = roles.as_role(shop, roles.SHOP_READER, read_only=True)
    with psycopg.connect(test_server.url("shop"), autocommit=True) as conn:
        conn.execute("create table if not exists public.t_roles_probe (n int)")
    try:
        assert _allowed(reader, "select * from public.t_roles_probe")
        with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into public.t_roles_probe values (1)")
        # a session that turns read-only off still may not write
        assert not _allowed(
            roles.as_role(shop, roles.SHOP_READER), "insert into public.t_roles_probe values (1)"
        )
    finally:
        with psycopg.connect(test_server.url("shop"), autocommit=True) as conn:
            conn.execute("drop table public.t_roles_probe")


def test_the_pipeline_sees_every_row_of_a_row_security_table(warehouse):
    """FORCE ROW LEVEL SECURITY binds the owner too: without the pipeline's policy the
    gate would count no sales and an erasure would empty nothing, silently."""
    with psycopg.connect(warehouse[roles.TRANSFORMER], autocommit=True) as conn:
        conn.execute(
            "create table if not exists marts.fct_sales"
            " (store_code text, channel text, net_amount numeric, customer_key text)"
        )
        conn.execute(
            "insert into marts.fct_sales values ('S1', 'store', 5, 'k1'), (null, 'online', 7, 'k2')"
        )
    access.apply(warehouse[roles.TRANSFORMER])
    with psycopg.connect(warehouse["admin"]) as conn:
        assert conn.execute(
            "select relforcerowsecurity from pg_class where oid = 'marts.fct_sales'::regclass"
        ).fetchone() == (True,)
    with psycopg.connect(warehouse[roles.PUBLISHER]) as conn:
        assert conn.execute("select count(*) from marts.fct_sales").fetchone() == (2,)
    with psycopg.connect(warehouse[roles.TRANSFORMER]) as conn:
        erased = conn.execute(
            "update marts.fct_sales set customer_key = null where customer_key = 'k2'"
        )
        assert erased.rowcount == 1
    with psycopg.connect(
        roles.as_role(warehouse["admin"], access.role("store_operations"))
    ) as conn:
        assert conn.execute("select count(*) from marts.fct_sales").fetchone() == (0,)


def test_airflow_owns_its_metadata_database_and_reads_nothing_of_the_warehouse(
    warehouse, test_server
):
    from include.warehouse import AIRFLOW_LOGIN

    with psycopg.connect(test_server.airflow_url()) as conn:
        assert conn.execute(
            "select current_user, rolsuper, rolcreaterole, rolcreatedb from pg_roles"
            " where rolname = current_user"
        ).fetchone() == (AIRFLOW_LOGIN, False, False, False)
        assert conn.execute(
            "select pg_get_userbyid(datdba) from pg_database where datname = 'airflow'"
        ).fetchone() == (AIRFLOW_LOGIN,)
        conn.execute("create table public.t_airflow_probe (n int)")  # what `db migrate` does
        conn.rollback()
    warehouse_db = urlsplit(warehouse["admin"]).path
    as_airflow = urlsplit(test_server.airflow_url())._replace(path=warehouse_db).geturl()
    for statement in (f"select * from {RAW}", f"select * from {LEDGER}", "create schema t_x"):
        assert not _allowed(as_airflow, statement), statement
