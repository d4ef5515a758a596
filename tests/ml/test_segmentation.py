"""RFM segmentation: scores, names, and idempotent publication."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg
import pytest

from ml.segmentation import name_segment, publish_segments, score

AS_OF = date(2026, 11, 20)


def test_recent_frequent_big_spenders_are_champions_and_lapsed_ones_are_not():
    features = pd.DataFrame(
        {
            "customer_key": [f"c{i}" for i in range(10)],
            "recency_days": [1, 2, 3, 5, 8, 40, 90, 120, 200, 300],
            "frequency": [20, 15, 12, 8, 6, 5, 4, 3, 2, 1],
            "monetary": [9000, 8000, 7000, 4000, 3000, 2500, 2000, 800, 300, 100],
        }
    )
    scored = score(features).set_index("customer_key")
    assert scored.loc["c0", ["r_score", "f_score", "m_score"]].tolist() == [5, 5, 5]
    assert scored.loc["c0", "segment"] == "Champions"
    assert scored.loc["c9", "segment"] == "Hibernating"
    assert scored[["r_score", "f_score", "m_score"]].isin(range(1, 6)).all().all()
    assert name_segment(1, 5, 5) == "Cannot lose them"
    assert name_segment(5, 1, 1) == "New"


@pytest.fixture
def sales(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            "create schema marts; create table marts.fct_sales (customer_key text, channel text,"
            " order_ref text, business_date date, net_amount numeric, is_void boolean)"
        )
        rows = [
            (
                f"c{i % 30}",
                "store" if i % 2 else "online",
                f"o{i}",
                date(2026, 11, 1 + i % 20),
                10 * i,
                False,
            )
            for i in range(200)
        ]
        rows.append(
            ("c0", "store", "late", date(2026, 11, 25), 99999, False)
        )  # after as-of: ignored
        rows.append((None, "store", "walkin", date(2026, 11, 2), 50, False))  # walk-in: no customer
        with conn.cursor() as cur:
            cur.executemany("insert into marts.fct_sales values (%s, %s, %s, %s, %s, %s)", rows)
    return fresh_db_url


def test_publishing_twice_gives_the_same_table(sales):
    sizes = publish_segments(warehouse_url=sales, as_of=AS_OF)
    assert sum(sizes.values()) == 30
    with psycopg.connect(sales) as conn:
        first = conn.execute(
            "select * from reporting.customer_segments order by customer_key"
        ).fetchall()
        assert (
            conn.execute("select max(monetary) from reporting.customer_segments").fetchone()[0]
            < 99999
        )
    publish_segments(warehouse_url=sales, as_of=AS_OF)
    with psycopg.connect(sales) as conn:
        assert (
            conn.execute(
                "select * from reporting.customer_segments order by customer_key"
            ).fetchall()
            == first
        )


def test_no_sales_refuses_to_publish_an_empty_table(sales):
    with pytest.raises(RuntimeError, match="refusing to publish"):
        publish_segments(warehouse_url=sales, as_of=date(2020, 1, 1))
