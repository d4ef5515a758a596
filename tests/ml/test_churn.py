"""Churn risk model (ml/churn.py): metrics by hand, scoring on generated frames, and one
time-split validation against both baselines on a synthetic warehouse history.

The synthetic history (``_history``) makes churn learnable by construction: every
customer buys as a Poisson process until a Weibull lifetime ends (declining hazard);
web users stop logging in 40 days before they stop buying, and half of the leavers file
a complaint in their last two weeks. The rule (a simplified ``fct_customer_churn_risk``:
recency against the median gap, a complaint since the last purchase) and BG/NBD see the
purchases only (the rule also the complaints); the model also sees the web sessions, so
it must rank better than both.
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
from threadpoolctl import threadpool_limits

from ml import churn
from ml.features import FEATURE_COLUMNS, FEATURE_DTYPES, btyd_summary, customer_features

START = date(2025, 1, 1)
END = date(2026, 3, 31)
H = 60
# the latest month end whose 60-day window ends by END (2026-03-31): 2026-01-30 -> 2025-12-31
V = date(2025, 12, 31)
CATEGORIES = ("beauty", "fashion", "home", "toys", "sports")

RULE_DDL = """
create table marts.fct_customer_churn_history (
    period_end_date date, customer_key text, churn_status text);
"""


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    # the trees' OpenMP threads spin badly on a busy 2-core box; results do not depend on it
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


# --------------------------------------------------------------------------- metrics by hand


def test_auc_brier_and_deciles_by_hand():
    prob = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    churned = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    metrics = churn.metrics_table(churned, {"m": prob})
    row = metrics.loc["m"]
    # 4 churners x 6 stayers = 24 pairs; the churners at 0.9, 0.8, 0.6, 0.4 outrank 6, 6, 5, 4
    assert row["roc_auc"] == pytest.approx(21 / 24)
    # (0.1^2 + 0.2^2 + 0.7^2 + 0.4^2 + 0.5^2 + 0.6^2 + 0.3^2 + 0.2^2 + 0.1^2 + 0^2) / 10
    assert row["brier"] == pytest.approx(1.45 / 10)
    assert row["churn_rate"] == pytest.approx(0.4) and row["n"] == 10
    assert row["brier_base"] == pytest.approx(0.24)
    assert row["brier_skill"] == pytest.approx(1 - 0.145 / 0.24)

    deciles = churn.decile_table(prob, churned)
    assert deciles["decile"].tolist() == list(range(10, 0, -1))  # highest risk first
    assert deciles["customers"].tolist() == [1.0] * 10
    assert deciles["observed_rate"].tolist() == churned.astype(float).tolist()
    assert deciles["mean_predicted"].to_numpy() == pytest.approx(prob)
    assert deciles["lift"].to_numpy() == pytest.approx(churned / 0.4)
    # top 3: 2 of 3 churned -> cumulative lift (2/3) / 0.4; half of the 4 churners captured
    assert deciles.loc[2, "cumulative_lift"] == pytest.approx((2 / 3) / 0.4)
    assert deciles.loc[2, "capture"] == pytest.approx(0.5)
    assert deciles["capture"].iloc[-1] == pytest.approx(1.0)
    assert row["top_decile_lift"] == pytest.approx(2.5)


def test_tied_scores_are_spread_evenly_over_deciles():
    # a rule-like ordinal: 2 customers at 2 (1 churned), 3 at 1 (2 churned), 5 at 0 (1)
    score = np.array([2, 2, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    churned = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    prob = np.array([0.5] * 2 + [0.6] * 3 + [0.1] * 5)
    deciles = churn.decile_table(score, churned, prob)
    expected = [0.5, 0.5, 2 / 3, 2 / 3, 2 / 3, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert deciles["observed_rate"].to_numpy() == pytest.approx(expected)
    assert deciles["mean_predicted"].to_numpy() == pytest.approx(prob)
    assert deciles.loc[0, "lift"] == pytest.approx(0.5 / 0.4)
    # churner/stayer pairs: the churner at 2 beats 5 and ties 1 (5.5); each at 1 beats 4
    # and ties 1 (4.5 x 2); the one at 0 ties 4 (2): 16.5 of 24
    metrics = churn.metrics_table(churned, {"rule": score}, {"rule": prob})
    assert metrics.loc["rule", "roc_auc"] == pytest.approx(16.5 / 24)
    assert metrics.loc["rule", "brier"] == pytest.approx(np.mean((prob - churned) ** 2))

    # 5 customers: each spans two deciles of half a customer
    few = churn.decile_table(np.array([5.0, 4, 3, 2, 1]), np.array([1, 0, 1, 0, 0], dtype=bool))
    assert few["customers"].tolist() == [0.5] * 10
    assert few["observed_rate"].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 0, 0]

    # no probability: Brier and mean_predicted are NaN, the ranking metrics are not
    bare = churn.metrics_table(churned, {"rule": score}, {"rule": None})
    assert np.isnan(bare.loc["rule", "brier"]) and not np.isnan(bare.loc["rule", "roc_auc"])


def test_evaluate_judges_every_scorer_on_the_same_customers():
    keys = pd.Index(["a", "b", "c", "d"], name="customer_key")
    churned = pd.Series([True, False, True, False], index=keys)
    scores = {
        "model": pd.Series([0.9, 0.1, 0.8, 0.3], index=keys),
        "rule": pd.Series([2.0, 0.0, 1.0], index=["a", "b", "c"]),  # d has no status
    }
    metrics, deciles, notes = churn.evaluate(churned, scores, {"rule": None})
    assert metrics["n"].tolist() == [3, 3]
    assert "1 of 4 customers lack a score of rule" in notes[0]
    assert deciles.loc[deciles["scorer"] == "rule", "mean_predicted"].isna().all()
    assert not deciles.loc[deciles["scorer"] == "model", "mean_predicted"].isna().any()


def test_rule_probability_is_the_training_churn_rate_of_each_status():
    train_status = pd.Series(["active"] * 4 + ["at_risk"] * 2 + ["lost"] * 2)
    train_churned = pd.Series([True, False, False, False, True, False, True, True])
    status = pd.Series(["lost", "active", "at_risk"], index=["x", "y", "z"])
    prob = churn.rule_probability(train_status, train_churned, status)
    assert prob.to_dict() == {"x": 1.0, "y": 0.25, "z": 0.5}
    # a status never seen in training gets the pooled rate
    only_active = churn.rule_probability(
        train_status[:4], train_churned[:4], pd.Series(["lost"], index=["x"])
    )
    assert only_active["x"] == pytest.approx(0.25)


def test_percentiles_and_bands():
    # 100 x share of scores <= each: ties share the higher rank, the highest is 100
    assert churn.percentiles(np.array([0.5, 0.1, 0.9, 0.5])).tolist() == [75, 25, 100, 75]
    assert churn.risk_bands(np.array([0.5, 70, 70.01, 90, 90.5, 100])).tolist() == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_training_dates_end_their_outcomes_by_as_of():
    dates = churn.training_dates(
        date(2025, 1, 1), date(2025, 12, 31), horizon_days=60, step_days=28, max_dates=20
    )
    assert dates[-1] == date(2025, 11, 1)  # 2025-12-31 - 60
    assert all(d + timedelta(days=60) <= date(2025, 12, 31) for d in dates)
    assert dates[0] >= date(2025, 1, 29)  # min history 28 days after the first purchase
    assert np.all(np.diff(dates) == timedelta(days=28))
    assert len(dates) == 10
    with pytest.raises(ValueError, match="no training date"):
        churn.training_dates(date(2025, 10, 1), date(2025, 12, 1), horizon_days=60)


# --------------------------------------------------------------------------- generated frames


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Feature rows and an outcome that depends on recency, frequency and web activity."""
    rng = np.random.default_rng(seed)
    frequency = rng.integers(1, 30, n)
    tenure = rng.integers(0, 700, n)
    recency = np.minimum(rng.integers(0, 400, n), tenure)
    web = rng.integers(0, 2, n) * rng.integers(0, 20, n)
    monetary = rng.lognormal(7, 1, n) * frequency / 5
    frame = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": frequency,
            "frequency_90d": np.minimum(frequency, rng.integers(0, 10, n)),
            "frequency_365d": np.minimum(frequency, rng.integers(0, 20, n)),
            "monetary_90d": monetary / 4,
            "monetary_365d": monetary / 2,
            "monetary_lifetime": monetary,
            "avg_order_value": monetary / frequency,
            "tenure_days": tenure,
            "online_share": rng.integers(0, 5, n) / 4,
            "category_breadth_365d": rng.integers(0, 6, n),
            "returns_365d": rng.poisson(0.2, n),
            "complaints_365d": rng.poisson(0.1, n),
            "days_since_last_complaint": np.where(rng.random(n) < 0.9, 3650, 30),
            "web_sessions_90d": web,
            "days_since_last_web_session": np.where(web > 0, rng.integers(0, 90, n), 3650),
            "loyalty_tier_rank": rng.integers(0, 5, n),
        },
        index=pd.Index([f"k{i:05d}" for i in range(n)], name="customer_key"),
    ).astype(FEATURE_DTYPES)
    logit = 0.012 * recency - 0.08 * frequency - 0.15 * web + 0.5
    frame["purchased"] = rng.random(n) >= 1 / (1 + np.exp(-logit))
    return frame


@functools.cache
def _fitted(kind: str) -> churn.ChurnModel:
    frame = _frame(3000, seed=1)
    return churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90, kind=kind)


@pytest.mark.parametrize("kind", churn.KINDS)
def test_scores_percentiles_bands_and_drivers(kind):
    model = _fitted(kind)
    features = _frame(800, seed=2).drop(columns="purchased")
    scores = churn.score_features(model, features, date(2026, 1, 1))

    assert scores.index.equals(features.index)
    p = scores["churn_probability"]
    assert ((p >= 0) & (p <= 1)).all()
    assert p.nunique() > 50  # not a constant
    ordered = scores.sort_values("churn_probability")
    assert ordered["percentile"].is_monotonic_increasing
    assert scores["percentile"].max() == 100.0 and scores["percentile"].min() > 0
    assert ordered["risk_decile"].is_monotonic_increasing
    assert set(scores["risk_decile"]) == set(range(1, 11))
    bands = scores.groupby("risk_band")["percentile"].agg(["min", "max"])
    assert bands.loc["low", "max"] <= 70 < bands.loc["medium", "min"]
    assert bands.loc["medium", "max"] <= 90 < bands.loc["high", "min"]
    # the model learned the direction of the generated outcome
    assert np.corrcoef(features["recency_days"], p)[0, 1] > 0.3

    contributions = churn.driver_contributions(model, features)
    pattern = re.compile(r"^(\w+)=(-?[\d.]+) \(([+-]\d+\.\d\d)\)$")
    for key in features.index[:25]:
        texts = [scores.loc[key, f"driver_{k}"] for k in (1, 2, 3)]
        assert all(t is not None for t in texts)
        parsed = [pattern.match(t).groups() for t in texts]
        names = [name for name, _, _ in parsed]
        assert set(names) <= set(FEATURE_COLUMNS) and len(set(names)) == 3
        for name, value, effect in parsed:
            assert float(value) == pytest.approx(features.loc[key, name], abs=0.006)
            assert float(effect) == pytest.approx(contributions.loc[key, name], abs=0.006)
        # the three largest in absolute value, largest first
        size = contributions.loc[key].abs().sort_values(ascending=False)
        assert names == list(size.index[:3])

    # one contribution by brute force: p(x) - p(x with the feature at its training median)
    key, name = features.index[7], "recency_days"
    moved = features.loc[[key]].copy()
    moved[name] = model.medians[name]
    expected = model.predict(features.loc[[key]])[0] - model.predict(moved)[0]
    assert contributions.loc[key, name] == pytest.approx(expected, abs=1e-12)


def test_tree_drivers_match_repredicting_the_whole_model():
    model = _fitted("hgb")
    features = _frame(500, seed=3).drop(columns="purchased")
    raw = features[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    fast = churn.driver_contributions(model, features).to_numpy()
    slow = churn._contributions_by_prediction(model, raw, model.medians.to_numpy())
    assert churn._TreeTerms.of(model) is not None  # the fast path was taken
    assert np.abs(fast - slow).max() < 1e-9
    assert (fast != 0).mean() > 0.2
    # a feature at its median contributes nothing
    at_median = features["loyalty_tier_rank"] == model.medians["loyalty_tier_rank"]
    assert at_median.any()
    frame = churn.driver_contributions(model, features)
    assert (frame.loc[at_median, "loyalty_tier_rank"] == 0).all()


def test_fitting_and_scoring_are_reproducible():
    frame = _frame(1500, seed=4)
    features = frame.drop(columns="purchased")
    first = churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90)
    again = churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90)
    a = churn.score_features(first, features, date(2026, 1, 1))
    b = churn.score_features(again, features, date(2026, 1, 1))
    pd.testing.assert_frame_equal(a, b)
    # sampling above max_rows is seeded too
    s1 = churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90, max_rows=700)
    s2 = churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90, max_rows=700)
    assert s1.training_rows == 700
    np.testing.assert_array_equal(s1.predict(features), s2.predict(features))
    assert not np.array_equal(s1.predict(features), first.predict(features))


def test_bad_inputs_are_refused():
    frame = _frame(200, seed=5)
    with pytest.raises(ValueError, match="only one outcome"):
        churn.fit_model(frame.assign(purchased=True), as_of=date(2026, 1, 1), horizon_days=90)
    with pytest.raises(ValueError, match="unknown model kind"):
        churn.fit_model(frame, as_of=date(2026, 1, 1), horizon_days=90, kind="forest")
    with pytest.raises(ValueError, match="lack the columns"):
        _fitted("hgb").predict(frame.drop(columns="recency_days"))


# --------------------------------------------------------------------------- warehouse


@functools.cache
def _history(seed: int = 11, n: int = 600) -> dict[str, list[tuple]]:
    """The synthetic warehouse of the module docstring, and the rule at every month end."""
    rng = np.random.default_rng(seed)
    days = (END - START).days + 1
    tables: dict[str, list[tuple]] = {
        "intermediate.int_customers__orders": [],
        "marts.fct_sales": [],
        "marts.fct_complaints": [],
        "marts.fct_web_sessions": [],
    }
    purchases, complaints = {}, {}
    for i in range(n):
        key = f"c{i:04d}"
        join = int(rng.integers(0, 330))
        rate = rng.gamma(2.0, 1 / 40)  # purchases per day
        stop = join + 250 * rng.weibull(0.7)  # declining hazard
        end = min(stop, days)
        count = rng.poisson(rate * (end - join))
        bought = np.unique(np.r_[join, rng.integers(join, max(int(end), join + 1), size=count)])
        purchases[key] = bought
        channel = "online" if rng.random() < 0.4 else "store"
        for j, day in enumerate(bought):
            when = START + timedelta(days=int(day))
            amount = round(float(rng.lognormal(5.5, 0.6)), 2)
            tables["intermediate.int_customers__orders"].append(
                (key, channel, f"{key}-{j}", when, True, False, amount)
            )
            category = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
            tables["marts.fct_sales"].append((key, when, category, False, False, False))
        if rng.random() < 0.7:  # a web user: logs in until 40 days before leaving
            web_end = int(min(stop - 40, days))
            if web_end > join:
                visits = rng.poisson(rng.gamma(2.0, 1 / 20) * (web_end - join))
                for day in np.unique(rng.integers(join, web_end, size=visits)):
                    when = START + timedelta(days=int(day))
                    tables["marts.fct_web_sessions"].append((key, when, True))
        filed = [int(d) for d in rng.integers(join, days, size=rng.poisson((days - join) / 2000))]
        if stop < days and rng.random() < 0.5:
            filed.append(int(max(join, stop - rng.integers(0, 15))))
        complaints[key] = np.array(sorted(filed), dtype=int)
        for day in filed:
            tables["marts.fct_complaints"].append((key, START + timedelta(days=day)))
    tables["marts.fct_customer_churn_history"] = _rule(purchases, complaints)
    return tables


def _month_ends(first: date, last: date) -> list[date]:
    out, month = [], date(first.year, first.month, 1)
    while True:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        if following - timedelta(days=1) > last:
            return out
        out.append(following - timedelta(days=1))
        month = following


def _rule(purchases: dict, complaints: dict) -> list[tuple]:
    """fct_customer_churn_risk's recency rule, simplified, at every month end."""
    rows = []
    for period_end in _month_ends(START, END):
        day = (period_end - START).days
        seen = {k: d[d <= day] for k, d in purchases.items() if (d <= day).any()}
        gaps = {k: float(np.median(np.diff(d))) for k, d in seen.items() if d.size > 1}
        population_gap = float(np.median(list(gaps.values()))) if gaps else 30.0
        for key, bought in seen.items():
            gap = max(gaps.get(key, population_gap), 30.0)
            recency = day - bought[-1]
            filed = complaints[key]
            complained = bool(((filed > bought[-1]) & (filed <= day)).any())
            if recency > min(2 * gap, 180):
                status = "lost"
            elif recency > min(1.5 * gap, 180) or complained:
                status = "at_risk"
            else:
                status = "active"
            rows.append((period_end, key, status))
    return rows


def _load(conn: psycopg.Connection, tables: dict[str, list[tuple]]) -> None:
    for table, rows in tables.items():
        with conn.cursor() as cur, cur.copy(f"copy {table} from stdin") as copy:
            for row in rows:
                copy.write_row(row)


@pytest.fixture
def conn(feature_db):
    with psycopg.connect(feature_db, autocommit=True) as conn:
        conn.execute(RULE_DDL)
        _load(conn, _history())
        yield conn


def test_time_split_validation_beats_both_baselines(conn):
    result = churn.validate(conn, horizon_days=H)

    assert result.as_of == V
    assert result.baselines == dict.fromkeys(["rule", "bgnbd", "bgnbd_no_purchase"], "available")
    model_dates = result.model.training_as_of
    assert len(model_dates) >= 5
    assert max(model_dates) + timedelta(days=H) <= V  # every training label known at v
    metrics = result.metrics
    assert list(metrics.index) == ["model", "rule", "bgnbd", "bgnbd_no_purchase"]
    n_at_v = len(customer_features(conn, V))
    assert (metrics["n"] == n_at_v).all()
    assert metrics.loc["model", "roc_auc"] > metrics.loc["rule", "roc_auc"] + 0.03
    assert metrics.loc["model", "roc_auc"] > metrics.loc["bgnbd", "roc_auc"] + 0.03
    assert metrics.loc["model", "brier"] < metrics.loc["rule", "brier"]
    assert metrics.loc["model", "brier"] < metrics.loc["bgnbd", "brier"]
    # BG/NBD's own P(no purchase in H) is the stronger BG/NBD baseline; the web signal
    # (invisible to it) still puts the model ahead
    fair = metrics.loc["bgnbd_no_purchase"]
    assert fair["roc_auc"] > metrics.loc["bgnbd", "roc_auc"] + 0.2
    assert metrics.loc["model", "roc_auc"] > fair["roc_auc"]
    assert result.beats == dict.fromkeys(["rule", "bgnbd", "bgnbd_no_purchase"], True)
    assert result.passed
    # the rule's probability is its statuses' churn rate at the 3 period ends known at v
    rule_params = result.baseline_params["rule"]
    assert rule_params["calibration_periods"] == ["2025-08-31", "2025-09-30", "2025-10-31"]
    assert set(rule_params["churn_rate_by_status"]) == {"active", "at_risk", "lost"}
    assert {"r", "alpha", "a", "b"} <= set(result.baseline_params["bgnbd"])

    deciles = result.deciles
    assert set(deciles["scorer"]) == {"model", "rule", "bgnbd", "bgnbd_no_purchase"}
    model_deciles = deciles[deciles["scorer"] == "model"]
    assert model_deciles["mean_predicted"].between(0, 1).all()
    assert model_deciles["capture"].iloc[-1] == pytest.approx(1.0)
    # the model's calibration: mean predicted within 0.15 of observed in every decile
    gap = (model_deciles["mean_predicted"] - model_deciles["observed_rate"]).abs()
    assert gap.max() < 0.15

    record = result.record()
    assert record["version"] == churn.MODEL_VERSION and record["as_of"] == V
    assert record["data_to"] == V + timedelta(days=H)
    assert record["metrics"]["passed"] is True
    assert record["metrics"]["by_scorer"]["model"]["roc_auc"] == metrics.loc["model", "roc_auc"]


def test_training_never_reads_outcomes_after_v(conn):
    features = customer_features(conn, V)
    result = churn.validate(conn, horizon_days=H)
    before = churn.train(conn, V, horizon_days=H).predict(features)
    np.testing.assert_array_equal(result.model.predict(features), before)

    # rewrite everything after v: drop the purchases, and every customer buys twice
    conn.execute("delete from intermediate.int_customers__orders where business_date > %s", (V,))
    keys = [k for (k,) in conn.execute("select distinct customer_key from marts.fct_sales")]
    later = [
        (k, "store", f"late-{k}-{d}", V + timedelta(days=d), True, False, 100)
        for k in keys
        for d in (3, 40)
    ]
    _load(conn, {"intermediate.int_customers__orders": later})

    after = churn.train(conn, V, horizon_days=H).predict(features)
    np.testing.assert_array_equal(after, before)
    # ... while a model trained for a later date does see the new rows
    moved = churn.train(conn, V + timedelta(days=40), horizon_days=H).predict(features)
    assert not np.array_equal(moved, before)


def test_scoring_the_same_as_of_twice_gives_the_same_frame(conn):
    as_of = END
    model = churn.train(conn, as_of, horizon_days=H)
    first = churn.score(model, conn, as_of)
    pd.testing.assert_frame_equal(churn.score(model, conn, as_of), first)
    pd.testing.assert_frame_equal(
        churn.score(churn.train(conn, as_of, horizon_days=H), conn, as_of), first
    )

    assert first.index.equals(customer_features(conn, as_of).index)
    assert list(first.columns) == [
        "as_of_date",
        "churn_probability",
        "percentile",
        "risk_decile",
        "risk_band",
        "driver_1",
        "driver_2",
        "driver_3",
        "horizon_days",
        "model_version",
    ]
    assert first["churn_probability"].between(0, 1).all()
    assert (first["as_of_date"] == as_of).all() and (
        first["model_version"] == churn.MODEL_VERSION
    ).all()
    named = first["driver_1"].dropna().str.extract(r"^(\w+)=")[0]
    assert len(named) > 0.9 * len(first) and set(named) <= set(FEATURE_COLUMNS)
    with pytest.raises(ValueError, match="trained for"):
        churn.score(model, conn, as_of - timedelta(days=1))


def test_a_missing_rule_table_is_reported_not_fatal(conn):
    conn.execute("drop table marts.fct_customer_churn_history")
    result = churn.validate(conn, horizon_days=H)

    assert result.baselines["rule"] == "marts.fct_customer_churn_history does not exist"
    assert result.baselines["bgnbd"] == "available"
    assert list(result.metrics.index) == ["model", "bgnbd", "bgnbd_no_purchase"]
    assert result.beats["rule"] is False and not result.passed
    assert any("rule baseline unavailable" in note for note in result.notes)
    assert result.as_of == END - timedelta(days=H)  # no period ends: the latest observed date
    # a night replayed for an earlier date is judged only on what was observed by then
    past = churn.validate(conn, horizon_days=H, observed_to=END - timedelta(days=10))
    assert past.as_of == END - timedelta(days=10 + H)


def test_unusable_baselines_are_reported(conn, monkeypatch):
    conn.execute(
        "delete from marts.fct_customer_churn_history where period_end_date < '2026-02-28'"
    )
    result = churn.validate(conn, horizon_days=H)
    assert "no period end whose 60-day outcome window is observed" in result.baselines["rule"]
    assert "rule" not in result.metrics.index and "bgnbd" in result.metrics.index

    def no_fit(*args, **kwargs):
        raise ValueError("did not converge")

    monkeypatch.setattr("ml.btyd.BgNbd.fit", no_fit)
    result = churn.validate(conn, horizon_days=H)
    assert result.baselines["bgnbd"] == "BG/NBD not available: ValueError: did not converge"
    assert result.baselines["bgnbd_no_purchase"] == result.baselines["bgnbd"]
    assert list(result.metrics.index) == ["model"] and not result.passed


def test_bgnbd_baselines_at_v(conn):
    scores, params = churn._bgnbd_churn(conn, V, H)
    summary = btyd_summary(conn, V)
    dead, quiet = scores["bgnbd"], scores["bgnbd_no_purchase"]
    assert dead.index.equals(summary.index) and quiet.index.equals(summary.index)
    assert ((quiet >= dead - 1e-12) & (quiet <= 1)).all()  # dead, or alive and no purchase
    # one-time buyers are alive under BG/NBD: only the Gamma posterior of the rate remains
    once = summary["x"] == 0
    t = H / 7
    alpha, r = params["alpha"], params["r"]
    expected = ((alpha + summary["T"]) / (alpha + summary["T"] + t)) ** r
    assert once.sum() > 20 and (dead[once] == 0).all()
    np.testing.assert_allclose(quiet[once], expected[once], rtol=1e-12)


def test_a_history_too_short_for_the_horizon_raises(conn):
    with pytest.raises(ValueError, match="no time-split validation with a 400-day horizon"):
        churn.validate(conn, horizon_days=400)
