"""Behavioural segments by clustering (ml/clusters.py), on customers generated here.

``make_customers`` draws customers with the columns of ``customer_features`` from
up to four well-separated behavioural groups (numpy, fixed seeds): frequent
high-value store regulars, recent online bargain hunters, lapsed one-timers and
complainers. No database is needed.
"""

from __future__ import annotations

import json
import pickle
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ml.clusters import (
    MIN_CLUSTER_SHARE,
    MODEL_FEATURES,
    MODEL_VERSION,
    NAME_COLUMNS,
    PROFILE_COLUMNS,
    ClusterModel,
    _unique_names,
    label_churn,
    profiles,
    publication_rows,
    train,
)
from ml.features import FEATURE_COLUMNS, FEATURE_DTYPES, NEVER_DAYS

THREE = {"store_regulars": 600, "online_bargain_hunters": 800, "lapsed_one_timers": 1000}
FOUR = {**THREE, "complainers": 300}


def _group(rng: np.random.Generator, kind: str, n: int) -> pd.DataFrame:
    def lognormal(median: float, sigma: float) -> np.ndarray:
        return rng.lognormal(np.log(median), sigma, n)

    if kind == "store_regulars":
        recency, tenure = rng.integers(0, 15, n), rng.integers(400, 1500, n)
        f365, aov, online = rng.poisson(30, n) + 10, lognormal(700, 0.3), rng.beta(1, 15, n)
        breadth, complaints = rng.integers(5, 9, n), rng.binomial(1, 0.02, n)
        web, tier = rng.poisson(1, n), rng.integers(3, 5, n)
    elif kind == "online_bargain_hunters":
        recency, tenure = rng.integers(0, 30, n), rng.integers(90, 700, n)
        f365, aov, online = rng.poisson(8, n) + 3, lognormal(150, 0.3), rng.beta(15, 1, n)
        breadth, complaints = rng.integers(2, 5, n), rng.binomial(1, 0.02, n)
        web, tier = rng.poisson(25, n) + 5, rng.integers(0, 3, n)
    elif kind == "lapsed_one_timers":
        recency = rng.integers(180, 360, n)
        tenure = recency  # one purchase: first = last
        f365, aov = np.ones(n, dtype=np.int64), lognormal(300, 0.5)
        online = (rng.random(n) < 0.2).astype(float)  # a one-timer is all online or all store
        breadth, complaints = rng.integers(1, 3, n), rng.binomial(1, 0.01, n)
        web, tier = rng.poisson(0.2, n), rng.integers(0, 2, n)
    elif kind == "complainers":
        recency, tenure = rng.integers(60, 200, n), rng.integers(300, 1200, n)
        f365, aov, online = rng.poisson(5, n) + 2, lognormal(400, 0.3), rng.beta(4, 4, n)
        breadth, complaints = rng.integers(2, 6, n), rng.poisson(1.5, n) + 2
        web, tier = rng.poisson(3, n), rng.integers(1, 4, n)
    else:
        raise ValueError(kind)
    frequency = f365 if kind == "lapsed_one_timers" else f365 + rng.poisson(10, n)
    f90 = np.where(recency < 90, np.clip(rng.binomial(f365, 0.25), 1, f365), 0)
    return pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": frequency,
            "frequency_90d": f90,
            "frequency_365d": f365,
            "monetary_90d": f90 * aov,
            "monetary_365d": f365 * aov,
            "monetary_lifetime": frequency * aov,
            "avg_order_value": aov,
            "tenure_days": tenure,
            "online_share": online,
            "category_breadth_365d": breadth,
            "returns_365d": np.minimum(rng.poisson(0.3, n), f365),
            "complaints_365d": complaints,
            "days_since_last_complaint": np.where(
                complaints > 0, rng.integers(0, 365, n), NEVER_DAYS
            ),
            "web_sessions_90d": web,
            "days_since_last_web_session": np.where(web > 0, rng.integers(0, 90, n), NEVER_DAYS),
            "loyalty_tier_rank": tier,
        }
    )


def make_customers(
    sizes: dict[str, int], seed: int, prefix: str = "c"
) -> tuple[pd.DataFrame, pd.Series]:
    """Features like customer_features (index customer_key) and each customer's true group."""
    rng = np.random.default_rng(seed)
    frame = pd.concat([_group(rng, kind, n) for kind, n in sizes.items()], ignore_index=True)
    groups = np.repeat(list(sizes), list(sizes.values()))
    order = rng.permutation(len(frame))
    frame = frame.iloc[order].astype(FEATURE_DTYPES)
    index = pd.Index([f"{prefix}{i:06d}" for i in range(len(frame))], name="customer_key")
    frame.index = index
    return frame, pd.Series(groups[order], index=index, name="group")


def _majority(assigned: pd.DataFrame, groups: pd.Series, column: str) -> dict[str, object]:
    """The segment (id or name) that holds most of each true group."""
    return pd.crosstab(groups, assigned[column]).idxmax(axis=1).to_dict()


@pytest.fixture(scope="module")
def population() -> tuple[pd.DataFrame, pd.Series]:
    return make_customers(FOUR, seed=1)


@pytest.fixture(scope="module")
def model(population) -> ClusterModel:
    return train(population[0])


def test_generated_customers_have_the_feature_columns(population):
    features, _ = population
    assert tuple(features.columns) == FEATURE_COLUMNS
    assert (features.dtypes.astype(str) == pd.Series(FEATURE_DTYPES)).all()
    assert (features["frequency_90d"] <= features["frequency_365d"]).all()
    assert (features["recency_days"] <= features["tenure_days"]).all()
    assert set(MODEL_FEATURES) | set(NAME_COLUMNS) | set(PROFILE_COLUMNS) <= set(FEATURE_COLUMNS)


@pytest.mark.parametrize(
    ("sizes", "k_range"), [(FOUR, (3, 8)), (THREE, (2, 6))], ids=["four-groups", "three-groups"]
)
def test_the_criterion_picks_the_true_number_of_groups_and_recovers_them(sizes, k_range):
    features, groups = make_customers(sizes, seed=2)
    model = train(features, k_range=k_range)
    assert model.k == len(sizes)
    assigned = model.assign(features)
    assert adjusted_rand_score(groups, assigned["segment_id"]) > 0.95
    record = model.as_dict()
    assert [c["k"] for c in record["candidates"]] == list(range(k_range[0], k_range[1] + 1))
    eligible = [c for c in record["candidates"] if c["eligible"]]
    assert max(eligible, key=lambda c: c["silhouette"])["k"] == model.k
    assert record["criterion"] == "silhouette"


def test_a_k_with_a_cluster_below_the_minimum_share_is_not_chosen():
    # 1% complainers: a real but tiny group, which the silhouette alone would split off.
    sizes = {**THREE, "complainers": 24}
    features, groups = make_customers(sizes, seed=3)
    allowed = train(features, min_cluster_share=0.005)
    assert allowed.k == 4
    model = train(features)
    candidates = {c["k"]: c for c in model.as_dict()["candidates"]}
    assert candidates[4]["silhouette"] > candidates[3]["silhouette"]
    assert candidates[4]["min_share"] < MIN_CLUSTER_SHARE and not candidates[4]["eligible"]
    assert model.k == 3
    assert min(s["train_share"] for s in model.as_dict()["segments"]) >= MIN_CLUSTER_SHARE


def test_names_reflect_the_profiles_and_are_unique(population, model):
    features, groups = population
    names = _majority(model.assign(features), groups, "segment_name")
    assert len(set(model.segment_names)) == model.k
    assert names["lapsed_one_timers"].startswith("Lapsed")
    assert "one-timers" in names["lapsed_one_timers"]
    assert "online" in names["online_bargain_hunters"]
    assert "web-engaged" in names["online_bargain_hunters"]
    assert "store regulars" in names["store_regulars"]
    assert "high-value" in names["store_regulars"]
    assert "complaining" in names["complainers"]
    assert all("complaining" not in names[g] for g in names if g != "complainers")


def test_training_is_deterministic_whatever_the_row_order(population, model):
    features, _ = population
    shuffled = features.sample(frac=1.0, random_state=7)
    again = train(shuffled)
    assert again.segment_ids == model.segment_ids
    assert again.segment_names == model.segment_names
    np.testing.assert_array_equal(again.centroids, model.centroids)
    assert again.fingerprint == model.fingerprint
    # a first model numbers its segments by decreasing size
    shares = [s["train_share"] for s in model.as_dict()["segments"]]
    assert model.segment_ids == tuple(range(1, model.k + 1))
    assert shares == sorted(shares, reverse=True)


def test_equal_names_are_told_apart_deterministically():
    # clusters 0 and 1 share a base name and differ most in monetary_365d (column 2)
    centroids = np.zeros((3, len(MODEL_FEATURES)))
    centroids[0, 2], centroids[1, 2], centroids[1, 0] = 1.5, -0.5, 0.2
    base = ["Store shoppers", "Store shoppers", "Online shoppers"]
    ids = {0: 1, 1: 2, 2: 3}
    names = _unique_names(base, centroids, fixed={}, ids=ids)
    assert names == ["Store shoppers (higher value)", "Store shoppers (lower value)", base[2]]
    # a name carried from the previous model stays; the new cluster is told apart from it
    names = _unique_names(base, centroids, fixed={1: "Store shoppers"}, ids=ids)
    assert names == ["Store shoppers (higher value)", "Store shoppers", base[2]]
    # three alike: numbered by segment id after the first
    names = _unique_names(["A"] * 3, centroids, fixed={}, ids={0: 3, 1: 1, 2: 2})
    assert names == ["A 3", "A", "A 2"]


def test_assigning_is_deterministic_and_row_by_row(population, model):
    features, _ = population
    first = model.assign(features)
    pd.testing.assert_frame_equal(first, model.assign(features))
    assert list(first.columns) == ["segment_id", "segment_name", "distance"]
    assert first.index.equals(features.index)
    assert first["segment_id"].dtype == np.int64
    # a part of the customers, in another order, gets the same segments: nothing is
    # fitted on the night's data
    part = features.iloc[::7].iloc[::-1]
    pd.testing.assert_frame_equal(model.assign(part), first.loc[part.index])
    names = dict(zip(model.segment_ids, model.segment_names, strict=True))
    assert (first["segment_name"] == first["segment_id"].map(names)).all()


def test_extreme_values_are_clipped_to_the_training_quantiles(population, model):
    features, _ = population
    row = features.iloc[[0]].copy()
    monetary = MODEL_FEATURES.index("monetary_365d")
    at_bound = row.assign(monetary_365d=model.clip_high[monetary])
    extreme = row.assign(monetary_365d=1e12)
    assert model.clip_high[monetary] < features["monetary_365d"].max()
    np.testing.assert_array_equal(model.transform(extreme), model.transform(at_bound))
    assert (
        model.assign(extreme)["segment_id"].iloc[0] == model.assign(at_bound)["segment_id"].iloc[0]
    )


def test_retraining_on_a_fresh_sample_keeps_ids_and_names(population, model):
    features, groups = population
    # other customers with the same behaviours, in another mix (online the largest group)
    mix = {"online_bargain_hunters": 1100, "lapsed_one_timers": 700, "store_regulars": 500}
    fresh, _ = make_customers({**mix, "complainers": 350}, seed=11, prefix="f")
    retrained = train(fresh, previous=model, random_state=5)
    before = model.assign(features)["segment_id"]
    after = retrained.assign(features)["segment_id"]
    assert (before == after).mean() > 0.99
    assert retrained.segment_ids == model.segment_ids
    assert retrained.segment_names == model.segment_names
    record = retrained.as_dict()
    assert all(s["name_source"] == "carried" for s in record["segments"])
    assert record["previous_fingerprint"] == model.fingerprint
    # without previous= the same training numbers the segments otherwise: the matching
    # is what keeps them
    unmatched = train(fresh, random_state=5).assign(features)["segment_id"]
    assert (before == unmatched).mean() < 0.5


def test_retraining_gives_new_clusters_new_ids_and_never_reuses_old_ones():
    three, _ = make_customers(THREE, seed=4)
    four, groups = make_customers(FOUR, seed=5)
    first = train(three)
    assert first.segment_ids == (1, 2, 3) and first.next_segment_id == 4
    second = train(four, previous=first)
    assert second.segment_ids == (1, 2, 3, 4)
    assert second.segment_names[:3] == first.segment_names
    complainers = _majority(second.assign(four), groups, "segment_id")["complainers"]
    assert complainers == 4
    assert "complaining" in second.name_of(4)
    assert second.as_dict()["segments"][3]["name_source"] == "derived"
    third = train(three, previous=second)
    assert third.segment_ids == (1, 2, 3)
    assert third.as_dict()["retired_segment_ids"] == [4]
    assert third.next_segment_id == 5


def test_perturbing_five_percent_changes_only_those_customers(population, model):
    features, groups = population
    rng = np.random.default_rng(21)
    regulars = groups.index[groups == "store_regulars"]
    moved = pd.Index(rng.choice(regulars, size=len(features) // 20, replace=False))
    lapsed, _ = make_customers({"lapsed_one_timers": len(moved)}, seed=22)
    tonight = pd.concat([features.drop(moved), lapsed.set_axis(moved)]).loc[features.index]
    before = model.assign(features)["segment_id"]
    after = model.assign(tonight)["segment_id"]
    changed = before.index[before != after]
    assert changed.sort_values().equals(moved.sort_values())

    churn = label_churn(before, after)
    assert churn["customers_both"] == len(features)
    assert churn["changed"] == len(moved)
    assert churn["churn"] == pytest.approx(0.05)
    ids = _majority(model.assign(features), groups, "segment_id")
    regular_id, lapsed_id = ids["store_regulars"], ids["lapsed_one_timers"]
    transitions = churn["transitions"]
    assert transitions.loc[regular_id, lapsed_id] == len(moved)
    assert int(transitions.to_numpy().sum()) == len(features)
    assert np.trace(transitions.to_numpy()) == len(features) - len(moved)
    assert churn["churn_by_segment"][regular_id] == pytest.approx(len(moved) / len(regulars))


def test_label_churn_by_hand():
    previous = pd.Series({"a": 1, "b": 1, "c": 2, "d": 3, "e": 2})
    current = pd.Series({"a": 1, "b": 2, "c": 2, "e": 1, "f": 4})
    churn = label_churn(previous, current)
    # in both: a (1->1), b (1->2), c (2->2), e (2->1): 2 of 4 changed
    assert churn["customers_previous"] == 5
    assert churn["customers_current"] == 5
    assert churn["customers_both"] == 4
    assert churn["changed"] == 2
    assert churn["churn"] == 0.5
    assert churn["new_customers"] == 1  # f
    assert churn["gone_customers"] == 1  # d
    assert churn["churn_by_segment"] == {1: 0.5, 2: 0.5}
    expected = pd.DataFrame(
        [[1, 1], [1, 1]],
        index=pd.Index([1, 2], name="previous"),
        columns=pd.Index([1, 2], name="current"),
    )
    pd.testing.assert_frame_equal(churn["transitions"], expected)
    names = label_churn(pd.Series({"x": "Lapsed"}), pd.Series({"x": "Recent"}))
    assert names["churn"] == 1.0
    assert names["transitions"].loc["Lapsed", "Recent"] == 1
    assert names["transitions"].loc["Recent", "Lapsed"] == 0
    assert np.isnan(label_churn(pd.Series({"x": 1}), pd.Series({"y": 1}))["churn"])
    with pytest.raises(ValueError, match="more than once"):
        label_churn(pd.Series([1, 2], index=["x", "x"]), pd.Series({"x": 1}))


def test_profile_table(population, model):
    features, _ = population
    assigned = model.assign(features)
    table = profiles(model, features, assigned)
    assert list(table.index) == list(model.segment_ids)
    assert list(table["segment_name"]) == list(model.segment_names)
    assert table["customers"].sum() == len(features)
    assert table["share"].sum() == pytest.approx(1.0)
    by_hand = features.groupby(assigned["segment_id"])["monetary_365d"]
    pd.testing.assert_series_equal(
        table["monetary_365d_mean"], by_hand.mean(), check_names=False, check_index_type=False
    )
    pd.testing.assert_series_equal(
        table["recency_days_median"],
        features.groupby(assigned["segment_id"])["recency_days"].median().astype(float),
        check_names=False,
        check_index_type=False,
    )
    # a night where one segment has nobody still lists it, with size 0
    some = assigned.index[assigned["segment_id"] != model.segment_ids[-1]]
    partial = profiles(model, features.loc[some], assigned.loc[some])
    assert partial.loc[model.segment_ids[-1], "customers"] == 0
    assert partial["customers"].sum() == len(some)
    assert partial["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no segment"):
        profiles(model, features, assigned.iloc[1:])


def test_pickle_round_trip_assigns_identically(population, model):
    features, _ = population
    loaded = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(loaded.assign(features), model.assign(features))
    assert loaded.fingerprint == model.fingerprint
    record = json.loads(json.dumps(model.as_dict()))
    assert record["k"] == model.k
    assert record["model_version"] == model.model_version
    assert [s["segment_name"] for s in record["segments"]] == list(model.segment_names)


def test_publication_rows(population, model):
    features, _ = population
    rows = publication_rows(model, model.assign(features), as_of=date(2026, 12, 1))
    assert list(rows.columns) == [
        "as_of_date",
        "customer_key",
        "segment_id",
        "segment_name",
        "distance",
        "model_version",
    ]
    assert len(rows) == len(features)
    assert rows["model_version"].unique().tolist() == [f"{MODEL_VERSION}/{model.fingerprint}"]


def test_bad_input_is_refused(population, model):
    features, _ = population
    with pytest.raises(ValueError, match="lack the columns"):
        model.assign(features.drop(columns="online_share"))
    broken = features.astype({"monetary_365d": "float64"}).copy()
    broken.iloc[3, broken.columns.get_loc("monetary_365d")] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        model.assign(broken)
    with pytest.raises(ValueError, match="more than once"):
        train(pd.concat([features, features.iloc[:5]]))
    with pytest.raises(ValueError, match="at least"):
        train(features.iloc[:30])
