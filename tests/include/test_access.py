"""Department access, tested by connecting as each department: the allow/deny matrix
over every relation and column comes from contract/privacy.yml, so a new table or
column is checked the day it appears (include/access.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from include import access
from include.privacy import policy
from include.warehouse import apply_schema

# Relations the policy does not list: read by their schema's departments.
UNLISTED = {
    "marts.rpt_brand_new": ("week", "revenue"),
    "staging.stg_new__thing": ("thing_id", "amount"),
}


def _url_as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture
def login_as(fresh_db_url) -> Iterator[Callable[..., str]]:
    """``login_as("crm_marketing")``: the URL of a new login role member of those roles."""
    made: list[str] = []

    def make(*member_of: str) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("create role {} login password {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
            for parent in member_of:
                conn.execute(
                    sql.SQL("grant {} to {}").format(sql.Identifier(parent), sql.Identifier(name))
                )
        made.append(name)
        return _url_as(fresh_db_url, name, password)

    yield make
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


@pytest.fixture
def warehouse(fresh_db_url) -> str:
    """Every relation the policy lists, with its classified columns, and two it does not."""
    apply_schema(fresh_db_url)
    rules = policy()
    wanted = {
        name: (*ds.columns, *(ds.rows[1:] if ds.rows else ()), "row_id")
        for name, ds in rules.datasets.items()
    } | UNLISTED
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        existing = {r.qualified for r in access.catalogue(conn, rules.access.schemas)}
        for name, columns in wanted.items():
            if name in existing:
                continue
            schema, relation = name.split(".")
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("create table {} ({})").format(
                    sql.Identifier(schema, relation),
                    sql.SQL(", ").join(
                        sql.SQL("{} text").format(sql.Identifier(c)) for c in columns
                    ),
                )
            )
    access.apply(fresh_db_url)
    return fresh_db_url


def _can_select(conn: psycopg.Connection, relation: str, column: str) -> bool:
    schema, name = relation.split(".")
    try:
        conn.execute(
            sql.SQL("select {} from {} limit 0").format(
                sql.Identifier(column), sql.Identifier(schema, name)
            )
        )
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def test_every_department_reads_exactly_what_the_policy_allows(warehouse, login_as):
    rules = policy()
    with psycopg.connect(warehouse) as conn:
        relations = access.catalogue(conn, rules.access.schemas)
        assert access.drift(conn) == []
    assert {r.qualified for r in relations} >= set(rules.datasets) | set(UNLISTED)

    denied_somewhere = 0
    for department, role in access.department_roles(rules).items():
        with psycopg.connect(login_as(role), autocommit=True) as conn:
            observed = {
                (r.qualified, c): _can_select(conn, r.qualified, c)
                for r in relations
                for c in r.columns
            }
        expected = {
            (r.qualified, c): department in rules.readers(r.qualified, c)
            for r in relations
            for c in r.columns
        }
        wrong = sorted(k for k in expected if observed[k] != expected[k])
        assert wrong == [], f"{role}: reads what it may not, or cannot read what it may"
        denied_somewhere += sum(not v for v in expected.values())
    assert denied_somewhere > 0

    # what the matrix means, department by department
    def readable(department: str) -> set[tuple[str, str]]:
        return {
            (r.qualified, c)
            for r in relations
            for c in r.columns
            if department in rules.readers(r.qualified, c)
        }

    def personal(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {
            (rel, col)
            for rel, col in pairs
            if rel in rules.datasets
            and col in rules.datasets[rel].columns
            and rules.datasets[rel].columns[col].is_personal
        }

    assert personal(readable("bi_reader")) == set()
    assert personal(readable("store_operations")) == set()
    assert {rel for rel, col in readable("customer_service") if col == "description"} == {
        "raw.complaint_tickets",
        "staging.stg_complaints__tickets",
    }
    for department in ("marketing", "management", "bi_reader", "store_operations"):
        assert not {rel for rel, col in readable(department) if col == "description"} & {
            "raw.complaint_tickets",
            "staging.stg_complaints__tickets",
        }
    assert not {rel for rel, _ in readable("marketing")} & {
        "pii.pii_customer",
        "raw.shop_customers",
    }
    assert ("marts.rpt_brand_new", "revenue") in readable("bi_reader")
    assert ("staging.stg_new__thing", "amount") not in readable("bi_reader")


STORE_ROWS = """
insert into raw.stores (store_code, region, _load_id, _file, _line) values
    ('TST01', 'HK Island', 1, 'reference/stores.csv', 2),
    ('TST01', 'Kowloon', 2, 'reference/stores.csv', 2),
    ('MK01', 'Kowloon', 2, 'reference/stores.csv', 3),
    ('CWB01', 'HK Island', 2, 'reference/stores.csv', 4);
insert into marts.rpt_store_performance (store_name, district, region, row_id)
    values ('Tsim Sha Tsui', 'Yau Tsim Mong', 'Kowloon', '1'),
    ('Causeway Bay', 'Wan Chai', 'HK Island', '2');
insert into marts.fct_sales (store_code, channel, net_amount) values
    ('TST01', 'store', 10), ('MK01', 'store', 20), ('CWB01', 'store', 40), (null, 'online', 80);
insert into reporting.sales_forecast (as_of_date, level, series_key, target_date, horizon_day,
    point, lo80, hi80, lo95, hi95, model_version, run_id)
    select '2026-11-20', level, series_key, '2026-11-21', 1, 5, 4, 6, 3, 7, 'v', 1
    from (values ('store', 'CWB01'), ('store', 'MK01'), ('channel', 'online')) as s (level, series_key);
"""


def test_store_operations_sees_only_the_stores_of_its_regions(fresh_db_url, login_as):
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "create schema if not exists marts;"
            " create table marts.rpt_store_performance (store_name text, district text,"
            " region text, row_id text);"
            " create table marts.fct_sales (store_code text, channel text, net_amount numeric)"
        )
        conn.execute(STORE_ROWS)
    access.apply(fresh_db_url)
    rules = policy()
    regions = access.region_roles(rules)

    def seen(url: str) -> tuple[list, list, list]:
        with psycopg.connect(url) as conn:
            return (
                conn.execute(
                    "select store_name from marts.rpt_store_performance order by 1"
                ).fetchall(),
                conn.execute("select store_code from marts.fct_sales order by 1").fetchall(),
                conn.execute(
                    "select series_key from reporting.sales_forecast order by 1"
                ).fetchall(),
            )

    # TST01 moved to Kowloon in the latest store master: Kowloon sees it, HK Island not
    assert seen(login_as(regions["Kowloon"])) == (
        [("Tsim Sha Tsui",)],
        [("MK01",), ("TST01",)],
        [("MK01",)],
    )
    assert seen(login_as(regions["HK Island"])) == ([("Causeway Bay",)], [("CWB01",)], [("CWB01",)])
    # the department without a region sees no store at all: closed, not open
    assert seen(login_as(access.role("store_operations"))) == ([], [], [])
    everything = seen(login_as(access.role("management")))
    assert [len(rows) for rows in everything] == [2, 4, 3]
    with psycopg.connect(fresh_db_url) as conn:
        forced = conn.execute(
            "select relname from pg_class where relforcerowsecurity and relrowsecurity"
            " and relname in ('rpt_store_performance', 'fct_sales', 'sales_forecast')"
            " order by 1"
        ).fetchall()
    assert forced == [("fct_sales",), ("rpt_store_performance",), ("sales_forecast",)]


def test_a_rebuilt_table_is_closed_until_the_grants_are_applied_again(warehouse, login_as):
    reader = login_as(access.role("bi_reader"))
    with psycopg.connect(reader) as conn:
        assert _can_select(conn, "marts.rpt_brand_new", "revenue")
    # what dbt does to a table model: a new table swapped in, without grants
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(
            "create table marts.rpt_brand_new__dbt_tmp (week text, revenue text);"
            " drop table marts.rpt_brand_new;"
            " alter table marts.rpt_brand_new__dbt_tmp rename to rpt_brand_new"
        )
        assert ("marts.rpt_brand_new", "revenue", "crm_bi_reader") in {
            r[:3] for r in access.drift(conn)
        }
    with psycopg.connect(reader) as conn:
        assert not _can_select(conn, "marts.rpt_brand_new", "revenue")

    access.apply(warehouse)
    with psycopg.connect(reader) as conn:
        assert _can_select(conn, "marts.rpt_brand_new", "revenue")
    with psycopg.connect(warehouse) as conn:
        assert access.drift(conn) == []


def test_a_grant_added_by_hand_is_drift_and_the_next_apply_takes_it_back(warehouse, login_as):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("grant usage on schema pii to crm_marketing")
        conn.execute("grant select on pii.pii_customer to crm_marketing")
        problems = {(r[0], r[1], r[2]) for r in access.drift(conn)}
    assert ("pii.pii_customer", "email", "crm_marketing") in problems

    access.apply(warehouse)
    with psycopg.connect(login_as(access.role("marketing"))) as conn:
        assert not _can_select(conn, "pii.pii_customer", "email")
    with psycopg.connect(warehouse) as conn:
        assert access.drift(conn) == []
