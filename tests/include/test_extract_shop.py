"""The shop extract's window: rows that commit late are read again within the overlap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from include import contract
from include.config import ConfigError, shop_overlap
from include.extract_shop import extract_shop
from include.warehouse import apply_schema

NIGHT_1 = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # midnight HK ending 2026-11-20
NIGHT_2 = NIGHT_1 + timedelta(days=1)


@pytest.fixture
def shop_and_warehouse(make_database):
    """An empty shop database with the contract's tables, and a warehouse."""
    shop, wh = make_database("shop"), make_database("wh")
    with psycopg.connect(shop, autocommit=True) as conn:
        for table in contract.shop_tables().values():
            columns = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns)
            conn.execute(f"create table public.{table.name} ({columns})")
    apply_schema(wh)
    return shop, wh


def _customer(shop: str, customer_id: int, updated_at: datetime) -> None:
    with psycopg.connect(shop) as conn:
        conn.execute(
            "insert into public.customers (customer_id, email, created_at, updated_at)"
            " values (%s, %s, %s, %s)",
            (customer_id, f"c{customer_id}@example.com", updated_at, updated_at),
        )


def _extract(shop: str, wh: str, interval_end: datetime) -> None:
    extract_shop(
        shop_url=shop,
        warehouse_url=wh,
        business_date=(interval_end - timedelta(hours=16)).date(),
        interval_end=interval_end,
    )


def _customers(wh: str) -> list[int]:
    with psycopg.connect(wh) as conn:
        rows = conn.execute("select customer_id from raw.shop_customers order by 1").fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize(("overlap", "extracted"), [(None, [1, 2]), ("60", [1, 2, 3])])
def test_a_late_commit_within_the_overlap_is_extracted_and_one_beyond_it_is_not(
    shop_and_warehouse, monkeypatch, overlap, extracted
):
    shop, wh = shop_and_warehouse
    if overlap is None:
        monkeypatch.delenv("CRM_SHOP_OVERLAP_MINUTES", raising=False)
    else:
        monkeypatch.setenv("CRM_SHOP_OVERLAP_MINUTES", overlap)
    _customer(shop, 1, NIGHT_1 - timedelta(hours=3))
    _extract(shop, wh, NIGHT_1)
    assert _customers(wh) == [1]
    # Committed after night 1 read the shop, stamped before its watermark:
    _customer(shop, 2, NIGHT_1 - timedelta(minutes=5))  # inside the default 10 minutes
    _customer(shop, 3, NIGHT_1 - timedelta(minutes=30))  # beyond them
    _extract(shop, wh, NIGHT_2)
    assert _customers(wh) == extracted
    _extract(shop, wh, NIGHT_2)  # the same night again: nothing twice
    assert _customers(wh) == extracted


def test_the_overlap_setting_is_checked():
    assert shop_overlap("0") == timedelta(0)
    assert shop_overlap("15") == timedelta(minutes=15)
    for bad in ("-1", "ten", "1.5"):
        with pytest.raises(ConfigError, match="CRM_SHOP_OVERLAP_MINUTES must be a whole number"):
            shop_overlap(bad)


def _order(shop: str, order_id: int, lines: int, updated_at: datetime) -> None:
    with psycopg.connect(shop) as conn:
        conn.execute(
            "insert into public.orders (order_id, customer_id, order_ts, status, updated_at)"
            " values (%s, 1, %s, 'paid', %s)",
            (order_id, updated_at, updated_at),
        )
        for line in range(1, lines + 1):
            conn.execute(
                "insert into public.order_items (order_id, line_no, sku, quantity, unit_price)"
                " values (%s, %s, 'SKU1', 1, 10)",
                (order_id, line),
            )


def test_reconciliation_extracts_what_the_window_missed_and_records_hard_deletions(
    shop_and_warehouse, monkeypatch
):
    shop, wh = shop_and_warehouse
    monkeypatch.setenv("CRM_SHOP_RECONCILE_DAYS", "7")
    _customer(shop, 1, NIGHT_1 - timedelta(hours=3))
    _order(shop, 500, lines=2, updated_at=NIGHT_1 - timedelta(hours=2))
    _order(shop, 501, lines=1, updated_at=NIGHT_1 - timedelta(hours=2))
    _extract(shop, wh, NIGHT_1)  # the first night reconciles too: nothing to find

    _customer(shop, 3, NIGHT_1 - timedelta(hours=1))  # committed late, beyond the overlap
    with psycopg.connect(shop) as conn:
        conn.execute("delete from public.order_items where order_id = 500 and line_no = 2")
        conn.execute("delete from public.order_items where order_id = 501")
        conn.execute("delete from public.orders where order_id = 501")
    _extract(shop, wh, NIGHT_2)  # within 7 days of the last reconciliation: not due
    assert _customers(wh) == [1]

    monkeypatch.setenv("CRM_SHOP_RECONCILE_DAYS", "1")
    # due on night 2 (once per business date), then on night 3: nothing is found twice
    for night in (NIGHT_2, NIGHT_2, NIGHT_2 + timedelta(days=1)):
        _extract(shop, wh, night)
        assert _customers(wh) == [1, 3]
        with psycopg.connect(wh) as conn:
            deletions = conn.execute(
                "select table_name, entity_key from raw.shop_deletions order by 1, 2"
            ).fetchall()
            ledger = conn.execute(
                "select rows_read, rows_loaded from ops.load_ledger"
                " where object = 'shop.customers:reconcile' order by load_id"
            ).fetchall()
        assert deletions == [("order_items", "500|2"), ("order_items", "501|1"), ("orders", "501")]
    # night 1: nothing missed; night 2: customer 3 found; night 3: nothing new
    assert ledger == [(1, 0), (2, 1), (2, 0)]


def test_the_extract_works_as_a_shop_role_that_may_only_read(shop_and_warehouse):
    shop, wh = shop_and_warehouse
    _customer(shop, 1, NIGHT_1 - timedelta(hours=3))
    reader = f"shop_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute(f"create role {reader} login password 'read-only-pw'")
        conn.execute(f"grant select on all tables in schema public to {reader}")
    parts = urlsplit(shop)
    reader_url = urlunsplit(
        parts._replace(netloc=f"{reader}:read-only-pw@{parts.hostname}:{parts.port}")
    )
    try:
        _extract(reader_url, wh, NIGHT_1)
        assert _customers(wh) == [1]
    finally:
        with psycopg.connect(shop, autocommit=True) as conn:
            conn.execute(f"drop owned by {reader}; drop role {reader}")
