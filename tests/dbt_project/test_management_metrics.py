"""The real-time "today so far" view and the nightly KPIs give the same figures from the same data.

rpt_online_sales_today reads the raw shop tables directly (it must see rows
the nightly staging views do not know yet), so it repeats the cleaning rules of
staging and the line rules of fct_sales. Both paths share the metric macros
(macros/metrics_management.sql). This test builds a small raw sample whose
online orders are dated *today* in Hong Kong, runs the nightly build for
today, and checks that the view and rpt_daily_kpis' online columns agree, to
the cent, on a sample that exercises every rule (versions, cancellation,
discounts, a free line, an order just after HK midnight, one the day before).
Then a later extract lands and the view, unlike the nightly table, shows it at
once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from test_dbt_build import apply_sql, run_dbt
from include.warehouse import apply_schema

HK = ZoneInfo("Asia/Hong_Kong")
TODAY = date(2026, 11, 20)
CLOCK = datetime(2026, 11, 20, 23, 30, tzinfo=HK)  # late on TODAY: every sample order is in
METRICS = [
    "revenue",
    "orders",
    "walk_in_orders",
    "customers",
    "repeat_customers",
    "average_order_value",
    "repeat_rate",
]


def hk(day: date, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=HK)


def load_sample(conn: psycopg.Connection, today: date) -> None:
    """Raw rows for today (and one order of yesterday), with their ledger entries."""
    yesterday = today - timedelta(days=1)
    conn.execute(
        """
        insert into ops.load_ledger (load_id, source, object, business_date, status)
        values (1, 'shop', 'orders+order_items', %(d)s, 'loaded'),
               (2, 'pos', 'pos/today/TST01_1.csv', %(d)s, 'loaded'),
               (3, 'stores', 'reference/stores.csv', %(d)s, 'loaded')
        """,
        {"d": today},
    )
    conn.execute(
        """
        insert into raw.shop_customers (customer_id, email, full_name, created_at, updated_at, _load_id)
        values (2001, 'amy@example.hk', 'Amy', %(t)s, %(t)s, 1),
               (2002, 'ben@example.hk', 'Ben', %(t)s, %(t)s, 1),
               (2003, 'cat@example.hk', 'Cat', %(t)s, %(t)s, 1)
        """,
        {"t": hk(yesterday, "09:00")},
    )
    conn.execute(
        """
        insert into raw.shop_products (sku, name, category, unit_price, active, updated_at, _load_id)
        values ('SKU-1', 'Shirt', 'Apparel', 100, true, '2026-01-01', 1),
               ('SKU-2', 'Mug', 'Home', 50, true, '2026-01-01', 1)
        """
    )
    orders = [
        # order_id, customer_id, order_ts, status, updated_at
        (7001, 2001, hk(today, "10:00"), "placed", hk(today, "10:00")),
        (7001, 2001, hk(today, "10:00"), "PAID", hk(today, "10:05")),  # later version wins
        (7002, 2001, hk(today, "15:00"), "placed", hk(today, "15:00")),  # Amy's second order
        (7003, 2002, hk(today, "12:00"), "placed", hk(today, "12:00")),
        (7003, 2002, hk(today, "12:00"), "cancelled", hk(today, "12:30")),  # not a sale
        (7004, 2002, hk(today, "18:00"), "paid", hk(today, "18:00")),
        (7005, 2003, hk(yesterday, "23:50"), "paid", hk(yesterday, "23:50")),  # yesterday
        # 00:10 in Hong Kong is still yesterday in UTC: it belongs to today
        (7006, 2003, hk(today, "00:10"), "paid", hk(today, "00:10")),
        (7007, 2002, hk(today, "19:00"), "paid", hk(today, "19:00")),  # a free item only: no order
    ]
    conn.cursor().executemany(
        """
        insert into raw.shop_orders
            (order_id, customer_id, order_ts, status, payment_method, currency, updated_at, _load_id)
        values (%s, %s, %s, %s, 'visa', 'HKD', %s, 1)
        """,
        orders,
    )
    conn.execute(
        """
        insert into raw.shop_order_items (order_id, line_no, sku, quantity, unit_price, line_discount, _load_id)
        values (7001, 1, 'SKU-1', 2, 100, 10, 1),
               (7001, 2, ' SKU-2 ', 1, 50, null, 1),
               (7002, 1, 'SKU-1', 1, 80, 0, 1),
               (7003, 1, 'SKU-1', 5, 100, 0, 1),
               (7004, 1, 'SKU-1', 1, 120, 20, 1),
               (7005, 1, 'SKU-2', 1, 50, 0, 1),
               (7006, 1, 'SKU-2', 1, 60, null, 1),
               (7007, 1, 'SKU-2', 1, 0, 0, 1)
        """
    )
    # a walk-in at a till today: in the nightly total, never in the online view
    conn.execute(
        """
        insert into raw.pos_lines
            (receipt_no, store_code, txn_ts, txn_type, line_no, sku, quantity, unit_price, discount,
             payment_method, loyalty_card_no, _business_date, _file_store_code, _file_seq,
             _load_id, _file, _line)
        values ('TST01-1', 'TST01', %(ts)s, 'SALE', 1, 'SKU-1', 1, 100, 0, 'cash', '', %(d)s,
                'TST01', 1, 2, 'pos/today/TST01_1.csv', 1)
        """,
        {"ts": hk(today, "11:00").replace(tzinfo=None), "d": today},
    )
    conn.execute(
        """
        insert into raw.stores (store_code, store_name, district, region, opened_on, _load_id, _file, _line)
        values ('TST01', 'Tsim Sha Tsui', 'Yau Tsim Mong', 'Kowloon', '2020-01-01', 3, 'reference/stores.csv', 1)
        """
    )


def land_later_extract(conn: psycopg.Connection, today: date) -> None:
    """An extract after the nightly build: Ben cancels, Cat orders again, a brand-new account orders."""
    conn.execute(
        "insert into ops.load_ledger (load_id, source, object, business_date, status) "
        "values (4, 'shop', 'orders+order_items', %(d)s, 'loaded')",
        {"d": today},
    )
    conn.execute(
        """
        insert into raw.shop_orders
            (order_id, customer_id, order_ts, status, payment_method, currency, updated_at, _load_id)
        values (7004, 2002, %(t18)s, 'cancelled', 'visa', 'HKD', %(t20)s, 4),
               (7008, 2003, %(t20)s, 'placed', 'visa', 'HKD', %(t20)s, 4),
               (7009, 2004, %(t21)s, 'placed', 'visa', 'HKD', %(t21)s, 4)
        """,
        {"t18": hk(today, "18:00"), "t20": hk(today, "20:00"), "t21": hk(today, "21:00")},
    )
    conn.execute(
        """
        insert into raw.shop_order_items (order_id, line_no, sku, quantity, unit_price, line_discount, _load_id)
        values (7008, 1, 'SKU-2', 1, 40, 0, 4),
               (7009, 1, 'SKU-2', 1, 70, 0, 4)
        """
    )


def metrics_of(
    conn: psycopg.Connection, sql: str, params: dict, clock: datetime | None = None
) -> dict:
    """One row of ``sql``, asked at ``clock`` (default CLOCK; the view's clock is the
    session's crm.now)."""
    conn.execute("select set_config('crm.now', %s, false)", ((clock or CLOCK).isoformat(),))
    cur = conn.execute(sql, params)
    row = cur.fetchone()
    assert row is not None, sql
    return dict(zip([c.name for c in cur.description], row, strict=True))


TODAY_SQL = (
    "select business_date, {cols}, as_of, queried_at from marts.rpt_online_sales_today".format(
        cols=", ".join(METRICS)
    )
)
NIGHTLY_SQL = "select {cols} from marts.rpt_daily_kpis where business_date = %(d)s".format(
    cols=", ".join(f"online_{m} as {m}" for m in METRICS) + ", total_revenue, as_of_date"
)


def test_today_view_agrees_with_nightly_kpis_and_is_real_time(
    fresh_db_url: str, tmp_path: Path
) -> None:
    today = TODAY
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        load_sample(conn, today)

    run_dbt(
        [
            "build",
            "--select",
            "+rpt_daily_kpis",
            "+rpt_online_sales_today",
            # models and seeds only: the figures are the point here; the dbt
            # tests of these models run in every build
            "--resource-type",
            "model",
            "--resource-type",
            "seed",
            "--vars",
            f'{{"business_date": "{today.isoformat()}"}}',
        ],
        fresh_db_url,
        tmp_path,
    )

    with psycopg.connect(fresh_db_url) as conn:
        live = metrics_of(conn, TODAY_SQL, {})
        nightly = metrics_of(conn, NIGHTLY_SQL, {"d": today})
        assert live["business_date"] == today
        assert live["queried_at"] == CLOCK

        # the same data gives the same figures through both paths
        assert {m: live[m] for m in METRICS} == {m: nightly[m] for m in METRICS}
        # ... and they are the right figures: 7001 = 190 + 50, 7002 = 80, 7004 = 100,
        # 7006 = 60 (00:10 in HK); 7003 cancelled, 7005 yesterday, 7007 free
        assert live["revenue"] == Decimal("480.00")
        assert live["orders"] == 4
        assert live["walk_in_orders"] == 0
        assert live["customers"] == 3
        assert live["repeat_customers"] == 1  # Amy
        assert live["average_order_value"] == Decimal("120.00")
        assert live["repeat_rate"] == Decimal("0.3333")
        # the nightly total has the till sale; the online view never does
        assert nightly["total_revenue"] == Decimal("580.00")
        assert nightly["as_of_date"] == today
        # as_of: the newest extracted order version
        assert live["as_of"] == hk(today, "19:00")

    # a later extract lands: the view shows it without any dbt run
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        land_later_extract(conn, today)
    with psycopg.connect(fresh_db_url) as conn:
        live = metrics_of(conn, TODAY_SQL, {})
        nightly_again = metrics_of(conn, NIGHTLY_SQL, {"d": today})
        # Ben's only order is cancelled; Cat orders again; a new account (not yet in
        # the nightly person map) still counts as one customer
        assert live["revenue"] == Decimal("480.00") - 100 + 40 + 70
        assert live["orders"] == 5
        assert live["customers"] == 3
        assert live["repeat_customers"] == 2  # Amy and Cat
        assert live["as_of"] == hk(today, "21:00")
        # the nightly table is what the night built
        assert nightly_again == nightly
        # at the next Hong Kong midnight "today" starts again from nothing
        tomorrow = metrics_of(conn, TODAY_SQL, {}, clock=hk(today + timedelta(days=1), "00:05"))
        assert tomorrow["business_date"] == today + timedelta(days=1)
        assert not tomorrow["orders"] and not tomorrow["revenue"]
        assert tomorrow["as_of"] == hk(today, "21:00")
