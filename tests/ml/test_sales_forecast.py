"""Daily sales forecasts: model vs seasonal naive, intervals, metrics, leakage, data."""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest

from ml import sales_forecast as sf

WEEKDAY_STORE = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.5, 1.35])  # Monday .. Sunday
WEEKDAY_ONLINE = np.array([1.05, 1.0, 1.0, 1.0, 0.95, 0.92, 1.05])


def synthetic_history(
    *,
    days: int,
    end: date = date(2026, 6, 30),
    n_stores: int = 4,
    n_categories: int = 4,
    online: bool = True,
    trend_per_day: float = 0.001,
    noise: float = 0.2,
    seed: int = 0,
    event: tuple[int, int, float] | None = None,
) -> pd.DataFrame:
    """Sales cells (channel or store x category) with a weekday rhythm, a linear trend and
    log-normal noise, added up into the four series levels. ``event`` = (month, day,
    multiplier) boosts that calendar day every year."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=end, periods=days, freq="D")
    weekday = dates.day_of_week.to_numpy()
    t = np.arange(days)
    boost = np.ones(days)
    if event is not None:
        month, day, factor = event
        boost[(dates.month == month) & (dates.day == day)] = factor
    sellers = (["online"] if online else []) + [f"S{i}" for i in range(n_stores)]
    cells = {}
    for seller in sellers:
        profile = WEEKDAY_ONLINE if seller == "online" else WEEKDAY_STORE
        base = rng.uniform(3_000, 20_000)
        growth = 1 + trend_per_day * rng.uniform(0.5, 1.5) * t
        for c in range(n_categories):
            mean = base * rng.uniform(0.2, 1.0) * profile[weekday] * growth * boost
            cells[seller, f"cat{c}"] = mean * rng.lognormal(-(noise**2) / 2, noise, days)

    def series(level: str, key: str, values) -> pd.DataFrame:
        return pd.DataFrame(
            {"level": level, "key": key, "business_date": dates, "net_sales": values}
        )

    frames = [series("total", "total", sum(cells.values()))]
    for channel in ("online", "store"):
        parts = [v for (s, _), v in cells.items() if (s == "online") == (channel == "online")]
        if parts:
            frames.append(series("channel", channel, sum(parts)))
    for seller in sellers[1:] if online else sellers:
        frames.append(series("store", seller, sum(v for (s, _), v in cells.items() if s == seller)))
    for c in range(n_categories):
        frames.append(
            series("category", f"cat{c}", sum(v for (_, k), v in cells.items() if k == f"cat{c}"))
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def synthetic_backtest():
    history = synthetic_history(days=180)
    points, metrics = sf.backtest(history)
    return history, points, metrics


def test_the_model_beats_seasonal_naive_at_every_level_and_horizon(synthetic_backtest):
    _, points, metrics = synthetic_backtest
    assert metrics.attrs["note"] == ""
    assert len(metrics.attrs["cutoffs"]) == 6
    assert set(metrics["level"]) == {"total", "channel", "store", "category"}
    assert set(metrics["horizon_bucket"]) == {"1-7", "8-14", "15-28", "all"}
    assert (metrics["n_cutoffs"] == 6).all()
    # every level x bucket cell: below seasonal naive on MAE and on scaled error
    assert (metrics["rel_mae"] < 1).all(), metrics[["level", "horizon_bucket", "rel_mae"]]
    assert (metrics["mase"] < metrics["mase_naive"]).all()
    overall = metrics[metrics["horizon_bucket"] == "all"]
    assert (overall["rel_mae"] < 0.9).all(), overall
    assert (overall["mase"] < 1).all(), overall  # Hyndman MASE, in-sample weekly naive scale
    assert (metrics["wape"] < metrics["wape_naive"]).all()
    assert metrics["bias"].abs().max() < 0.05
    # 6 cutoffs x 28 days for each of the 1 + 2 + 4 + 4 series
    assert len(points) == 6 * 28 * 11
    assert points["model_version"].eq(sf.MODEL_VERSION).all()


def test_interval_coverage_is_near_nominal(synthetic_backtest):
    _, points, metrics = synthetic_backtest
    inside80 = points["actual"].between(points["lo80"], points["hi80"]).mean()
    inside95 = points["actual"].between(points["lo95"], points["hi95"]).mean()
    assert 0.70 <= inside80 <= 0.90
    assert 0.88 <= inside95 <= 0.99
    per_level = metrics[metrics["horizon_bucket"] == "all"]
    assert per_level["coverage80"].between(0.65, 0.95).all(), per_level
    assert per_level["coverage95"].between(0.85, 1.0).all(), per_level
    assert (points["lo95"] <= points["lo80"]).all()
    assert (points["lo80"] <= points["hi80"]).all()
    assert (points["hi80"] <= points["hi95"]).all()


def test_forecast_has_one_row_per_series_and_day_after_the_cutoff(synthetic_backtest):
    history, _, _ = synthetic_backtest
    cutoff = date(2026, 6, 30)
    fc = sf.forecast(history, cutoff=cutoff)
    assert list(fc.columns) == sf.FORECAST_COLUMNS
    assert len(fc) == 11 * sf.HORIZON_DAYS
    one = fc[(fc["level"] == "store") & (fc["key"] == "S0")]
    assert one["target_date"].tolist() == list(
        pd.date_range(cutoff + timedelta(days=1), periods=28, freq="D")
    )
    assert one["horizon_day"].tolist() == list(range(1, 29))
    assert (fc["point"] > 0).all() and (fc["lo95"] >= 0).all()
    # the store weekday rhythm shows: Saturdays above Mondays
    saturday = one[one["target_date"].dt.day_of_week == 5]["point"].mean()
    monday = one[one["target_date"].dt.day_of_week == 0]["point"].mean()
    assert saturday > 1.4 * monday


def test_seasonal_naive_repeats_the_same_weekday_of_the_last_week():
    days = pd.date_range("2026-03-01", periods=10, freq="D")
    history = pd.DataFrame(
        {"level": "total", "key": "total", "business_date": days, "net_sales": np.arange(1, 11)}
    )
    naive = sf.seasonal_naive(history, cutoff=date(2026, 3, 10), horizon=9)
    # the last week is days 4..10 (Mar 4..10); day 11 (Mar 11, a Wednesday like Mar 4) gets 4
    assert naive["point"].tolist() == [4, 5, 6, 7, 8, 9, 10, 4, 5]
    assert naive["target_date"].iloc[0] == pd.Timestamp("2026-03-11")
    # each source day (the value - 1 days after Mar 1) has the target's weekday
    source = pd.Timestamp("2026-03-01") + pd.to_timedelta(naive["point"] - 1, unit="D")
    assert (source.dt.day_of_week == naive["target_date"].dt.day_of_week).all()
    # a series younger than a week has no value for the days it did not exist a week before
    young = history[history["business_date"] >= "2026-03-06"]  # first sale Mar 6
    points = sf.seasonal_naive(young, cutoff=date(2026, 3, 10), horizon=7)["point"].tolist()
    assert np.isnan(points[:2]).all()
    assert points[2:] == [6, 7, 8, 9, 10]


def test_metrics_match_a_hand_computed_example():
    cutoff = pd.Timestamp("2026-03-01")
    points = pd.DataFrame(
        {
            "level": "total",
            "key": "total",
            "cutoff": cutoff,
            "horizon_day": [1, 2, 10],
            "actual": [100.0, 50.0, 200.0],
            "point": [90.0, 55.0, 180.0],
            "naive": [120.0, 40.0, 150.0],
            "mase_scale": [10.0, 10.0, 20.0],
            "lo80": [85.0, 50.0, 170.0],
            "hi80": [95.0, 60.0, 210.0],
            "lo95": [80.0, 45.0, 160.0],
            "hi95": [110.0, 75.0, 220.0],
        }
    )
    m = sf.score_backtest(points).set_index("horizon_bucket")
    # days 1-7: errors 10 and 5 on actuals 100 and 50; naive errors 20 and 10
    first = m.loc["1-7"]
    assert first["n"] == 2
    assert first["wape"] == pytest.approx(15 / 150)
    assert first["bias"] == pytest.approx((-10 + 5) / 150)
    assert first["mae"] == pytest.approx(7.5)
    assert first["mae_naive"] == pytest.approx(15)
    assert first["rel_mae"] == pytest.approx(0.5)
    assert first["mase"] == pytest.approx((10 / 10 + 5 / 10) / 2)
    assert first["mase_naive"] == pytest.approx((20 / 10 + 10 / 10) / 2)
    assert first["coverage80"] == pytest.approx(0.5)  # 100 outside 85-95; 50 on the edge: in
    assert first["coverage95"] == pytest.approx(1.0)
    # days 8-14: one point, error 20 on 200, naive error 50
    second = m.loc["8-14"]
    assert second["wape"] == pytest.approx(0.1)
    assert second["bias"] == pytest.approx(-0.1)
    assert second["rel_mae"] == pytest.approx(0.4)
    assert second["mase"] == pytest.approx(1.0)
    assert second["mase_naive"] == pytest.approx(2.5)
    # all three points
    everything = m.loc["all"]
    assert everything["wape"] == pytest.approx(35 / 350)
    assert everything["bias"] == pytest.approx(-25 / 350)
    assert everything["rel_mae"] == pytest.approx((35 / 3) / (80 / 3))
    assert everything["mase"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert everything["coverage80"] == pytest.approx(2 / 3)
    # days 15-28 have no point here: the row is there, with n = 0
    assert m.loc["15-28", "n"] == 0 and np.isnan(m.loc["15-28", "wape"])


def test_data_after_the_cutoff_does_not_change_its_forecast():
    history = synthetic_history(days=150, seed=3)
    cutoff = pd.Timestamp("2026-05-20")
    before = sf.forecast(history, cutoff=cutoff)
    changed = history.copy()
    after = changed["business_date"] > cutoff
    changed.loc[after, "net_sales"] = changed.loc[after, "net_sales"] * 5 + 1_000
    late_store = pd.DataFrame(
        {
            "level": "store",
            "key": "S_new",
            "business_date": pd.date_range(cutoff + timedelta(days=1), periods=30),
            "net_sales": 500.0,
        }
    )
    changed = pd.concat([changed, late_store], ignore_index=True)
    pd.testing.assert_frame_equal(sf.forecast(changed, cutoff=cutoff), before)
    # ... while a change before the cutoff does change it (the check can fail)
    earlier = history.copy()
    last_week = earlier["business_date"].between(cutoff - timedelta(days=6), cutoff)
    earlier.loc[last_week, "net_sales"] *= 2
    assert not sf.forecast(earlier, cutoff=cutoff)["point"].equals(before["point"])


def test_a_short_history_runs_fewer_cutoffs_and_says_so(caplog):
    history = synthetic_history(days=35, seed=4)
    points, metrics = sf.backtest(history)
    assert len(metrics.attrs["cutoffs"]) == 2
    assert "2 of 6 cutoffs" in metrics.attrs["note"]
    assert "2 of 6 cutoffs" in caplog.text
    assert (metrics["cutoffs_requested"] == 6).all()
    assert metrics.set_index(["level", "horizon_bucket"]).loc[("total", "1-7"), "n_cutoffs"] == 2
    assert metrics.set_index(["level", "horizon_bucket"]).loc[("total", "8-14"), "n_cutoffs"] == 1
    assert (metrics[metrics["horizon_bucket"] == "15-28"]["n"] == 0).all()
    assert points["target_date"].max() == history["business_date"].max()
    assert points[["point", "lo80", "hi80", "lo95", "hi95"]].notna().all().all()


def test_too_short_a_history_for_any_cutoff_is_a_clear_error():
    history = synthetic_history(days=20, seed=4)
    with pytest.raises(ValueError, match=r"has 20 days .* needs at least 22 .* 2 more"):
        sf.backtest(history)


def test_a_closed_store_is_not_forecast_and_is_reported():
    history = synthetic_history(days=120, seed=5)
    cutoff = history["business_date"].max()
    store = history["level"] == "store"
    # S1 last sold 28 days before the cutoff: closed. S2 last sold 27 days before: open.
    closed = (
        store & (history["key"] == "S1") & (history["business_date"] > cutoff - timedelta(days=28))
    )
    quiet = (
        store & (history["key"] == "S2") & (history["business_date"] > cutoff - timedelta(days=27))
    )
    history.loc[closed | quiet, "net_sales"] = 0.0
    fc = sf.forecast(history, cutoff=cutoff)
    stores = set(fc.loc[fc["level"] == "store", "key"])
    assert "S1" not in stores
    assert {"S0", "S2", "S3"} <= stores
    skipped = fc.attrs["skipped"]
    assert skipped[["level", "key", "status"]].values.tolist() == [["store", "S1", "closed"]]
    assert skipped["last_sale_date"].iloc[0] == cutoff - timedelta(days=28)
    status = sf.series_status(history, cutoff=cutoff).set_index("key")
    assert status.loc["S2", "status"] == "active"


def test_a_young_store_starts_at_its_first_sale_and_waits_for_two_weeks():
    history = synthetic_history(days=90, seed=6, n_stores=3)
    cutoff = history["business_date"].max()
    s2 = (history["key"] == "S2") & (history["business_date"] < cutoff - timedelta(days=12))
    history = history[~s2]  # S2 opened 13 days before the cutoff
    status = sf.series_status(history, cutoff=cutoff).set_index("key")
    assert status.loc["S2", "days_of_history"] == 13
    assert status.loc["S2", "status"] == "too_short"
    fc = sf.forecast(history, cutoff=cutoff)
    assert "S2" not in set(fc["key"]) and "S0" in set(fc["key"])
    assert fc.attrs["skipped"]["key"].tolist() == ["S2"]
    # one day later it has two weeks and is forecast
    history = pd.concat(
        [
            history,
            history[history["business_date"] == cutoff].assign(
                business_date=cutoff + timedelta(days=1)
            ),
        ]
    )
    assert "S2" in set(sf.forecast(history, cutoff=cutoff + timedelta(days=1))["key"])


def test_a_single_store_without_an_online_channel_backtests():
    history = synthetic_history(days=120, seed=7, n_stores=1, n_categories=2, online=False)
    points, metrics = sf.backtest(history)
    assert set(points["key"]) == {"total", "store", "S0", "cat0", "cat1"}
    every = metrics[metrics["horizon_bucket"] == "all"].set_index("level")
    assert (
        every["n_series"] == pd.Series({"total": 1, "channel": 1, "store": 1, "category": 2})
    ).all()
    assert (every["rel_mae"] < 1).all()


def test_a_yearly_event_is_forecast_from_the_same_day_last_year():
    history = synthetic_history(
        days=420, end=date(2026, 11, 30), trend_per_day=0.0, seed=8, event=(11, 11, 3.0)
    )
    fc = sf.forecast(history, cutoff=date(2026, 11, 1), holidays={})
    online = fc[fc["key"] == "online"].set_index("target_date")["point"]
    same_weekday = [pd.Timestamp("2026-11-04"), pd.Timestamp("2026-11-18")]
    assert online[pd.Timestamp("2026-11-11")] > 2.2 * online[same_weekday].mean()
    assert online[pd.Timestamp("2026-11-12")] < 1.2 * online[pd.Timestamp("2026-11-05")]


def test_the_history_must_reach_the_cutoff():
    history = synthetic_history(days=60, seed=9)
    with pytest.raises(ValueError, match="before the cutoff"):
        sf.forecast(history, cutoff=history["business_date"].max() + timedelta(days=2))


def test_demo_scale_forecast_and_backtest_take_seconds():
    history = synthetic_history(days=400, n_stores=10, n_categories=10, seed=10)
    started = time.perf_counter()
    sf.forecast(history, cutoff=history["business_date"].max())
    sf.backtest(history)
    assert time.perf_counter() - started < 20


@pytest.fixture
def warehouse(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            "create schema if not exists marts; create table marts.fct_sales (business_date date, channel text,"
            " store_code text, category text, customer_key text, net_amount numeric,"
            " is_return boolean, is_void boolean)"
        )
        rows = [
            (date(2026, 11, 1), "store", "S1", "shoes", None, 100, False, False),  # walk-in
            (date(2026, 11, 1), "online", None, "bags", "c1", 250.5, False, False),
            (date(2026, 11, 2), "store", "S1", "shoes", "c2", -40, True, False),  # a return
            (date(2026, 11, 2), "store", "S1", "bags", "c2", 0, False, True),  # a VOID: no money
            (date(2026, 11, 3), "store", "S2", "bags", None, 70, False, False),
            (date(2026, 11, 5), "online", None, "shoes", "c1", 30, False, False),
            (date(2026, 11, 6), "store", "S1", "shoes", "c3", 999, False, False),  # after until
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.fct_sales values (%s, %s, %s, %s, %s, %s, %s, %s)", rows
            )
    return fresh_db_url


def test_daily_sales_adds_up_lines_per_series_and_day(warehouse):
    with psycopg.connect(warehouse) as conn:
        sales = sf.daily_sales(conn, until=date(2026, 11, 5))
    assert list(sales.columns) == sf.HISTORY_COLUMNS
    got = {
        series: dict(zip(g["business_date"].dt.day, g["net_sales"], strict=True))
        for series, g in sales.groupby(["level", "key"])
    }
    assert got == {
        ("total", "total"): {1: 350.5, 2: -40.0, 3: 70.0, 4: 0.0, 5: 30.0},
        ("channel", "online"): {1: 250.5, 2: 0.0, 3: 0.0, 4: 0.0, 5: 30.0},
        ("channel", "store"): {1: 100.0, 2: -40.0, 3: 70.0, 4: 0.0, 5: 0.0},
        ("store", "S1"): {1: 100.0, 2: -40.0, 3: 0.0, 4: 0.0, 5: 0.0},
        ("store", "S2"): {3: 70.0, 4: 0.0, 5: 0.0},  # opened on the 3rd
        ("category", "bags"): {1: 250.5, 2: 0.0, 3: 70.0, 4: 0.0, 5: 0.0},
        ("category", "shoes"): {1: 100.0, 2: -40.0, 3: 0.0, 4: 0.0, 5: 30.0},
    }
    assert sales["business_date"].max() == pd.Timestamp("2026-11-05")  # the 6th is after until


def test_daily_sales_ends_at_the_last_loaded_day(warehouse):
    with psycopg.connect(warehouse) as conn:
        sales = sf.daily_sales(conn, until=date(2026, 11, 30))
        empty = sf.daily_sales(conn, until=date(2026, 10, 1))
    total = sales[sales["level"] == "total"].set_index("business_date")["net_sales"]
    assert total.index.max() == pd.Timestamp("2026-11-06")  # not the 30th: no data after the 6th
    assert total[pd.Timestamp("2026-11-06")] == 999.0
    assert empty.empty and list(empty.columns) == sf.HISTORY_COLUMNS
