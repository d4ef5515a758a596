"""`python -m include.deploy init`, the compose stack's one-time set-up, on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from include.config import CrmError
from include.deploy import init, main


@pytest.fixture
def shop_db_url(make_database) -> str:
    """A second new, empty database (fresh_db_url is the warehouse)."""
    return make_database("t_shop")


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select schemaname || '.' || tablename from pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {r[0] for r in rows}


def stack_env(warehouse_url: str, shop_url: str, **extra: str) -> dict[str, str]:
    return {
        "WAREHOUSE_URL": warehouse_url,
        "SHOP_DB_URL": shop_url,
        "AIRFLOW__CORE__FERNET_KEY": "0123456789abcdef0123456789abcdef0123456789a=",
        "CRM_CUSTOMER_KEY_SECRET": "a-real-secret",
        **extra,
    }


def test_init_prepares_warehouse_and_standin_shop_and_is_idempotent(fresh_db_url, shop_db_url):
    env = stack_env(fresh_db_url, shop_db_url, CRM_SHOP_STANDIN="true")
    first = init(env)
    assert {"ops.load_ledger", "ops.watermarks", "quarantine.rejected_rows"} <= tables(fresh_db_url)
    assert {"public.customers", "public.orders", "public.order_items"} <= tables(shop_db_url)
    assert "tables created" in first[1] and "***" in first[0]
    before = tables(shop_db_url), tables(fresh_db_url)
    second = init(env)
    assert "not empty" in second[1]
    assert (tables(shop_db_url), tables(fresh_db_url)) == before


def test_init_never_writes_to_a_shop_database_that_has_tables(fresh_db_url, shop_db_url):
    with psycopg.connect(shop_db_url, autocommit=True) as conn:
        conn.execute("create table public.real_shop_accounts (id int)")
    init(stack_env(fresh_db_url, shop_db_url, CRM_SHOP_STANDIN="true"))
    assert tables(shop_db_url) == {"public.real_shop_accounts"}


def test_init_leaves_the_shop_alone_unless_asked(fresh_db_url, shop_db_url):
    done = init(stack_env(fresh_db_url, shop_db_url, CRM_SHOP_STANDIN="false"))
    assert len(done) == 1
    assert tables(shop_db_url) == set()


def test_init_refuses_placeholder_secrets_before_touching_anything(fresh_db_url, shop_db_url):
    env = stack_env(fresh_db_url, shop_db_url, CRM_SHOP_STANDIN="true")
    env["CRM_CUSTOMER_KEY_SECRET"] = "change-me-customer-key-secret"
    with pytest.raises(CrmError, match="CRM_CUSTOMER_KEY_SECRET still holds"):
        init(env)
    assert tables(fresh_db_url) == set() and tables(shop_db_url) == set()


def test_main_reports_a_bad_setting_in_one_line(monkeypatch, capsys, fresh_db_url):
    monkeypatch.setenv("WAREHOUSE_URL", fresh_db_url)
    monkeypatch.setenv("SHOP_DB_URL", "mysql://shop@db/shop")
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crm: SHOP_DB_URL must look like postgresql://") and err.count("\n") == 1
