"""A retailer with only some of the contract's sources (``CRM_SOURCES``).

The setting's parsing and its one-sentence errors; an undeclared source's
task doing nothing (no connection) and saying so; a declared shop whose
database lacks its tables failing with one sentence; the raw and marts suites
asking rows only of declared sources. The gates themselves run against a real
database in tests/expectations/test_gate.py.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

import psycopg
import pytest

from expectations import marts, raw
from include import pipeline
from include.config import SOURCES, ConfigError, declared_sources, settings
from include.extract_shop import ShopSchemaMissing, extract_shop
from include.pipeline import SourceNotDeclared, end_of
from include.warehouse import apply_schema

DAY = date(2026, 10, 20)
# Refuses connections: nothing may talk to it.
NOWHERE = "postgresql://crm:secret@127.0.0.1:9/nowhere"

# The shop tables of SOURCES.md section 1, with the contract's columns only.
SHOP_DDL = """
create table public.customers (customer_id bigint, email text, phone text, full_name text,
    date_of_birth date, district text, marketing_opt_in boolean, created_at timestamptz,
    updated_at timestamptz, deleted_at timestamptz);
create table public.products (sku text, name text, category text, subcategory text, brand text,
    unit_price numeric(12,2), active boolean, updated_at timestamptz);
create table public.orders (order_id bigint, customer_id bigint, order_ts timestamptz,
    status text, payment_method text, delivery_district text, shipping_fee numeric(12,2),
    discount numeric(12,2), currency text, updated_at timestamptz);
create table public.order_items (order_id bigint, line_no int, sku text, quantity int,
    unit_price numeric(12,2), line_discount numeric(12,2));
create table public.order_status_history (order_id bigint, status text, changed_at timestamptz);
"""
SHOP_TABLES = ("customers", "products", "orders", "order_items", "order_status_history")


def one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message


# ---- the setting ----


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_or_empty_means_every_source(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CRM_SOURCES", raising=False)
    else:
        monkeypatch.setenv("CRM_SOURCES", value)
    assert declared_sources() == SOURCES
    assert set(SOURCES) == {"shop", "pos", "stores", "loyalty", "web", "complaints", "privacy"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # stores with loyalty cards, no online shop; privacy is always declared
        ("pos,stores,loyalty", ("pos", "stores", "loyalty", "privacy")),
        # an online shop only; case, spaces, order and repeats do not matter
        (" Web, shop ,COMPLAINTS,shop ", ("shop", "web", "complaints", "privacy")),
        ("shop", ("shop", "privacy")),
        ("loyalty,privacy,shop", ("shop", "loyalty", "privacy")),
        ("shop,pos,stores,loyalty,web,complaints,privacy", SOURCES),
    ],
)
def test_declared_sources_are_parsed_into_pipeline_order(monkeypatch, value, expected):
    monkeypatch.setenv("CRM_SOURCES", value)
    assert declared_sources() == expected
    assert declared_sources(value) == expected  # the same, given explicitly


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("shop,kiosk,ftp", ["unknown source(s) 'ftp', 'kiosk'", "shop, pos, stores"]),
        ("shop;pos", ["unknown source(s) 'shop;pos'"]),
        (",", ["names no source"]),
        ("pos,loyalty", ["pos without stores", "declare pos and stores together"]),
        ("stores,loyalty,shop", ["stores without pos", "declare pos and stores together"]),
        ("loyalty,web", ["no sales source", "shop", "pos with stores"]),
        ("pos,stores", ["no customer source", "shop", "loyalty"]),
        ("pos,stores,complaints", ["no customer source"]),
    ],
)
def test_invalid_declarations_are_one_sentence_naming_the_setting(monkeypatch, value, words):
    monkeypatch.setenv("CRM_SOURCES", value)
    with pytest.raises(ConfigError) as error:
        declared_sources()
    message = str(error.value)
    one_sentence(message)
    assert message.startswith(f"CRM_SOURCES={value!r} "), message
    for word in words:
        assert word in message


def test_settings_carry_the_declared_sources_and_refuse_a_bad_one(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", NOWHERE)
    monkeypatch.setenv("SHOP_DB_URL", NOWHERE)
    monkeypatch.setenv("CRM_SOURCES", "shop,web")
    assert settings().sources == ("shop", "web", "privacy")
    monkeypatch.delenv("CRM_SOURCES")
    assert settings().sources == SOURCES
    monkeypatch.setenv("CRM_SOURCES", "shop,fax")
    with pytest.raises(ConfigError, match="'fax'"):
        settings()


# ---- an undeclared source's task does nothing ----


@pytest.fixture
def no_connections(monkeypatch, tmp_path) -> list:
    """Settings that point nowhere, and a psycopg that records (and refuses) every connection."""
    monkeypatch.setenv("WAREHOUSE_URL", NOWHERE)
    monkeypatch.setenv("SHOP_DB_URL", NOWHERE)
    (tmp_path / "landing").mkdir()
    monkeypatch.setenv("LANDING_URL", str(tmp_path / "landing"))
    attempts: list = []

    def connect(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("connected to a database")

    monkeypatch.setattr(psycopg, "connect", connect)
    return attempts


@pytest.mark.parametrize("source", ["web", "complaints"])
def test_an_undeclared_landing_source_signals_and_connects_to_nothing(
    monkeypatch, no_connections, source
):
    monkeypatch.setenv("CRM_SOURCES", "pos,stores,loyalty")

    with pytest.raises(SourceNotDeclared) as signal:
        pipeline.load_landing(source, end_of(DAY))

    assert signal.value.source == source
    assert signal.value.declared == ("pos", "stores", "loyalty", "privacy")
    message = str(signal.value)
    one_sentence(message)
    assert f"Source {source} is not declared in CRM_SOURCES" in message
    assert no_connections == []


def test_an_undeclared_shop_is_never_connected_to(monkeypatch, no_connections):
    monkeypatch.setenv("CRM_SOURCES", "pos,stores,loyalty")

    with pytest.raises(SourceNotDeclared, match="Source shop is not declared"):
        pipeline.extract_shop(end_of(DAY))

    assert no_connections == []


def test_a_declared_source_does_load(monkeypatch, no_connections):
    """The other side: with the source declared, the same call goes to the warehouse."""
    monkeypatch.setenv("CRM_SOURCES", "pos,stores,loyalty,web")

    with pytest.raises(AssertionError, match="connected"):
        pipeline.load_landing("web", end_of(DAY))
    with pytest.raises(AssertionError, match="connected"):
        pipeline.load_landing("privacy", end_of(DAY))  # always declared
    assert len(no_connections) == 2


# ---- a declared shop whose database has no tables ----


@pytest.fixture
def warehouse(fresh_db_url) -> str:
    apply_schema(fresh_db_url)
    return fresh_db_url


def ledger_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from ops.load_ledger").fetchone()[0]


def test_a_shop_database_without_tables_fails_with_one_sentence(
    monkeypatch, make_database, warehouse
):
    shop = make_database("t_shop")
    monkeypatch.setenv("WAREHOUSE_URL", warehouse)
    monkeypatch.setenv("SHOP_DB_URL", shop)
    monkeypatch.delenv("CRM_SOURCES", raising=False)  # every source, the shop too

    with pytest.raises(ShopSchemaMissing) as error:
        pipeline.extract_shop(end_of(DAY))

    message = str(error.value)
    one_sentence(message)
    assert "does not exist" not in message  # not psycopg's message
    assert "has no table(s) public.customers, public.products, public.orders," in message
    assert all(f"public.{table}" in message for table in SHOP_TABLES)
    assert "leave shop out of CRM_SOURCES" in message
    assert urlsplit(shop).password not in message
    assert ledger_rows(warehouse) == 0  # nothing was begun, nothing extracted


def test_a_missing_table_or_column_is_named_and_a_complete_shop_extracts(make_database, warehouse):
    shop = make_database("t_shop")
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute(SHOP_DDL)
        conn.execute("drop table public.order_status_history")
        conn.execute("alter table public.orders drop column status")
        conn.execute("alter table public.products add column colour text")  # new: fine
    run = {
        "shop_url": shop,
        "warehouse_url": warehouse,
        "business_date": DAY,
        "interval_end": end_of(DAY),
    }

    with pytest.raises(ShopSchemaMissing) as error:
        extract_shop(**run)

    message = str(error.value)
    one_sentence(message)
    assert "no table(s) public.order_status_history and no column(s) public.orders.status" in (
        message
    )
    assert "public.products" not in message and "public.customers" not in message
    assert ledger_rows(warehouse) == 0

    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute("alter table public.orders add column status text")
        conn.execute(
            "create table public.order_status_history"
            " (order_id bigint, status text, changed_at timestamptz)"
        )
    outcomes = extract_shop(**run)
    # every table extracted, then (the first night is due) reconciled against the shop
    assert [o.object for o in outcomes] == [f"shop.{t}" for t in SHOP_TABLES] + [
        f"shop.{t}:reconcile" for t in SHOP_TABLES
    ]
    assert ledger_rows(warehouse) == 2 * len(SHOP_TABLES)


# ---- the gates ask rows only of declared sources ----


def row_count_tables(validations) -> set[str]:
    return {v.table for v in validations if v.suite_name == raw.RAW_TABLES_SUITE}


def test_raw_suite_of_stores_with_loyalty_requires_pos_rows_but_no_shop_web_or_complaints(
    monkeypatch,
):
    monkeypatch.setenv("CRM_SOURCES", "pos,stores,loyalty")

    validations = raw.validations(DAY)

    assert row_count_tables(validations) == {"pos_lines", "stores", "loyalty_members"}
    by_table = {v.qualified_name: v for v in validations}
    (pos_check,) = by_table["raw.pos_lines"].expectations
    assert pos_check.min_value == 1 and pos_check.meta["severity"] == "critical"
    # still checked whatever the sources: privacy (a warning), failed loads, gaps
    assert {"raw.privacy_requests", "ops.load_ledger", "ops.load_gaps"} <= set(by_table)
    assert by_table["raw.privacy_requests"].suite_name == raw.OPTIONAL_RAW_TABLES_SUITE


def test_raw_suite_of_an_online_shop_only_and_of_every_source(monkeypatch):
    monkeypatch.setenv("CRM_SOURCES", "shop,web,complaints")
    assert row_count_tables(raw.validations(DAY)) == {
        "shop_customers",
        "shop_products",
        "shop_orders",
        "shop_order_items",
        "web_events",
    }
    optional = {v.table for v in raw.validations(DAY) if v.suite_name != raw.RAW_TABLES_SUITE}
    # complaints and privacy (always declared) come when something happens: may be empty
    assert optional == {
        "complaint_tickets",
        "privacy_requests",
        "load_ledger",
        "load_gaps",
        "late_files",
    }
    monkeypatch.delenv("CRM_SOURCES")
    assert row_count_tables(raw.validations(DAY)) == set(raw.REQUIRED_TABLES)
    assert len(raw.REQUIRED_TABLES) == 8


def channel_checks(sources: tuple[str, ...]) -> list[str]:
    return [
        e.unexpected_rows_query
        for e in marts.fct_sales_suite(sources)
        if "declared (channel)" in (getattr(e, "unexpected_rows_query", None) or "")
    ]


def test_marts_suite_expects_the_declared_channels_only():
    (shop_only,) = channel_checks(declared_sources("shop,web"))
    assert "('online')" in shop_only and "('store')" not in shop_only
    (stores_only,) = channel_checks(declared_sources("pos,stores,loyalty"))
    assert "('store')" in stores_only and "('online')" not in stores_only
    (both,) = channel_checks(SOURCES)
    assert "('online'), ('store')" in both
    # the grain and the row counts stay, whatever the sources
    for sources in (declared_sources("shop"), declared_sources("pos,stores,loyalty")):
        for suite in (marts.fct_sales_suite(sources), marts.dim_customer_suite()):
            kinds = {type(e).__name__ for e in suite}
            assert {"ExpectTableRowCountToBeBetween", "ExpectColumnValuesToBeUnique"} <= kinds
