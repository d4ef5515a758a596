"""Point-in-time customer features, BTYD summary and outcomes (ml/features.py).

A small hand-made history in minimal copies of the tables the module reads.
AS_OF = 2026-06-30: the 90-day window is (2026-04-01, 2026-06-30], the
365-day window (2025-06-30, 2026-06-30].
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import psycopg
import pytest

from ml.features import (
    FEATURE_COLUMNS,
    NEVER_DAYS,
    as_of_dates,
    btyd_summary,
    customer_features,
    future_outcomes,
)

AS_OF = date(2026, 6, 30)
D = date.fromisoformat


# (customer_key, channel, order_ref, business_date, is_purchase, has_return, net_amount)
ORDERS = [
    ("alice", "store", "a1", D("2025-06-01"), True, False, 100),  # before the 365-day window
    ("alice", "online", "a2", D("2026-01-10"), True, False, 200),
    ("alice", "store", "a3", D("2026-05-01"), True, False, 300),
    ("alice", "online", "a4", D("2026-06-20"), True, False, 50),
    ("alice", "store", "a5", D("2026-06-20"), True, False, 30),  # same day: 2 orders, 1 occasion
    ("alice", "store", "a6", D("2026-06-28"), False, True, -40),  # return-only receipt
    ("alice", "store", "a7", D("2026-07-01"), True, False, 60),  # after AS_OF from here
    ("alice", "online", "a8", D("2026-07-01"), True, False, 40),
    ("alice", "store", "a9", D("2026-07-20"), False, True, -10),
    ("alice", "online", "a10", D("2026-08-15"), True, False, 500),
    ("bob", "online", "b1", D("2026-06-30"), True, False, 75),  # on AS_OF
    ("dave", "store", "d1", D("2025-06-30"), True, False, 10),  # AS_OF - 365: outside
    ("dave", "store", "d2", D("2025-07-01"), True, False, 20),  # AS_OF - 364: inside
    ("dave", "store", "d3", D("2026-04-01"), True, False, 30),  # AS_OF - 90: outside 90 d
    ("dave", "store", "d4", D("2026-04-02"), True, True, 40),  # a purchase with a return line
    ("carol", "store", "c1", D("2026-03-01"), False, True, -25),  # only ever returned: no buyer
    ("erin", "online", "e1", D("2026-07-05"), True, False, 80),  # first buys after AS_OF
    ("zed", "store", "z1", D("2026-09-30"), True, False, 1),  # the warehouse's last day
]
# (customer_key, business_date, category, is_return, is_void, is_unknown_sku)
SALES = [
    ("alice", D("2025-06-01"), "beauty", False, False, False),  # outside 365 d
    ("alice", D("2026-01-10"), "fashion", False, False, False),
    ("alice", D("2026-05-01"), "beauty", False, False, False),
    ("alice", D("2026-05-01"), "home", False, False, False),
    ("alice", D("2026-06-20"), "home", False, False, False),
    ("alice", D("2026-06-20"), "sports", False, True, False),  # VOID
    ("alice", D("2026-06-20"), "unknown", False, False, True),  # unknown sku
    ("alice", D("2026-06-28"), "toys", True, False, False),  # RETURN
    ("alice", D("2026-07-01"), "electronics", False, False, False),  # after AS_OF
    ("bob", D("2026-06-30"), "unknown", False, False, True),
    ("dave", D("2025-06-30"), "toys", False, False, False),  # AS_OF - 365: outside
    ("dave", D("2025-07-01"), "garden", False, False, False),
    ("dave", D("2026-04-01"), "books", False, False, False),
    ("dave", D("2026-04-02"), "beauty", False, False, False),
    (None, D("2026-06-01"), "music", False, False, False),  # walk-in
]
COMPLAINTS = [
    ("alice", D("2025-01-05")),
    ("alice", D("2026-06-25")),
    ("alice", D("2026-07-02")),  # after AS_OF
    ("dave", D("2025-06-30")),  # AS_OF - 365: not in the window, but the latest one
    (None, D("2026-06-01")),
]
SESSIONS = [
    ("alice", D("2026-03-01"), True),  # outside 90 d
    ("alice", D("2026-04-15"), True),
    ("alice", D("2026-06-29"), True),
    ("alice", D("2026-06-30"), False),  # anonymous, attributed through today's identity map
    ("alice", D("2026-07-01"), True),  # after AS_OF
    ("bob", D("2026-06-30"), False),
    ("dave", D("2026-04-01"), True),  # AS_OF - 90: outside the window
    (None, D("2026-06-30"), False),
]
TIERS = [
    ("alice", D("2025-06-01"), "classic"),
    ("alice", D("2026-03-01"), "gold"),
    ("alice", D("2026-07-05"), "platinum"),  # after AS_OF
    ("dave", D("2026-06-30"), "silver"),  # holds from the end of AS_OF
]

TABLES = {
    "intermediate.int_customers__orders": ORDERS,
    "marts.fct_sales": SALES,
    "marts.fct_complaints": COMPLAINTS,
    "marts.fct_web_sessions": SESSIONS,
    "intermediate.int_customers__loyalty_tier_history": TIERS,
}


def insert(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    marks = ", ".join(["%s"] * len(rows[0]))
    with conn.cursor() as cur:
        cur.executemany(f"insert into {table} values ({marks})", rows)


@pytest.fixture
def conn(feature_db):
    with psycopg.connect(feature_db, autocommit=True) as conn:
        for table, rows in TABLES.items():
            insert(conn, table, rows)
        yield conn


def test_hand_checked_features(conn):
    features = customer_features(conn, AS_OF)

    assert tuple(features.columns) == FEATURE_COLUMNS
    assert features.index.name == "customer_key"
    assert list(features.index) == ["alice", "bob", "dave"]  # not carol, erin, zed
    assert all(str(t) in {"int64", "float64"} for t in features.dtypes)
    assert not features.isna().any().any()

    alice = features.loc["alice"]
    assert alice["recency_days"] == 10  # 06-20, not the return of 06-28
    assert alice["frequency"] == 5
    assert alice["frequency_90d"] == 3
    assert alice["frequency_365d"] == 4
    assert alice["monetary_90d"] == 300 + 50 + 30 - 40
    assert alice["monetary_365d"] == 200 + 300 + 50 + 30 - 40
    assert alice["monetary_lifetime"] == 640
    assert alice["avg_order_value"] == 640 / 5
    assert alice["tenure_days"] == 394
    assert alice["online_share"] == pytest.approx(2 / 5)
    assert alice["category_breadth_365d"] == 3  # fashion, beauty, home
    assert alice["returns_365d"] == 1
    assert alice["complaints_365d"] == 1
    assert alice["days_since_last_complaint"] == 5
    assert alice["web_sessions_90d"] == 2  # logged-in only
    assert alice["days_since_last_web_session"] == 1
    assert alice["loyalty_tier_rank"] == 3  # gold; platinum only from 07-05

    bob = features.loc["bob"]
    assert (bob["recency_days"], bob["tenure_days"], bob["frequency"]) == (0, 0, 1)
    assert bob["online_share"] == 1.0
    assert bob["category_breadth_365d"] == 0  # only an unknown sku
    assert bob["days_since_last_complaint"] == NEVER_DAYS
    assert bob["web_sessions_90d"] == 0
    assert bob["days_since_last_web_session"] == NEVER_DAYS  # his one session is anonymous
    assert bob["loyalty_tier_rank"] == 0

    dave = features.loc["dave"]
    assert dave["recency_days"] == 89
    assert dave["tenure_days"] == 365
    assert (dave["frequency"], dave["frequency_90d"], dave["frequency_365d"]) == (4, 1, 3)
    assert (dave["monetary_90d"], dave["monetary_365d"]) == (40, 90)
    assert dave["online_share"] == 0.0
    assert dave["category_breadth_365d"] == 3  # garden, books, beauty; not toys (day 365)
    assert dave["returns_365d"] == 1
    assert dave["complaints_365d"] == 0
    assert dave["days_since_last_complaint"] == 365
    assert (dave["web_sessions_90d"], dave["days_since_last_web_session"]) == (0, 90)
    assert dave["loyalty_tier_rank"] == 2


def test_hand_checked_btyd_summary(conn):
    days = btyd_summary(conn, AS_OF, unit_days=1)
    assert list(days.index) == ["alice", "bob", "dave"]
    assert list(days.columns) == ["x", "t_x", "T", "monetary_value", "first_purchase"]

    alice = days.loc["alice"]
    assert (alice["x"], alice["t_x"], alice["T"]) == (3, 384.0, 394.0)
    assert alice["monetary_value"] == pytest.approx((200 + 300 + 80) / 3)  # repeat days only
    assert alice["first_purchase"] == pd.Timestamp("2025-06-01")
    bob = days.loc["bob"]
    assert (bob["x"], bob["t_x"], bob["T"], bob["monetary_value"]) == (0, 0.0, 0.0, 0.0)
    dave = days.loc["dave"]
    assert (dave["x"], dave["t_x"], dave["T"]) == (3, 276.0, 365.0)
    assert dave["monetary_value"] == pytest.approx(30.0)

    weeks = btyd_summary(conn, AS_OF)  # unit_days=7
    assert weeks.loc["alice", "t_x"] == pytest.approx(384 / 7)
    assert weeks.loc["alice", "T"] == pytest.approx(394 / 7)
    assert (weeks["x"] == days["x"]).all()


def test_rows_dated_after_as_of_change_nothing(conn):
    features = customer_features(conn, AS_OF)
    summary = btyd_summary(conn, AS_OF)
    later = {
        "intermediate.int_customers__orders": [
            ("alice", "store", "late1", D("2026-07-02"), True, False, 999),
            ("dave", "store", "late2", D("2026-07-01"), False, True, -30),
            ("fred", "online", "late3", D("2026-07-03"), True, False, 120),
        ],
        "marts.fct_sales": [
            ("alice", D("2026-07-02"), "pets", False, False, False),
            ("fred", D("2026-07-03"), "pets", False, False, False),
        ],
        "marts.fct_complaints": [
            ("bob", D("2026-07-01")),
            ("fred", D("2026-07-04")),
        ],
        "marts.fct_web_sessions": [
            ("bob", D("2026-07-01"), True),
            ("fred", D("2026-07-04"), True),
        ],
        "intermediate.int_customers__loyalty_tier_history": [
            ("bob", D("2026-07-01"), "gold"),
            ("fred", D("2026-07-03"), "classic"),
        ],
    }
    for table, rows in later.items():
        insert(conn, table, rows)

    again = customer_features(conn, AS_OF)
    pd.testing.assert_frame_equal(again, features)
    pd.testing.assert_frame_equal(btyd_summary(conn, AS_OF), summary)
    assert "fred" not in again.index
    # and the later rows are there: a later as-of sees them
    assert customer_features(conn, D("2026-07-04")).loc["fred", "complaints_365d"] == 1


def test_a_return_only_receipt_lowers_monetary_but_is_no_purchase(conn):
    before = customer_features(conn, AS_OF).loc["dave"]
    summary_before = btyd_summary(conn, AS_OF).loc["dave"]
    insert(
        conn,
        "intermediate.int_customers__orders",
        [("dave", "store", "ret", D("2026-06-15"), False, True, -15)],
    )
    insert(conn, "marts.fct_sales", [("dave", D("2026-06-15"), "toys", True, False, False)])

    after = customer_features(conn, AS_OF).loc["dave"]
    assert after["recency_days"] == before["recency_days"] == 89  # not 15
    assert after["frequency"] == before["frequency"]
    assert after["frequency_90d"] == before["frequency_90d"]
    assert after["monetary_90d"] == before["monetary_90d"] - 15
    assert after["monetary_365d"] == before["monetary_365d"] - 15
    assert after["avg_order_value"] == (100 - 15) / 4
    assert after["returns_365d"] == before["returns_365d"] + 1
    assert after["category_breadth_365d"] == before["category_breadth_365d"]
    pd.testing.assert_series_equal(btyd_summary(conn, AS_OF).loc["dave"], summary_before)


def test_future_outcomes_count_only_the_horizon(conn):
    outcomes = future_outcomes(conn, AS_OF, 30)  # (06-30, 07-30]
    assert list(outcomes.columns) == ["purchases", "spend", "purchased"]
    assert outcomes.index.equals(customer_features(conn, AS_OF).index)  # not erin, not zed
    assert outcomes.loc["alice"].tolist() == [1, 90.0, True]  # 07-01 twice, the -10 return
    assert outcomes.loc["bob"].tolist() == [0, 0.0, False]
    assert outcomes.loc["dave"].tolist() == [0, 0.0, False]
    assert outcomes["purchased"].dtype == bool

    # the window may end on the warehouse's last day, not one day later
    assert future_outcomes(conn, AS_OF, 92).loc["alice"].tolist() == [2, 590.0, True]
    with pytest.raises(ValueError, match=r"does not yet hold data up to 2026-10-01"):
        future_outcomes(conn, AS_OF, 93)
    with pytest.raises(ValueError, match="horizon_days must be a positive"):
        future_outcomes(conn, AS_OF, 0)


def test_as_of_dates_with_a_full_and_a_short_history(conn):
    # purchases run from 2025-06-01 to 2026-09-30
    assert as_of_dates(conn, horizon_days=30, n=3, step_days=7) == [
        D("2026-08-17"),
        D("2026-08-24"),
        D("2026-08-31"),
    ]
    with pytest.warns(UserWarning, match="only 16 of the 20 as-of dates"):
        dates = as_of_dates(conn, horizon_days=30, n=20, step_days=30)
    assert len(dates) == 16 and dates[0] >= D("2025-06-01") and dates[-1] == D("2026-08-31")
    for as_of in dates[:2] + dates[-2:]:
        future_outcomes(conn, as_of, 30)  # every window is observed: no refusal

    with pytest.warns(UserWarning, match="only 2 of the 5"):
        assert as_of_dates(conn, horizon_days=30, n=5, step_days=30, min_history_days=400) == [
            D("2026-08-01"),
            D("2026-08-31"),
        ]
    with pytest.raises(ValueError, match="too short for a 500-day outcome window"):
        as_of_dates(conn, horizon_days=500, n=3, step_days=7)


def test_no_buyers_yet_and_bad_dates(conn):
    empty = customer_features(conn, D("2025-05-31"))
    assert empty.empty and tuple(empty.columns) == FEATURE_COLUMNS
    assert btyd_summary(conn, D("2025-05-31")).empty
    with pytest.warns(UserWarning, match="only up to 2026-09-30"):
        customer_features(conn, D("2026-10-02"))
    with pytest.raises(TypeError, match="business date"):
        customer_features(conn, datetime(2026, 6, 30, 12))
