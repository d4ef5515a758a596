"""The quality gate against a real PostgreSQL: a critical failure raises, a warning does not."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from expectations.gate import GateFailed, GateResult, run_gate
from include import access, cli
from include.ledger import Ledger
from include.privacy import policy
from include.retention import purge, tables
from include.warehouse import apply_schema

BUSINESS_DATE = date(2026, 11, 20)

FCT_SALES_DDL = """
create table marts.fct_sales (sales_line_key text, channel text, customer_key text,
    store_code text, business_date date, net_amount numeric(12, 2));
"""

# The marts and what the marts gate reconciles them with (staging, the person map).
MARTS_DDL = (
    """
create schema if not exists marts;
create schema if not exists staging;
create schema if not exists intermediate;
create table marts.dim_customer (customer_key text, is_marketing_opt_in boolean default false,
    is_marketing_opted_out boolean default false);
create table marts.rpt_prospects (customer_key text, home_district text);
create table marts.rpt_winback_list (customer_key text, home_district text);
create table marts.rpt_cross_sell_targets (customer_key text, home_district text);
create table staging.stg_pos__lines (load_id bigint, store_code text, sold_at timestamptz,
    quantity integer, net_amount numeric(12, 2), file_business_date date);
create table staging.stg_shop__orders (order_id bigint, ordered_at timestamptz,
    is_cancelled boolean);
create table staging.stg_shop__order_items (order_id bigint, line_no integer, quantity integer,
    unit_price numeric(12, 2), discount_amount numeric(12, 2), is_deleted_in_shop boolean);
create table intermediate.int_identity__person_map (identity_id text, identity_type text,
    customer_key text);
create table marts.rpt_privacy_requests (request_id text, request_type text,
    received_at timestamptz, identifiers_given text, match_status text,
    matched_customers bigint, erased_on date);
"""
    + FCT_SALES_DDL
)

# One row in every table a gate reads; a sale without a customer (walk-in) is fine.
GOOD_DATA = """
insert into raw.shop_customers (customer_id, updated_at, _load_id) values (1, now(), 1);
insert into raw.shop_products (sku, updated_at, _load_id) values ('SKU1', now(), 1);
insert into raw.shop_orders (order_id, updated_at, _load_id) values (1, now(), 1);
insert into raw.shop_order_items (order_id, line_no, _load_id) values (1, 1, 1);
insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku, quantity,
    unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file, _line)
    values ('R1', 'TST01', '2026-11-20 10:00', 'SALE', 1, 'SKU1', 1, 5.00,
    '2026-11-20', 'TST01', 1, 2, 'pos/2026-11-20/TST01_1.csv', 2),
    ('R2', 'TST01', '2026-11-20 11:00', 'SALE', 1, 'SKU1', 1, 3.00,
    '2026-11-20', 'TST01', 1, 2, 'pos/2026-11-20/TST01_1.csv', 3);
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
insert into marts.dim_customer values ('c1', true, false), ('c2', false, false);
insert into marts.rpt_prospects values ('c1', 'Sha Tin');
insert into staging.stg_pos__lines values (2, 'TST01', '2026-11-20 10:00+08', 1, 5.00, '2026-11-20'),
    (2, 'TST01', '2026-11-20 11:00+08', 1, 3.00, '2026-11-20');
insert into staging.stg_shop__orders values (1, '2026-11-20 12:00+08', false),
    (2, '2026-11-20 13:00+08', true);
insert into staging.stg_shop__order_items values (1, 1, 2, 6.00, 2.00, false),
    (2, 1, 1, 99.00, 0, false);
insert into intermediate.int_identity__person_map values ('shop:1', 'shop', 'c1'),
    ('loyalty:1234567890', 'loyalty', 'c2');
insert into marts.fct_sales values ('s1', 'online', 'c1', null, '2026-11-20', 10.00),
    ('s2', 'store', 'c2', 'TST01', '2026-11-20', 5.00),
    ('s3', 'store', null, 'TST01', '2026-11-20', 3.00);
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
    access.apply(fresh_db_url)  # as the nightly dbt build does after building the marts
    purge(fresh_db_url, BUSINESS_DATE)  # as the nightly retention task does before dbt
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


def test_a_missing_file_warns_while_it_may_come_then_fails_until_it_comes_or_is_resolved(
    warehouse, tmp_path, monkeypatch
):
    """A store that stops sending: warnings for CRM_GAP_FAIL_DAYS (3) nights, then every
    night fails until the file arrives or an operator resolves the gap."""
    execute(
        warehouse,
        "insert into ops.load_gaps (source, business_date, expected)"
        " values ('pos', '2026-11-20', 'MK01'), ('pos', '2026-11-18', 'MK01'),"
        " ('web', '2026-11-25', 'web/2026-11-24/16')",  # after the night: never blocks it
    )

    result = gate("raw", warehouse, tmp_path / "gx")  # Nov 20: both gaps within 3 days
    assert result.success
    (warning,) = result.warning_failures
    assert "ops.load_gaps" in warning and "observed 2" in warning

    with pytest.raises(GateFailed) as failed:  # Nov 21: the Nov 18 file is 3 days late
        gate("raw", warehouse, tmp_path / "gx", business_date=date(2026, 11, 21))
    (critical,) = failed.value.result.critical_failures
    assert "observed 1" in critical and "3 or more days late" in critical
    assert "crm ledger resolve-gap" in critical

    monkeypatch.setenv("WAREHOUSE_URL", warehouse)
    monkeypatch.setenv("SHOP_DB_URL", warehouse)
    assert cli.main(["ledger", "gaps"]) == 0
    assert cli.main(["ledger", "resolve-gap", "pos", "2026-11-18", "MK99", "--note", "x"]) == 2
    note = "store closed for renovation that day"
    assert cli.main(["ledger", "resolve-gap", "pos", "2026-11-18", "MK01", "--note", note]) == 0

    result = gate("raw", warehouse, tmp_path / "gx", business_date=date(2026, 11, 21))
    assert result.success and len(result.warning_failures) == 1  # Nov 20 is still missing
    with psycopg.connect(warehouse) as conn:
        assert conn.execute(
            "select resolution from ops.load_gaps where business_date = '2026-11-18'"
        ).fetchone() == (note,)


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
    access.apply(url)
    purge(url, BUSINESS_DATE)
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

    execute(warehouse, FCT_SALES_DDL + GOOD_DATA.split(";")[-2] + ";")  # the fct_sales rows
    access.apply(warehouse)  # a rebuilt table has no grants until the build applies them
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
    # No complaint yet is no failure (a small retailer can go weeks without one): a warning.
    assert missing == set(ONLINE_AND_DIGITAL) - {"raw.complaint_tickets"}
    warned = {w.split(":")[0] for w in failed.value.result.warning_failures}
    assert "raw.complaint_tickets" in warned

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
    execute(
        warehouse,
        "delete from marts.fct_sales where channel = 'store'; delete from staging.stg_pos__lines;"
        " delete from raw.pos_lines",
    )

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
    execute(warehouse, "delete from marts.fct_sales; delete from staging.stg_shop__order_items")
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, gx_dir)
    assert failed.value.result.critical_failures == [
        "marts.fct_sales: expect_table_row_count_to_be_between failed (observed 0)"
    ]


def test_every_verdict_lands_in_quality_results_for_trends(warehouse, tmp_path):
    gate("raw", warehouse, tmp_path / "gx")
    execute(warehouse, "delete from raw.pos_lines")
    with pytest.raises(GateFailed):
        run_gate(
            "raw",
            warehouse_url=warehouse,
            gx_dir=tmp_path / "gx",
            business_date=date(2026, 11, 21),
            dag_run_id="scheduled__2026-11-21",
        )

    with psycopg.connect(warehouse) as conn:
        rows = conn.execute(
            "select business_date, dag_run_id, table_name, severity, success, observed"
            " from ops.quality_results where gate = 'raw' and expectation"
            " = 'expect_table_row_count_to_be_between' and table_name = 'raw.pos_lines'"
            " order by result_id"
        ).fetchall()
        per_run = conn.execute(
            "select business_date, count(*), count(*) filter (where not success)"
            " from ops.quality_results group by 1 order by 1"
        ).fetchall()
    assert rows == [
        (BUSINESS_DATE, None, "raw.pos_lines", "critical", True, "2"),
        (date(2026, 11, 21), "scheduled__2026-11-21", "raw.pos_lines", "critical", False, "0"),
    ]
    # every expectation of both runs, passed or not; the second run failed exactly one
    (first_date, first_n, first_failed), (second_date, second_n, second_failed) = per_run
    assert first_n == second_n and first_n >= 10
    assert (first_failed, second_failed) == (0, 1)


def test_a_missing_table_is_recorded_as_a_failed_critical_result(warehouse, tmp_path):
    execute(warehouse, "drop table marts.fct_sales")
    with pytest.raises(GateFailed):
        gate("marts", warehouse, tmp_path / "gx")

    with psycopg.connect(warehouse) as conn:
        row = conn.execute(
            "select severity, success, detail from ops.quality_results"
            " where table_name = 'marts.fct_sales'"
        ).fetchone()
    assert row[:2] == ("critical", False)
    assert "does not exist" in row[2]


def _ledger_days(url: str, source: str, rows: dict[str, tuple[int, int]]) -> None:
    """One loaded file per date: {date: (rows_read, rows_quarantined)}."""
    with psycopg.connect(url, autocommit=True) as conn:
        for day, (read, quarantined) in rows.items():
            conn.execute(
                "insert into ops.load_ledger (source, object, checksum, business_date, rows_read,"
                " rows_loaded, rows_quarantined, status) values (%s, %s, %s, %s, %s, %s, %s, 'loaded')",
                (source, f"{source}/{day}.csv", day, day, read, read - quarantined, quarantined),
            )


def test_a_collapsed_volume_warns_and_a_high_quarantine_rate_stops_the_night(warehouse, tmp_path):
    usual = {f"2026-11-{d:02d}": (1000, 0) for d in range(6, 20)}  # 14 usual days
    _ledger_days(warehouse, "complaints", usual | {"2026-11-20": (40, 0)})  # a feed half stopped
    _ledger_days(warehouse, "loyalty", usual | {"2026-11-20": (1000, 3)})  # 0.3%: a warning

    result = gate("raw", warehouse, tmp_path / "gx")
    assert result.success
    volume, quarantine = (w for w in result.warning_failures if "ops.load_ledger" in w)
    assert "observed 1" in volume and "median" in volume
    assert "observed 1" in quarantine and "quarantined" in quarantine

    _ledger_days(warehouse, "web", {"2026-11-20": (200, 30)})  # 15% of the night's rows
    with pytest.raises(GateFailed) as failed:
        gate("raw", warehouse, tmp_path / "gx")
    (critical,) = failed.value.result.critical_failures
    assert "more than 5% of tonight's rows" in critical and "observed 1" in critical


@pytest.mark.parametrize(
    ("damage", "table", "what"),
    [
        # a join that dropped a store line: the day's lines and money differ from staging
        ("delete from marts.fct_sales where sales_line_key = 's3'", "marts.fct_sales", "net sales"),
        # a cancelled order's line counted as a sale
        (
            "insert into marts.fct_sales values ('s9', 'online', 'c1', null, '2026-11-20', 99.00)",
            "marts.fct_sales",
            "net sales",
        ),
        # staging lost one raw row of a POS file it keeps
        (
            "delete from staging.stg_pos__lines where sold_at = '2026-11-20 11:00+08';"
            " delete from marts.fct_sales where sales_line_key = 's3'",
            "staging.stg_pos__lines",
            "raw lines",
        ),
        # a store-day's export that staging dropped whole (it keeps nothing of TST02's day)
        (
            "insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku,"
            " quantity, unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file,"
            " _line) values ('R7', 'TST02', '2026-11-20 10:00', 'SALE', 1, 'SKU1', 1, 4.00,"
            " '2026-11-20', 'TST02', 1, 9, 'pos/2026-11-20/TST02_1.csv', 2)",
            "staging.stg_pos__lines",
            "current POS export",
        ),
        # staging kept a superseded export: TST01's day was re-sent as seq 2
        (
            "insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku,"
            " quantity, unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file,"
            " _line) values ('R1', 'TST01', '2026-11-20 10:00', 'SALE', 1, 'SKU1', 1, 5.00,"
            " '2026-11-20', 'TST01', 2, 9, 'pos/2026-11-20/TST01_2.csv', 2),"
            " ('R2', 'TST01', '2026-11-20 11:00', 'SALE', 1, 'SKU1', 1, 3.00,"
            " '2026-11-20', 'TST01', 2, 9, 'pos/2026-11-20/TST01_2.csv', 3)",
            "staging.stg_pos__lines",
            "current POS export",
        ),
        # one person holding four loyalty cards
        (
            "insert into intermediate.int_identity__person_map values"
            " ('loyalty:1', 'loyalty', 'c2'), ('loyalty:2', 'loyalty', 'c2'),"
            " ('loyalty:3', 'loyalty', 'c2')",
            "intermediate.int_identity__person_map",
            "more than 3",
        ),
    ],
    ids=[
        "line-dropped",
        "cancelled-counted",
        "staging-lost-a-row",
        "staging-dropped-a-file",
        "staging-kept-a-superseded-export",
        "over-merged-person",
    ],
)
def test_the_marts_gate_reconciles_and_stops_publication(warehouse, tmp_path, damage, table, what):
    execute(warehouse, damage)

    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")

    (critical,) = failed.value.result.critical_failures
    assert critical.startswith(f"{table}: unexpected_rows_expectation failed (observed ")
    assert what in critical


def test_a_re_exported_store_day_reconciles_with_its_latest_export_only(warehouse, tmp_path):
    """seq 2 of TST01's day supersedes seq 1 whole: staging keeps seq 2, and that passes."""
    execute(
        warehouse,
        "insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku,"
        " quantity, unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file,"
        " _line) values ('R1', 'TST01', '2026-11-20 10:00', 'SALE', 1, 'SKU1', 2, 5.00,"
        " '2026-11-20', 'TST01', 2, 9, 'pos/2026-11-20/TST01_2.csv', 2);"
        " delete from staging.stg_pos__lines;"
        " insert into staging.stg_pos__lines values"
        " (9, 'TST01', '2026-11-20 10:00+08', 2, 10.00, '2026-11-20');"
        " delete from marts.fct_sales where channel = 'store';"
        " insert into marts.fct_sales values ('s4', 'store', 'c2', 'TST01', '2026-11-20', 10.00)",
    )
    assert gate("marts", warehouse, tmp_path / "gx").success


def test_a_line_dated_after_the_night_is_not_reconciled_by_it(warehouse, tmp_path):
    """A backfill of an older night judges the sales up to its date only."""
    execute(
        warehouse,
        "insert into staging.stg_pos__lines values (8, 'TST01', '2026-11-21 10:00+08', 1, 7.00,"
        " '2026-11-21');"
        " insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku,"
        " quantity, unit_price, _business_date, _file_store_code, _file_seq, _load_id, _file,"
        " _line) values ('R3', 'TST01', '2026-11-21 10:00', 'SALE', 1, 'SKU1', 1, 7.00,"
        " '2026-11-21', 'TST01', 1, 8, 'pos/2026-11-21/TST01_1.csv', 2)",
    )
    assert gate("marts", warehouse, tmp_path / "gx").success
    with pytest.raises(GateFailed):
        gate("marts", warehouse, tmp_path / "gx", business_date=date(2026, 11, 21))


def test_a_file_found_later_than_the_late_window_warns_on_the_night_it_loads(warehouse, tmp_path):
    execute(
        warehouse,
        "with late as (insert into ops.load_ledger (source, object, checksum, business_date,"
        " status) values ('pos', 'pos/2026-09-01/TST01_1.csv', 'late', '2026-09-01', 'loaded')"
        " returning load_id)"
        " insert into ops.late_files (load_id, source, object, found_for)"
        " select load_id, 'pos', 'pos/2026-09-01/TST01_1.csv', '2026-11-20' from late",
    )
    result = gate("raw", warehouse, tmp_path / "gx")
    assert result.success
    (warning,) = result.warning_failures
    assert warning.startswith("ops.late_files: unexpected_rows_expectation failed (observed 1)")
    assert "more than 14 days late" in warning

    # the next night does not warn again
    next_night = gate("raw", warehouse, tmp_path / "gx", date(2026, 11, 21))
    assert not [w for w in next_night.warning_failures if w.startswith("ops.late_files")]


def test_a_privacy_request_that_matched_nobody_warns_while_it_can_be_answered(warehouse, tmp_path):
    execute(
        warehouse,
        "insert into marts.rpt_privacy_requests values"
        " ('PR-1', 'erasure', '2026-11-20 10:00+08', 'email', 'matched'),"
        " ('PR-2', 'opt_out_marketing', '2026-11-20 11:00+08', 'phone', 'no_usable_identifier'),"
        " ('PR-3', 'access', '2026-09-01 11:00+08', 'email', 'matches_nobody')",
    )
    result = gate("marts", warehouse, tmp_path / "gx")
    assert result.success
    (warning,) = [w for w in result.warning_failures if "rpt_privacy_requests" in w]
    # PR-3 is older than the 40 days to answer: in the register, no longer a warning
    assert warning.startswith(
        "marts.rpt_privacy_requests: unexpected_rows_expectation failed (observed 1)"
    )


def test_a_mart_rebuilt_without_its_grants_stops_the_marts_gate(warehouse, tmp_path):
    # a rebuild swaps in a new table (no grants) and nothing applied them again
    execute(
        warehouse,
        "create table marts.dim_customer__dbt_tmp (like marts.dim_customer);"
        " insert into marts.dim_customer__dbt_tmp select * from marts.dim_customer;"
        " drop table marts.dim_customer;"
        " alter table marts.dim_customer__dbt_tmp rename to dim_customer",
    )
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")
    assert [f for f in failed.value.result.critical_failures if "department role" in f] == [
        "ops.warehouse_columns: unexpected_rows_expectation failed (observed 15): Every department"
        " role reads exactly what contract/privacy.yml lets it read, column by column, with"
        " row-level security forced where it filters rows (include/access.py applies the"
        " grants after every dbt build)"
    ]
    access.apply(warehouse)
    assert gate("marts", warehouse, tmp_path / "gx").success


@pytest.mark.parametrize(
    ("leak", "pattern"),
    [
        (
            "update marts.rpt_prospects set home_district = 'Call me: alice.chan@example.com'",
            "email",
        ),
        (
            "update marts.rpt_prospects set home_district = 'phone +852 9123 4567 after 6'",
            "hk_phone",
        ),
        ("update marts.rpt_prospects set home_district = 'HKID A123456(7)'", "hkid"),
        (
            "update marts.fct_sales set store_code = '4111111111111111' where sales_line_key = 's2'",
            "card_number",
        ),
    ],
    ids=["email", "hk-phone", "hkid", "card-number"],
)
def test_personal_data_in_a_mart_stops_the_marts_gate_without_being_copied(
    warehouse, tmp_path, leak, pattern
):
    execute(warehouse, leak)
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")
    (content,) = [f for f in failed.value.result.critical_failures if "looks like personal" in f]
    assert "observed 1" in content
    with psycopg.connect(warehouse) as conn:
        (detail,) = conn.execute(
            "select detail from ops.quality_results where suite = 'privacy_content' and not success"
        ).fetchone()
        found = conn.execute(
            "select * from ops.personal_data_findings(array['marts', 'reporting'], %s, %s)",
            (list(policy().content_patterns), list(policy().content_patterns.values())),
        ).fetchall()
    assert [row[2] for row in found] == [pattern]
    for value in ("alice.chan", "9123 4567", "A123456", "4111111111111111"):
        assert value not in detail


def test_keys_receipts_dates_and_decimals_are_not_taken_for_personal_data(warehouse, tmp_path):
    execute(
        warehouse,
        "insert into marts.rpt_prospects values"
        " ('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', 'TST01-20261120-000123'),"
        " ('c3', '2026-11-20 10:00:00+08'), ('c4', 'spend 12345678.50, 0.91234567'), ('c5', 'CS-0001234')",
    )
    execute(warehouse, "update marts.dim_customer set is_marketing_opt_in = true")
    execute(
        warehouse,
        "insert into marts.dim_customer select k, true, false from"
        " unnest(array['9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',"
        " 'c3', 'c4', 'c5']) as k",
    )
    assert gate("marts", warehouse, tmp_path / "gx").success


@pytest.mark.parametrize(
    ("who", "change"),
    [
        ("without consent", "update marts.dim_customer set is_marketing_opt_in = false"),
        ("opted out", "update marts.dim_customer set is_marketing_opted_out = true"),
        ("unknown", "delete from marts.dim_customer where customer_key = 'c1'"),
    ],
)
def test_a_marketing_list_with_a_customer_who_may_not_be_contacted_stops_the_gate(
    warehouse, tmp_path, who, change
):
    execute(warehouse, change)
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx")
    assert [f for f in failed.value.result.critical_failures if "direct-marketing" in f] == [
        "marts.rpt_prospects: unexpected_rows_expectation failed (observed 1): A direct-marketing"
        " list holds only customers who consented and did not opt out"
        " (marts.dim_customer.is_marketing_opt_in; PDPO Part 6A)"
    ]


def test_a_night_whose_retention_purge_did_not_run_stops_the_marts_gate(warehouse, tmp_path):
    night = date(2026, 11, 21)
    # a dry run purges nothing: every table of the policy's retention is missing, the
    # snapshots dbt has not built here too
    purge(warehouse, night, dry_run=True)
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx", business_date=night)
    assert [f for f in failed.value.result.critical_failures if "retention" in f] == [
        f"ops.retention_actions: unexpected_rows_expectation failed (observed {len(tables())}):"
        " Tonight's"
        " retention purge ran on every table with a retention period in contract/privacy.yml"
        " (ops.retention_actions; crm privacy purge)"
    ]
    purge(warehouse, night)
    assert gate("marts", warehouse, tmp_path / "gx", business_date=night).success


def test_a_row_past_its_retention_after_the_purge_stops_the_marts_gate(warehouse, tmp_path):
    night = date(2026, 11, 21)
    purge(warehouse, night)
    # a late load after the purge: a request of 2019 (deleted after 7 years) and a
    # quarantined row of 100 days ago whose raw content is still there (emptied after 90)
    execute(
        warehouse,
        "insert into raw.privacy_requests (request_id, received_at, request_type, email,"
        " _load_id, _file, _line) values ('P0', '2019-01-02 10:00+08', 'erasure',"
        " 'someone@example.com', 8, 'privacy/old.csv', 2);"
        "insert into quarantine.rejected_rows (load_id, source, object, line_no, reason, raw_content,"
        " quarantined_at) values (9, 'pos', 'pos/x.csv', 2, 'bad date', 'R9,TST01,...',"
        " '2026-08-13 10:00+08')",
    )
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx", business_date=night)
    assert [f for f in failed.value.result.critical_failures if "past it" in f] == [
        "ops.retention_actions: unexpected_rows_expectation failed (observed 2): No row of a"
        " table with a retention period in contract/privacy.yml holds personal data past it"
        " at the end of the business date (ops.rows_past_retention; crm privacy purge"
        " --dry-run lists them)"
    ]
    # the next purge deletes the request and empties the quarantined content
    purge(warehouse, night)
    assert gate("marts", warehouse, tmp_path / "gx", business_date=night).success
    with psycopg.connect(warehouse) as conn:
        assert conn.execute(
            "select count(*) from raw.privacy_requests where request_id = 'P0'"
        ).fetchone() == (0,)
        assert conn.execute(
            "select raw_content from quarantine.rejected_rows where object = 'pos/x.csv'"
        ).fetchone() == (None,)


def test_an_erased_person_left_anywhere_stops_the_marts_gate(warehouse, tmp_path):
    from include.erasure import execute as erase

    night = date(2026, 11, 21)
    purge(warehouse, night)
    # card 1234567890 (customer c2) was erased, but nothing was carried out yet: their
    # member row, their identity, their dimension row and their sales' key are all there
    execute(
        warehouse,
        "insert into pii.erased_identities (identity_id, identity_type, source_id,"
        " person_anchor, customer_key, request_id, business_date) values"
        " ('loyalty:1234567890', 'loyalty', '1234567890', 'loyalty:1234567890', 'c2', 'P9',"
        " '2026-11-21')",
    )
    with pytest.raises(GateFailed) as failed:
        gate("marts", warehouse, tmp_path / "gx", business_date=night)
    assert [f for f in failed.value.result.critical_failures if "erased" in f] == [
        "pii.erased_identities: unexpected_rows_expectation failed (observed 4): Nothing of"
        " a person whose erasure was carried out is left in raw or downstream"
        " (pii.erased_identities; contract/privacy.yml erasure)"
    ]
    erase(warehouse, night, run_id="erase-c2")
    assert gate("marts", warehouse, tmp_path / "gx", business_date=night).success
    with psycopg.connect(warehouse) as conn:
        # the sale stays, without its customer
        assert conn.execute(
            "select customer_key, net_amount from marts.fct_sales where sales_line_key = 's2'"
        ).fetchone() == (None, Decimal("5.00"))


def test_the_evidence_report_shows_the_night_s_policy_purge_and_checks(warehouse, tmp_path):
    from include.privacy_report import write

    night = date(2026, 11, 21)
    purge(warehouse, night)
    execute(
        warehouse,
        "insert into marts.rpt_privacy_requests values ('P7', 'erasure', '2026-11-20 10:00+08',"
        " 'email', 'erased', 1, '2026-11-21')",
    )
    assert gate("marts", warehouse, tmp_path / "gx", business_date=night).success
    page = write(warehouse, night, tmp_path / "evidence").read_text()
    assert "Privacy verdict of the marts gate: passed" in page
    # the data map is the whole policy; each retention table says the purge ran
    for name in policy().datasets:
        assert f"<td>{name}</td>" in page
    for name in tables():
        assert f'<tr><td>{name}</td><td><span class="pass">passed</span>' in page
    # the files kept outside the warehouse are mapped; not purged here, and it says so
    for name in policy().files:
        assert f'<tr><td>files:{name}</td><td><span class="fail">FAILED</span>' in page
    assert "<td>P7</td><td>erasure</td>" in page and "<td>2026-11-21</td>" in page

    # personal data in a mart: the gate stops, the night's evidence says which check
    execute(warehouse, "update marts.rpt_prospects set home_district = 'mail a.b@example.com'")
    with pytest.raises(GateFailed):
        gate("marts", warehouse, tmp_path / "gx", business_date=night)
    page = write(warehouse, night, tmp_path / "evidence").read_text()
    assert "Privacy verdict of the marts gate: FAILED: privacy_content" in page
    assert "a.b@example.com" not in page  # counts only
