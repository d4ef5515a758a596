"""The quality gate against a real PostgreSQL: a critical failure raises, a warning does not."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from expectations.gate import GateFailed, GateResult, run_gate
from include.ledger import Ledger
from include.warehouse import apply_schema

BUSINESS_DATE = date(2026, 11, 20)

MARTS_DDL = """
create schema if not exists marts;
create table marts.dim_customer (customer_key text);
create table marts.fct_sales (sales_line_key text, channel text, customer_key text);
"""

# One row in every table a gate reads; a sale without a customer (walk-in) is fine.
GOOD_DATA = """
insert into raw.shop_customers (customer_id, updated_at, _load_id) values (1, now(), 1);
insert into raw.shop_products (sku, updated_at, _load_id) values ('SKU1', now(), 1);
insert into raw.shop_orders (order_id, updated_at, _load_id) values (1, now(), 1);
insert into raw.shop_order_items (order_id, line_no, _load_id) values (1, 1, 1);
insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku, quantity,
    unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file, _line)
    values ('R1', 'TST01', '2026-11-20 10:00', 'SALE', 1, 'SKU1', 1, 1.00,
    '2026-11-20', 'TST01', 1, 2, 'pos/2026-11-20/TST01_1.csv', 2);
insert into raw.stores (store_code, _load_id, _file, _line) values ('TST01', 3, 'stores/stores.csv', 2);
insert into raw.loyalty_members (card_no, updated_at, _load_id, _file, _line)
    values ('1234567890', now(), 4, 'loyalty/members.csv', 2);
insert into raw.web_events (event_id, event_ts, event_type, _load_id, _file, _line)
    values (gen_random_uuid(), now(), 'page_view', 5, 'web/events.jsonl', 1);
insert into raw.complaint_tickets (ticket_id, created_at, updated_at, status, _load_id, _file, _line)
    values ('CS-1', now(), now(), 'new', 6, 'complaints/t.jsonl', 1);
insert into raw.privacy_requests (request_id, received_at, request_type, _load_id, _file, _line)
    values ('P1', now(), 'access', 7, 'privacy/r.csv', 2);
insert into ops.load_ledger (source, object, checksum, business_date, status)
    values ('pos', 'pos/2026-11-20/TST01_1.csv', 'abc', '2026-11-20', 'loaded');
insert into marts.dim_customer values ('c1'), ('c2');
insert into marts.fct_sales values ('s1', 'online', 'c1'), ('s2', 'store', 'c2'), ('s3', 'store', null);
"""


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def warehouse(fresh_db_url: str) -> str:
    """A warehouse with the foundation tables, the two marts and one good row everywhere."""
    apply_schema(fresh_db_url)
    execute(fresh_db_url, MARTS_DDL)
    execute(fresh_db_url, GOOD_DATA)
    return fresh_db_url


def gate(
    name: str, url: str, gx_dir: Path, business_date: date | None = BUSINESS_DATE
) -> GateResult:
    return run_gate(name, warehouse_url=url, gx_dir=gx_dir, business_date=business_date)


def test_good_data_passes_both_gates_and_builds_data_docs(warehouse, tmp_path):
    gx_dir = tmp_path / "gx"

    raw_result = gate("raw", warehouse, gx_dir)
    marts_result = gate("marts", warehouse, gx_dir)

    for result in (raw_result, marts_result):
        assert result.success
        assert result.critical_failures == []
        assert result.warning_failures == []
    index = marts_result.data_docs_index
    assert index.name == "index.html" and index.is_file()
    assert index.is_relative_to(gx_dir)
    html = index.read_text()
    for suite in ("raw_tables", "ops_load_ledger", "marts_dim_customer", "marts_fct_sales"):
        assert suite in html


def test_duplicate_customer_key_fails_the_marts_gate(warehouse, tmp_path):
    execute(warehouse, "insert into marts.dim_customer values ('c1')")

    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")

    message = str(failed.value)
    assert "marts.dim_customer.customer_key: expect_column_values_to_be_unique failed" in message
    assert "'c1'" in message
    assert str(tmp_path / "gx") in message  # where the Data Docs are
    assert failed.value.result is not None and not failed.value.result.success
    assert failed.value.result.data_docs_index.is_file()


def test_empty_pos_lines_fails_the_raw_gate(warehouse, tmp_path):
    execute(warehouse, "delete from raw.pos_lines")

    with pytest.raises(GateFailed) as failed:
        gate("raw", warehouse, tmp_path / "gx")

    assert failed.value.result.critical_failures == [
        "raw.pos_lines: expect_table_row_count_to_be_between failed (observed 0)"
    ]
    assert "raw.pos_lines" in str(failed.value)


def test_sale_of_a_customer_missing_from_dim_customer_fails(warehouse, tmp_path):
    execute(warehouse, "insert into marts.fct_sales values ('s4', 'online', 'ghost')")

    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")

    (failure,) = failed.value.result.critical_failures
    assert failure.startswith("marts.fct_sales: unexpected_rows_expectation failed (observed 1)")
    assert "dim_customer" in failure


def test_unknown_channel_is_only_a_warning(warehouse, tmp_path):
    execute(warehouse, "insert into marts.fct_sales values ('s4', 'kiosk', 'c1')")

    result = gate("marts", warehouse, tmp_path / "gx")

    assert result.success
    assert result.critical_failures == []
    (warning,) = result.warning_failures
    assert warning.startswith("marts.fct_sales.channel: expect_column_values_to_be_in_set failed")
    assert "'kiosk'" in warning


def test_empty_privacy_requests_is_only_a_warning(warehouse, tmp_path):
    execute(warehouse, "delete from raw.privacy_requests")

    result = gate("raw", warehouse, tmp_path / "gx")

    assert result.success
    assert result.warning_failures == [
        "raw.privacy_requests: expect_table_row_count_to_be_between failed (observed 0)"
    ]


def test_a_missing_expected_file_is_a_warning_for_its_day_only(warehouse, tmp_path):
    execute(
        warehouse,
        "insert into ops.load_gaps (source, business_date, expected)"
        " values ('pos', '2026-11-20', 'MK01'), ('pos', '2026-11-19', 'TST01')",
    )

    result = gate("raw", warehouse, tmp_path / "gx")

    assert result.success
    assert len(result.warning_failures) == 1
    assert "ops.load_gaps" in result.warning_failures[0]


def test_a_failed_load_blocks_every_later_night_until_loaded_again_or_resolved(warehouse, tmp_path):
    """Retries and later nights do not clear a failure: only loading the object after all,
    or an operator's `crm ledger resolve`, does. A failure dated after the night being run
    (a backfill of an older night) does not block it."""
    gx_dir = tmp_path / "gx"
    execute(
        warehouse,
        "insert into ops.load_ledger (source, object, business_date, status, message) values"
        " ('web', 'web/2026-11-19/events.jsonl.gz', '2026-11-19', 'failed', 'truncated gzip'),"
        " ('web', 'web/2026-11-20/events.jsonl.gz', '2026-11-20', 'failed', 'truncated gzip'),"
        " ('web', 'web/2026-11-21/events.jsonl.gz', '2026-11-21', 'failed', 'truncated gzip')",
    )

    with pytest.raises(GateFailed) as failed:
        gate("raw", warehouse, gx_dir)  # the night of 2026-11-20
    (failure,) = failed.value.result.critical_failures
    assert failure.startswith("ops.load_ledger: unexpected_rows_expectation failed (observed 2)")
    assert "up to 2026-11-20" in failure  # the 21st is not counted

    with pytest.raises(GateFailed, match=r"observed 3"):
        gate("raw", warehouse, gx_dir, business_date=None)  # every date

    execute(
        warehouse,
        "insert into ops.load_ledger (source, object, business_date, status) values"
        " ('web', 'web/2026-11-20/events.jsonl.gz', '2026-11-20', 'loaded')",
    )
    with pytest.raises(GateFailed, match=r"observed 1"):
        gate("raw", warehouse, gx_dir)  # the 19th still blocks

    with psycopg.connect(warehouse, autocommit=True) as conn:
        (load_id,) = conn.execute(
            "select load_id from ops.load_ledger where business_date = '2026-11-19'"
        ).fetchone()
        Ledger(conn).resolve(load_id, "re-sent by the web team as events_2.jsonl.gz")
    assert gate("raw", warehouse, gx_dir).success


def test_reruns_in_the_same_gx_dir_validate_current_data_and_store_no_password(
    fresh_db_url, tmp_path
):
    # The test server requires a real password: it must never reach gx_dir.
    url = fresh_db_url
    password = urlsplit(url).password
    assert password
    apply_schema(url)
    execute(url, MARTS_DDL)
    execute(url, GOOD_DATA)
    gx_dir = tmp_path / "gx"

    for _ in range(3):
        assert gate("raw", url, gx_dir).success
        assert gate("marts", url, gx_dir).success

    execute(url, "insert into marts.fct_sales values ('s1', 'online', 'c1')")
    with pytest.raises(GateFailed, match=r"marts\.fct_sales\.sales_line_key"):
        gate("marts", url, gx_dir)

    stored = [path for path in gx_dir.rglob("*") if path.is_file()]
    assert stored
    assert not [path for path in stored if password.encode() in path.read_bytes()]


def test_missing_mart_table_is_one_clear_critical_failure(warehouse, tmp_path):
    gx_dir = tmp_path / "gx"
    assert gate("marts", warehouse, gx_dir).success  # the context knows the table already
    execute(warehouse, "drop table marts.fct_sales")

    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, gx_dir)

    assert failed.value.result.critical_failures == [
        "marts.fct_sales: table does not exist (the marts gate cannot check it;"
        " did the step that builds it run?)"
    ]
    assert "Traceback" not in str(failed.value)

    execute(
        warehouse,
        "create table marts.fct_sales (sales_line_key text, channel text, customer_key text);"
        " insert into marts.fct_sales values ('s1', 'online', 'c1')",
    )
    assert gate("marts", warehouse, gx_dir).success


def test_arguments_are_checked_before_touching_anything(tmp_path):
    url = "postgresql://postgres@127.0.0.1:5432/warehouse"
    with pytest.raises(ValueError, match="unknown gate"):
        run_gate("staging", warehouse_url=url, gx_dir=tmp_path)
    with pytest.raises(TypeError, match="Hong Kong business day"):
        run_gate("raw", warehouse_url=url, gx_dir=tmp_path, business_date=datetime(2026, 11, 20))
    with pytest.raises(ValueError, match="TCP host"):
        run_gate("raw", warehouse_url="postgresql://postgres@/warehouse?host=/tmp", gx_dir=tmp_path)
    with pytest.raises(ValueError, match=r"got 'mysql://user:\*\*\*@127") as bad_scheme:
        run_gate("raw", warehouse_url="mysql://user:pw@127.0.0.1/db", gx_dir=tmp_path)
    assert ":pw@" not in str(bad_scheme.value)
    assert list(tmp_path.iterdir()) == []


# ---- a retailer with only some sources (CRM_SOURCES) ----

ONLINE_AND_DIGITAL = (
    "raw.shop_customers",
    "raw.shop_products",
    "raw.shop_orders",
    "raw.shop_order_items",
    "raw.web_events",
    "raw.complaint_tickets",
)


def test_stores_with_loyalty_cards_pass_the_raw_gate_without_shop_web_or_complaints(
    warehouse, tmp_path, monkeypatch
):
    gx_dir = tmp_path / "gx"
    execute(warehouse, "; ".join(f"delete from {table}" for table in ONLINE_AND_DIGITAL))

    monkeypatch.delenv("CRM_SOURCES", raising=False)  # every source declared: they are missing
    with pytest.raises(GateFailed) as failed:
        gate("raw", warehouse, gx_dir)
    missing = {failure.split(":")[0] for failure in failed.value.result.critical_failures}
    assert missing == set(ONLINE_AND_DIGITAL)

    monkeypatch.setenv("CRM_SOURCES", "pos,stores,loyalty")
    result = gate("raw", warehouse, gx_dir)
    assert result.success
    assert result.critical_failures == [] and result.warning_failures == []

    # the declared sources' tables are still required
    execute(warehouse, "delete from raw.pos_lines")
    with pytest.raises(GateFailed) as failed:
        gate("raw", warehouse, gx_dir)
    assert failed.value.result.critical_failures == [
        "raw.pos_lines: expect_table_row_count_to_be_between failed (observed 0)"
    ]


def test_an_online_shop_only_passes_the_marts_gate_without_store_sales(
    warehouse, tmp_path, monkeypatch
):
    gx_dir = tmp_path / "gx"
    execute(warehouse, "delete from marts.fct_sales where channel = 'store'")

    monkeypatch.delenv("CRM_SOURCES", raising=False)  # POS declared: listed, not blocking
    result = gate("marts", warehouse, gx_dir)
    assert result.success
    (warning,) = result.warning_failures
    assert warning.startswith("marts.fct_sales: unexpected_rows_expectation failed (observed 1)")
    assert "store from pos" in warning

    monkeypatch.setenv("CRM_SOURCES", "shop,web,complaints")
    result = gate("marts", warehouse, gx_dir)
    assert result.success
    assert result.warning_failures == []

    # no sales at all still stops publication
    execute(warehouse, "delete from marts.fct_sales")
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, gx_dir)
    assert failed.value.result.critical_failures == [
        "marts.fct_sales: expect_table_row_count_to_be_between failed (observed 0)"
    ]
