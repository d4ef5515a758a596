"""Customer purchase and spend forecast (ml/customer_forecast.py).

Pure parts on hand-made or generated frames; end to end on a synthetic history in
minimal copies of the tables ``ml.features`` reads (as in tests/ml/test_features.py).

The synthetic history (``simulate``) is a buy-till-you-die world with two departures
that BG/NBD and Pareto/NBD cannot see but the features can: a complaint makes the
customer stop buying with probability 0.9 (``days_since_last_complaint``), and a
customer who has stopped buying browses the web shop at a tenth of the rate
(``web_sessions_90d``, ``days_since_last_web_session``). There the ML model must beat
both baselines; without those two effects it does not (checked by hand, see the
module docstring of ml/customer_forecast.py).
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest

from ml import customer_forecast as cf
from ml.features import FEATURE_COLUMNS

ORDERS = "intermediate.int_customers__orders"
COMPLAINTS = "marts.fct_complaints"
SESSIONS = "marts.fct_web_sessions"

START = date(2025, 1, 1)
HORIZON = 28  # the synthetic history is 300 days: 28-day holdout, 8 training dates


def simulate(
    n: int = 3000, days: int = 300, seed: int = 6, *, birth_share: float = 0.9
) -> dict[str, list[tuple]]:
    """Rows of the orders, complaints and web-session tables, from START for ``days`` days.

    Customer i appears on a uniform day of the first ``birth_share`` of the history
    (their first purchase), then buys on a day with probability lambda_i ~ Gamma(1.5,
    mean 0.06) while alive, dies after a purchase with probability p_i ~ Beta(1, 32)
    (BG/NBD's dropout), complains on a day with probability h_i ~ Exp(mean 1/200) and
    then dies with probability 0.9; browses (logged in) with probability b_i ~ Gamma(2,
    mean 0.1) a day while alive, a tenth of it once dead. Order values are lognormal
    around a customer mean (lognormal, median 250 HKD); 4% of purchases get a
    return-only receipt of half their value 5 days later.
    """
    rng = np.random.default_rng(seed)
    birth = rng.integers(0, int(days * birth_share), n)
    rate = rng.gamma(1.5, 0.06 / 1.5, n)
    complaint_rate = rng.gamma(1.0, 1 / 200, n)
    dropout = rng.beta(1.0, 1 / 0.03 - 1.0, n)
    online = np.where(rng.random(n) < 0.4, 0.8, 0.15)
    value = rng.lognormal(np.log(250), 0.4, n)
    browse_rate = rng.gamma(2.0, 0.1 / 2.0, n)
    alive = np.ones(n, bool)
    keys = [f"c{i:05d}" for i in range(n)]
    orders: list[tuple] = []
    complaints: list[tuple] = []
    sessions: list[tuple] = []
    for d in range(days):
        day = START + timedelta(days=d)
        u = rng.random((5, n))
        born = birth <= d
        browsed = born & (u[4] < browse_rate * np.where(alive, 1.0, 0.1))
        sessions += [(keys[i], day, True) for i in np.flatnonzero(browsed)]
        buys = born & alive & ((u[0] < rate) | (birth == d))
        for i in np.flatnonzero(buys):
            channel = "online" if rng.random() < online[i] else "store"
            amount = round(float(value[i] * rng.lognormal(0.0, 0.3)), 2)
            orders.append((keys[i], channel, f"o{len(orders)}", day, True, False, amount))
            if rng.random() < 0.04 and d + 5 < days:
                back = day + timedelta(days=5)
                refund = -round(amount / 2, 2)
                orders.append((keys[i], channel, f"o{len(orders)}", back, False, True, refund))
        alive &= ~(buys & (u[1] < dropout))
        complained = born & (birth < d) & (u[2] < complaint_rate)
        complaints += [(keys[i], day) for i in np.flatnonzero(complained)]
        alive &= ~(complained & (u[3] < 0.9))
    return {ORDERS: orders, COMPLAINTS: complaints, SESSIONS: sessions}


def load(conn: psycopg.Connection, tables: dict[str, list[tuple]]) -> None:
    for table, rows in tables.items():
        with conn.cursor() as cur, cur.copy(f"copy {table} from stdin") as copy:
            for row in rows:
                copy.write_row(row)


@pytest.fixture
def history(feature_db):
    """The synthetic history: a connection and the rows loaded."""
    tables = simulate()
    with psycopg.connect(feature_db, autocommit=True) as conn:
        load(conn, tables)
        yield conn, tables


def last_day(tables: dict[str, list[tuple]]) -> date:
    return max(row[3] for row in tables[ORDERS])


# ----------------------------------------------------------------------------- pure parts


def test_metrics_by_hand():
    index = pd.Index(["a", "b", "c", "d"], name="customer_key")
    actual = pd.DataFrame({"purchases": [0, 1, 2, 3], "spend": [0.0, 10, 20, -5]}, index=index)
    predicted = pd.DataFrame(
        {"purchases": [0.5, 1, 1, 4], "spend": [5.0, 10, 30, 0]}, index=index
    ).iloc[::-1]  # the same rows in another order: metrics align on the index
    metrics = cf.forecast_metrics(actual, {"m": predicted})

    p = metrics.loc[("m", "purchases")]
    # errors 0.5, 0, -1, 1
    assert p["n"] == 4
    assert p["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))  # 0.75
    assert p["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)  # 0.625
    # deviations actual -1.5 -0.5 0.5 1.5, predicted -1.125 -0.625 -0.625 2.375
    cov = 1.5 * 1.125 + 0.5 * 0.625 - 0.5 * 0.625 + 1.5 * 2.375  # 5.25
    assert p["correlation"] == pytest.approx(cov / math.sqrt(5 * 7.6875))  # 0.8468
    assert (p["total_predicted"], p["total_actual"]) == (6.5, 6.0)
    assert p["total_error_pct"] == pytest.approx(100 * 0.5 / 6)  # +8.33 %

    s = metrics.loc[("m", "spend")]
    # errors 5, 0, 10, 5
    assert s["rmse"] == pytest.approx(math.sqrt(150 / 4))
    assert s["mae"] == pytest.approx(5.0)
    # deviations actual -6.25 3.75 13.75 -11.25, predicted -6.25 -1.25 18.75 -11.25
    cov = 6.25 * 6.25 - 3.75 * 1.25 + 13.75 * 18.75 + 11.25 * 11.25  # 418.75
    assert s["correlation"] == pytest.approx(cov / math.sqrt(368.75 * 518.75))  # 0.9574
    assert s["total_error_pct"] == pytest.approx(100 * (45 - 25) / 25)  # +80 %

    constant = predicted.assign(purchases=1.0)
    flat = cf.forecast_metrics(actual, {"flat": constant}).loc[("flat", "purchases")]
    assert math.isnan(flat["correlation"])  # undefined, not 0 and not an error


def _metrics(rows: dict[tuple[str, str], tuple[float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(m, t, r, c, e) for (m, t), (r, c, e) in rows.items()],
        columns=["model", "target", "rmse", "correlation", "total_error_pct"],
    )
    return frame.set_index(["model", "target"])


def test_beats_baselines_needs_all_three_against_both():
    good = {
        ("ml", "purchases"): (1.0, 0.7, -4.9),
        ("ml", "spend"): (10.0, 0.6, 5.0),
        ("bgnbd", "purchases"): (1.1, 0.6, 1.0),
        ("bgnbd", "spend"): (11.0, 0.5, 1.0),
        ("pareto_nbd", "purchases"): (1.05, 0.69, 1.0),
        ("pareto_nbd", "spend"): (10.5, 0.55, 1.0),
    }
    table = cf.beats_baselines(_metrics(good))
    assert table["beats"].all()

    worse_rmse = {**good, ("pareto_nbd", "purchases"): (0.99, 0.5, 0.0)}
    row = cf.beats_baselines(_metrics(worse_rmse)).loc["purchases"]
    assert not row["rmse_lower"] and row["correlation_higher"] and not row["beats"]

    tied_correlation = {**good, ("bgnbd", "spend"): (11.0, 0.6, 1.0)}
    assert not cf.beats_baselines(_metrics(tied_correlation)).loc["spend", "beats"]

    off_total = {**good, ("ml", "spend"): (10.0, 0.6, -5.01)}
    row = cf.beats_baselines(_metrics(off_total)).loc["spend"]
    assert row["rmse_lower"] and row["correlation_higher"] and not row["total_within"]

    missing_baseline = {**good, ("pareto_nbd", "purchases"): (math.nan, math.nan, math.nan)}
    assert not cf.beats_baselines(_metrics(missing_baseline)).loc["purchases", "beats"]


def test_calibration_buckets_cover_every_customer_once():
    rng = np.random.default_rng(3)
    n = 500
    index = pd.Index([f"k{i}" for i in range(n)], name="customer_key")
    x = pd.Series(rng.negative_binomial(1, 0.2, n), index=index)
    x.iloc[:6] = [0, 2, 3, 4, 9, 10]
    actual = pd.DataFrame(
        {"purchases": rng.poisson(2.0, n), "spend": rng.normal(100, 30, n)}, index
    )
    predictions = {"a": actual * 1.1, "b": actual.sample(frac=1.0, random_state=1)}

    table = cf.calibration_by_frequency(x, actual, predictions)

    labels = [label for _, _, label in cf.FREQUENCY_BUCKETS]
    assert list(table.index.get_level_values("bucket").unique()) == labels  # in order
    per_bucket = table.xs(("a", "purchases"), level=("model", "target"))["n"]
    assert per_bucket.sum() == n
    bucket = cf.frequency_bucket(x)
    assert list(bucket.iloc[:6]) == ["0", "2", "3-4", "3-4", "5-9", "10+"]
    for label in labels:
        members = (bucket == label).to_numpy()
        assert per_bucket[label] == members.sum()
        for name, frame in predictions.items():
            row = table.loc[(label, name, "spend")]
            if members.any():
                assert row["mean_actual"] == pytest.approx(actual["spend"][members].mean())
                expected = frame.reindex(index)["spend"][members].mean()
                assert row["mean_predicted"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="outside every frequency bucket"):
        cf.frequency_bucket(pd.Series([-1, 0]))


def test_training_dates_by_hand():
    first, as_of = date(2026, 1, 1), date(2026, 6, 30)
    dates = cf.training_dates(first, as_of, 28, n=3, step_days=14)
    assert dates == [date(2026, 5, 5), date(2026, 5, 19), date(2026, 6, 2)]  # 06-30 - 28 - 14 k
    assert all(d + timedelta(days=28) <= as_of for d in dates)
    # A 91-day horizon needs 91 days of history: dates from 2026-04-02 on, the latest
    # 2026-09-30 - 91 = 2026-07-01, then every 14 days back: 7 of the 8 fit.
    dates = cf.training_dates(first, date(2026, 9, 30), 91, n=8, step_days=14)
    assert dates == [date(2026, 7, 1) - timedelta(days=14 * k) for k in range(6, -1, -1)]
    assert dates[0] == date(2026, 4, 8)
    # 28 days of history at least (MIN_HISTORY_DAYS), even for a short horizon
    assert cf.training_dates(first, date(2026, 3, 1), 7, n=8, step_days=7) == [
        date(2026, 2, 1) + timedelta(days=7 * k)
        for k in range(4)  # not 01-25: < 01-29
    ]
    assert cf.training_dates(first, date(2026, 2, 1), 28) == []

    need = cf.history_needed(28)  # 28 ahead + 28 behind + one step for the second date
    assert need == 70 and cf.history_needed(28, validation=True) == 98
    assert len(cf.training_dates(first, first + timedelta(days=need), 28)) == 2
    assert len(cf.training_dates(first, first + timedelta(days=need - 1), 28)) == 1
    assert cf.history_needed() == 91 + 91 + 14


def _frames(n: int, seed: int) -> pd.DataFrame:
    """Training rows generated in numpy: the purchase rate is 3 / week, a fifth of it for
    customers with a complaint in the last 30 days; spend is 100 per purchase. BTYD sees
    neither: its expectation is 2 purchases of 80 for everyone (the model's offsets)."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(
        {c: rng.integers(0, 50, n).astype(float) for c in cf.INPUT_COLUMNS},
        index=pd.Index([f"k{i}" for i in range(n)], name="customer_key"),
    )
    rows["bgnbd_purchases"], rows["gg_avg_spend"] = 2.0, 80.0
    rows["days_since_last_complaint"] = rng.choice([5.0, 20.0, 400.0, 3650.0], n)
    mean = np.where(rows["days_since_last_complaint"] < 30, 0.6, 3.0)
    rows["purchases"] = rng.poisson(mean)
    rows["spend"] = 100.0 * rows["purchases"]
    return rows


def test_fit_forecaster_learns_what_the_features_say_and_is_reproducible():
    rows = _frames(4000, seed=1)
    fit = cf.BtydFit(None, None, None, 0.0)
    model = cf.fit_forecaster(rows, btyd_fit=fit, horizon_days=28)
    again = cf.fit_forecaster(rows, btyd_fit=fit, horizon_days=28)
    assert not model.is_fallback

    new = _frames(1000, seed=2)
    predicted = model.predict(new)
    pd.testing.assert_frame_equal(predicted, again.predict(new))
    complained = new["days_since_last_complaint"] < 30
    assert predicted["expected_purchases"][complained].mean() == pytest.approx(0.6, rel=0.15)
    assert predicted["expected_purchases"][~complained].mean() == pytest.approx(3.0, rel=0.05)
    ratio = predicted["expected_spend"] / predicted["expected_purchases"]
    assert np.allclose(ratio, 100.0, rtol=0.02)
    assert predicted["expected_purchases"].sum() == pytest.approx(new["purchases"].sum(), rel=0.05)


def test_a_value_correction_that_does_not_help_is_left_out():
    """Spend per purchase day is Gamma-Gamma's expectation plus noise the inputs do not
    explain: the correction cannot beat v = 1 on held-out customers, so spend is the
    expected purchases x gg_avg_spend, and the model says so. Where the inputs do explain
    it (the test above: 100 against Gamma-Gamma's 80) the correction is kept."""
    rows = _frames(4000, seed=3)
    rng = np.random.default_rng(4)
    rows["spend"] = rows["purchases"] * 80.0 * rng.gamma(4.0, 1 / 4.0, len(rows))
    model = cf.fit_forecaster(rows, btyd_fit=cf.BtydFit(None, None, None, 0.0), horizon_days=28)
    assert model.value_model is None and model.record()["value_correction"] is False
    assert any("Gamma-Gamma's" in note for note in model.notes), model.notes
    predicted = model.predict(_frames(500, seed=5))
    expected = predicted["expected_purchases"] * 80.0 * model.return_factor
    np.testing.assert_allclose(predicted["expected_spend"], expected)

    kept = cf.fit_forecaster(
        _frames(4000, seed=1), btyd_fit=cf.BtydFit(None, None, None, 0.0), horizon_days=28
    )
    assert kept.value_model is not None and kept.record()["value_correction"] is True


def test_too_few_rows_fall_back_to_btyd():
    rows = _frames(cf.MIN_TRAINING_ROWS - 1, seed=1)
    model = cf.fit_forecaster(rows, btyd_fit=cf.BtydFit(None, None, None, 0.0), horizon_days=28)
    assert model.is_fallback and model.fallback_source is None
    assert "falls back" in model.notes[0]
    rows["bgnbd_purchases"], rows["bgnbd_spend"] = 1.5, 30.0
    predicted = model.predict(rows)
    assert (predicted["expected_purchases"] == 1.5).all()
    assert (predicted["expected_spend"] == 30.0).all()


def test_poisson_interval():
    low, high = cf.poisson_interval(np.array([0.0, 0.05, 4.0]))
    assert list(low) == [0, 0, 2] and list(high) == [
        0,
        0,
        7,
    ]  # Poisson(4): P(X<=1)=.09, P(X<=6)=.89


# ----------------------------------------------------------------------------- warehouse


def test_validation_ml_beats_both_baselines(history):
    conn, tables = history
    v = cf.validate(conn, horizon_days=HORIZON)

    end = last_day(tables)
    assert v.calibration_end == end - timedelta(days=HORIZON)
    assert v.holdout_end == end
    assert len(v.training_dates) == cf.MAX_TRAINING_DATES
    assert all(d + timedelta(days=HORIZON) <= v.calibration_end for d in v.training_dates)
    assert not v.model.is_fallback
    assert v.notes == []
    print(v.report())

    assert v.comparison["rmse_lower"].all(), v.metrics
    assert v.comparison["correlation_higher"].all(), v.metrics
    assert (v.metrics.loc["ml", "total_error_pct"].abs() <= 5).all(), v.metrics
    assert v.beats_baselines

    # The metrics are those of the per-customer predictions, on every customer.
    p = v.predictions
    assert len(p) == v.n_customers == v.metrics.loc[("ml", "purchases"), "n"]
    rmse = np.sqrt(((p["ml_spend"] - p["actual_spend"]) ** 2).mean())
    assert v.metrics.loc[("ml", "spend"), "rmse"] == pytest.approx(rmse)
    assert v.metrics.loc[("pareto_nbd", "purchases"), "total_actual"] == p["actual_purchases"].sum()

    # Calibration: every customer in exactly one bucket, for every model and target.
    counts = v.calibration["n"].groupby(level=["model", "target"]).sum()
    assert (counts == v.n_customers).all() and len(counts) == 6

    # What BG/NBD cannot see: recent complainers mostly stopped buying.
    complaints = pd.DataFrame(tables[COMPLAINTS], columns=["customer_key", "day"])
    recent = complaints[
        (complaints["day"] <= v.calibration_end)
        & (complaints["day"] > v.calibration_end - timedelta(days=30))
    ]["customer_key"].unique()
    sub = p.loc[p.index.intersection(recent)]
    assert len(sub) > 50
    assert sub["ml_purchases"].mean() < 0.5 * sub["bgnbd_purchases"].mean()
    assert sub["ml_purchases"].mean() == pytest.approx(sub["actual_purchases"].mean(), abs=0.15)

    record = v.record()
    assert record["beats_baselines"] is True and record["calibration_end"] == str(v.calibration_end)


def test_validation_does_not_see_the_holdout(history):
    conn, tables = history
    before = cf.validate(conn, horizon_days=HORIZON)
    c, end = before.calibration_end, before.holdout_end

    # Rewrite the holdout (c, end]: drop half its rows (not the last day's, which fixes c)
    # and give 300 customers a big extra purchase in it.
    conn.execute(
        f"delete from {ORDERS} where business_date > %s and business_date < %s"
        " and hashtext(order_ref) %% 2 = 0",
        (c, end),
    )
    rows = [
        (
            f"c{i:05d}",
            "online",
            f"extra{i}",
            c + timedelta(days=1 + i % (HORIZON - 1)),
            True,
            False,
            5000,
        )
        for i in range(0, 3000, 10)
    ]
    with conn.cursor() as cur:
        cur.executemany(f"insert into {ORDERS} values (%s, %s, %s, %s, %s, %s, %s)", rows)
    after = cf.validate(conn, horizon_days=HORIZON)

    assert after.calibration_end == c and after.training_dates == before.training_dates
    columns = [f"{m}_{t}" for m in cf.MODELS for t in cf.TARGETS]
    pd.testing.assert_frame_equal(before.predictions[columns], after.predictions[columns])
    assert not before.predictions["actual_spend"].equals(after.predictions["actual_spend"])
    assert not before.metrics.equals(after.metrics)


def test_scoring_is_reproducible(history):
    conn, tables = history
    end = last_day(tables)
    model = cf.train(conn, end)  # default 91-day horizon
    first = cf.score(model, conn, end)
    second = cf.score(model, conn, end)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, cf.score(cf.train(conn, end), conn, end))

    assert model.horizon_days == cf.HORIZON_DAYS == 91
    assert not model.is_fallback and len(model.training_dates) == cf.MAX_TRAINING_DATES
    assert all(d + timedelta(days=91) <= end for d in model.training_dates)
    buyers = {row[0] for row in tables[ORDERS] if row[4]}
    assert set(first.index) == buyers and first.index.is_monotonic_increasing
    assert (first["expected_purchases"] >= 0).all() and (first["expected_spend"] >= 0).all()
    assert (first["purchases_low"] <= first["expected_purchases"].round()).all()
    assert (first["purchases_high"] >= first["purchases_low"]).all()
    assert set(first["model_version"]) == {cf.MODEL_VERSION}
    assert (first["horizon_days"] == 91).all() and (first["as_of"] == pd.Timestamp(end)).all()
    assert set(cf.INPUT_COLUMNS) >= set(model.input_columns) >= set(FEATURE_COLUMNS)


def test_short_history_gives_notes_not_errors(feature_db):
    with psycopg.connect(feature_db, autocommit=True) as conn:
        tables = simulate(n=600, days=60, seed=2)
        load(conn, tables)
        end = last_day(tables)

        v = cf.validate(conn)  # 91-day holdout in 60 days of history
        assert not v.beats_baselines and v.metrics.empty and v.calibration_end is None
        assert "history too short for a 91-day holdout" in v.notes[0]

        v = cf.validate(conn, horizon_days=14)  # a holdout, but one training date at most
        assert v.calibration_end == end - timedelta(days=14)
        assert v.model.is_fallback and not v.beats_baselines
        assert any("history too short to train the ML model" in note for note in v.notes)
        source = v.model.fallback_source
        assert source in ("bgnbd", "pareto_nbd")
        pd.testing.assert_series_equal(
            v.predictions["ml_purchases"], v.predictions[f"{source}_purchases"], check_names=False
        )

        scores = cf.score(v.model, conn, v.calibration_end)  # the fallback scores too
        assert set(scores["model_version"]) == {f"{cf.MODEL_VERSION}+{source}-fallback"}
        assert scores["expected_purchases"].notna().all()
        assert np.allclose(scores["expected_purchases"], v.predictions["ml_purchases"])

        # a night replayed for an earlier date reads no outcome after it
        past = cf.validate(conn, horizon_days=14, observed_to=end - timedelta(days=3))
        assert past.holdout_end == end - timedelta(days=3)
        assert past.calibration_end == end - timedelta(days=17)

        model = cf.train(conn, end, horizon_days=14)  # two weeks later: two training dates
        assert not model.is_fallback and len(model.training_dates) == 2
