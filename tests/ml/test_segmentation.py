"""Publication of the one RFM segmentation (dbt's fct_customer_rfm) to reporting."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from include.warehouse import apply_schema
from ml.segmentation import publish_segments

AS_OF = date(2026, 11, 20)


def _mart(url: str, as_of: date, rows: list[tuple]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "create schema if not exists marts;"
            "drop table if exists marts.fct_customer_rfm;"
            "create table marts.fct_customer_rfm (customer_key text, recency_days int,"
            " frequency int, monetary numeric, r_score int, f_score int, m_score int,"
            " segment_name text, rules_version text, as_of_date date)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.fct_customer_rfm values (%s, %s, %s, %s, %s, %s, %s, %s, 'v1', %s)",
                [(*row, as_of) for row in rows],
            )


ROWS = [
    ("c1", 3, 12, 8000, 5, 5, 5, "Champions"),
    ("c2", 200, 1, 80, 1, 1, 1, "Hibernating"),
    ("c3", 70, 6, 4000, 2, 4, 4, "At risk"),
]


@pytest.fixture
def rfm(fresh_db_url) -> str:
    apply_schema(fresh_db_url)  # reporting.customer_segments is a migration's
    _mart(fresh_db_url, AS_OF, ROWS)
    return fresh_db_url


def _published(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select as_of_date, customer_key, recency_days, frequency, monetary::float8,"
            " r_score, f_score, m_score, segment, model_version"
            " from reporting.customer_segments order by as_of_date, customer_key"
        ).fetchall()


def test_publishes_the_marts_segments_as_they_are(rfm):
    sizes = publish_segments(warehouse_url=rfm, as_of=AS_OF)
    assert sizes == {"At risk": 1, "Champions": 1, "Hibernating": 1}
    assert _published(rfm) == [(AS_OF, *row[:4], *row[4:], "rfm-v1") for row in ROWS]


def test_publishing_twice_gives_the_same_table_and_keeps_other_days(rfm):
    publish_segments(warehouse_url=rfm, as_of=AS_OF)
    next_day = date(2026, 11, 21)
    _mart(rfm, next_day, ROWS[:2])
    publish_segments(warehouse_url=rfm, as_of=next_day)
    first = _published(rfm)
    publish_segments(warehouse_url=rfm, as_of=next_day)
    assert _published(rfm) == first
    assert sorted({row[0] for row in first}) == [AS_OF, next_day]
    assert sum(row[0] == next_day for row in first) == 2


@pytest.mark.parametrize("built", [date(2026, 11, 19), None], ids=["other day", "empty"])
def test_refuses_segments_of_another_day_and_keeps_the_publication(rfm, built):
    publish_segments(warehouse_url=rfm, as_of=AS_OF)
    before = _published(rfm)
    _mart(rfm, built or AS_OF, ROWS if built else [])
    with pytest.raises(RuntimeError, match=f"not business date {AS_OF}: refusing to publish"):
        publish_segments(warehouse_url=rfm, as_of=AS_OF)
    assert _published(rfm) == before
