"""Behavioural segments by clustering: the ML segments, published beside dbt's RFM segments.

The rule-based RFM segmentation stays in dbt (``marts.fct_customer_rfm``,
``ml/segmentation.py`` publishes it). This module clusters customers on their
behaviour as ``ml.features.customer_features`` describes it at a business
date; it reads nothing else and every function here works on frames.

Features and transform
----------------------
``MODEL_FEATURES``, one per behaviour of the issue: recency (``recency_days``),
frequency (``frequency_365d``), monetary (``monetary_365d``), tenure
(``tenure_days``), channel mix (``online_share``), category breadth
(``category_breadth_365d``), complaints (``complaints_365d``) and web engagement
(``web_sessions_90d``). Year windows rather than lifetime values, so a
customer's position does not depend on how long the warehouse's history is.
The transform, fitted on the training sample only:

1. clip each feature to its ``CLIP_QUANTILES`` (0.5% and 99.5%) quantiles, in
   original units: a handful of extreme spenders cannot stretch the scale or
   take a cluster of their own (when both quantiles coincide, e.g. a count that
   is almost always 0, the training min and max are used instead);
2. ``log1p`` of the skewed counts, days and amounts (``LOG_FEATURES``: all but
   ``online_share`` and ``category_breadth_365d``); a negative net spend
   (returns exceeding purchases) counts as 0 there;
3. ``StandardScaler``: every feature in units of its training standard deviation.

The fitted transform and centroids are stored as plain numpy arrays in
``ClusterModel`` (a pickle-able dataclass, no scikit-learn object inside), so a
stored model assigns the same after a scikit-learn upgrade.

Model and number of clusters
----------------------------
``KMeans`` (``N_INIT`` = 10 restarts, ``random_state`` fixed) for every k in
``K_RANGE`` (3-8). Criterion: the **silhouette** of the clustering on a fixed
sample (``SILHOUETTE_SAMPLE_SIZE`` customers, the same seeded sample for every
k); a k is eligible only when no cluster holds less than
``MIN_CLUSTER_SHARE`` (3%) of the training customers. The eligible k with the
highest silhouette wins (ties: the smaller k). When re-training with
``previous=``, the previous k is kept if it is eligible and its silhouette is
within ``K_TOLERANCE`` of the best (a near tie does not change the number of
segments). If no k is eligible, the k with the largest smallest cluster is
taken and a warning says so. Silhouette, inertia and smallest share of every
k are recorded (``ClusterModel.as_dict()``). KMeans rather than a Gaussian
mixture: assignment is "nearest centroid", which is cheap, explainable and
easy to keep stable.

Training uses at most ``TRAIN_SAMPLE_SIZE`` (50,000) customers, drawn with the
seed ``random_state`` from the customers sorted by key (row order does not
matter). Assigning is vectorised numpy: a million customers take about a
second.

Names
-----
Each cluster's name comes from its profile relative to the training
population: its centroid in scaled units (``z``, population standard
deviations from the population mean of the transformed feature) and two
statistics of its members in original units. Words, in this order:

- recency: ``z <= -0.5`` "recent", ``z >= 1`` "lapsed", ``z >= 0.5`` "lapsing";
- value (``monetary_365d``): ``z >= 0.5`` "high-value", ``z <= -0.5`` "low-value";
- channel (mean ``online_share`` of the members): at least 0.65 "online", at
  most 0.35 "store", otherwise "omnichannel";
- noun: "newcomers" when tenure ``z <= -1`` and recency ``z < 0.5`` (new and
  not lapsing), else "one-timers" when the members' median lifetime
  ``frequency`` is 1, else "regulars" when frequency ``z >= 0.5``, else
  "shoppers";
- flags, after a comma: "complaining" (complaints ``z >= 1``), "web-engaged"
  (web sessions ``z >= 1``).

e.g. "Recent high-value store regulars", "Lapsed low-value store one-timers",
"Recent low-value online shoppers, web-engaged". Two clusters with the same name
are told apart by the feature on which their centroids differ most ("... (higher
value)" / "... (lower value)"); anything still equal gets " 2", " 3" in segment
id order.

Stability night to night
------------------------
The model is **trained on a cadence** (e.g. monthly) and stored; every night
only ``ClusterModel.assign`` runs, so segment ids and names are fixed between
trainings and a customer changes segment only when their features changed
(assignment is per row: nothing is fitted on the night's data). When
re-training, pass the stored model as ``previous=``: the old centroids are
mapped into the new scaled space (inverse of the old scaler, then the new one:
the ``log1p`` space is common to both) and matched to the new centroids by the
Hungarian algorithm on Euclidean distance (``scipy.optimize.linear_sum_assignment``);
a pair closer than ``MATCH_MAX_DISTANCE`` (1 standard deviation) keeps the old
segment id *and name*. New clusters get new ids (ids are never reused, see
``next_segment_id``) and derived names. A first model numbers its segments 1..k
by decreasing size. ``label_churn`` measures the share of customers whose
segment changed between two nights (and the transition matrix); report it
every night.

Outputs
-------
- ``ClusterModel.assign(features)``: index ``customer_key``, columns
  ``segment_id``, ``segment_name``, ``distance`` (to the centroid, scaled units);
- ``profiles(model, features, assigned)``: one row per segment: name, size,
  share and the mean and median of ``PROFILE_COLUMNS`` in original units;
- ``publication_rows``: the rows to publish beside the RFM segments, with
  ``model_version`` = ``MODEL_VERSION/fingerprint``;
- ``ClusterModel.as_dict()``: parameters, criterion values and segments, JSON-ready.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

MODEL_VERSION = "behaviour-kmeans-v1"

#: Clustering features, in model order.
MODEL_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency_365d",
    "monetary_365d",
    "tenure_days",
    "online_share",
    "category_breadth_365d",
    "complaints_365d",
    "web_sessions_90d",
)
#: Features transformed with log1p (after clipping; negative values count as 0).
LOG_FEATURES: frozenset[str] = frozenset(
    {
        "recency_days",
        "frequency_365d",
        "monetary_365d",
        "tenure_days",
        "complaints_365d",
        "web_sessions_90d",
    }
)
#: Columns the names need besides the model features.
NAME_COLUMNS: tuple[str, ...] = ("frequency",)
#: Columns of the profile table (mean and median of each, original units).
PROFILE_COLUMNS: tuple[str, ...] = (
    *MODEL_FEATURES,
    "frequency",
    "avg_order_value",
    "returns_365d",
    "loyalty_tier_rank",
)

K_RANGE: tuple[int, int] = (3, 8)  # inclusive
MIN_CLUSTER_SHARE = 0.03
N_INIT = 10
TRAIN_SAMPLE_SIZE = 50_000
SILHOUETTE_SAMPLE_SIZE = 10_000
CLIP_QUANTILES: tuple[float, float] = (0.005, 0.995)
#: Keep the previous model's k when its silhouette is within this of the best.
K_TOLERANCE = 0.02
#: Largest centroid distance (scaled units) at which a new cluster inherits an old one.
MATCH_MAX_DISTANCE = 1.0
#: Threads of KMeans / silhouette (one: results and speed do not depend on the machine's
#: cores, and OpenMP threads on a loaded 2-core host are slower than one).
TRAIN_THREADS = 1
#: Smallest number of training customers per candidate cluster.
MIN_CUSTOMERS_PER_CLUSTER = 10

# Naming thresholds (centroid z-scores; online share in original units).
BAND_Z = 0.5
STRONG_Z = 1.0
ONLINE_SHARE_ONLINE = 0.65
ONLINE_SHARE_STORE = 0.35

#: Words telling two same-named clusters apart: (higher centroid, lower centroid).
_CONTRAST_WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("less recent", "more recent"),
    "frequency_365d": ("more frequent", "less frequent"),
    "monetary_365d": ("higher value", "lower value"),
    "tenure_days": ("longer-standing", "newer"),
    "online_share": ("more online", "more in store"),
    "category_breadth_365d": ("broader baskets", "narrower baskets"),
    "complaints_365d": ("more complaints", "fewer complaints"),
    "web_sessions_90d": ("more web visits", "fewer web visits"),
}

_ASSIGN_CHUNK_ROWS = 1 << 18


@dataclass
class ClusterModel:
    """A fitted transform + centroids, with stable segment ids and names.

    Pickle it to store it (``pickle.dumps(model)``); everything inside is numpy,
    tuples and plain Python.
    """

    features: tuple[str, ...]
    log_features: tuple[str, ...]
    clip_low: np.ndarray
    clip_high: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    #: One row per segment, ordered like segment_ids, in scaled units.
    centroids: np.ndarray
    segment_ids: tuple[int, ...]
    segment_names: tuple[str, ...]
    #: The id the next new segment of a re-training gets (ids are never reused).
    next_segment_id: int
    #: Training record: criterion values per k, matching, sizes (see as_dict).
    info: dict[str, Any] = field(default_factory=dict)
    model_version: str = MODEL_VERSION

    @property
    def k(self) -> int:
        return len(self.segment_ids)

    @property
    def fingerprint(self) -> str:
        """12 hex digits identifying the fitted parameters, ids and names."""
        digest = hashlib.sha256()
        for array in (self.clip_low, self.clip_high, self.center, self.scale, self.centroids):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digest.update(
            json.dumps(
                [
                    self.model_version,
                    self.features,
                    self.log_features,
                    self.segment_ids,
                    self.segment_names,
                ]
            ).encode()
        )
        return digest.hexdigest()[:12]

    def name_of(self, segment_id: int) -> str:
        return self.segment_names[self.segment_ids.index(segment_id)]

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The scaled feature matrix (rows of ``features``, columns ``self.features``)."""
        matrix = _matrix(features, self.features)
        return self._scale(matrix)

    def _scale(self, matrix: np.ndarray) -> np.ndarray:
        np.clip(matrix, self.clip_low, self.clip_high, out=matrix)
        logged = np.array([name in self.log_features for name in self.features])
        matrix[:, logged] = np.log1p(np.maximum(matrix[:, logged], 0.0))
        matrix -= self.center
        matrix /= self.scale
        return matrix

    def assign(self, features: pd.DataFrame) -> pd.DataFrame:
        """Nearest segment of every customer (row) of ``features``.

        Index: that of ``features`` (``customer_key``); columns ``segment_id``
        (int64), ``segment_name``, ``distance`` (Euclidean, scaled units). Each row
        is assigned on its own values: the same features give the same segment
        whatever else is in the frame. Ties go to the smaller segment id.
        """
        n = len(features)
        best = np.zeros(n, dtype=np.intp)
        best_d2 = np.full(n, np.inf)
        for start in range(0, n, _ASSIGN_CHUNK_ROWS):
            stop = min(start + _ASSIGN_CHUNK_ROWS, n)
            z = self.transform(features.iloc[start:stop])
            chunk_best = best[start:stop]
            chunk_d2 = best_d2[start:stop]
            for j, centroid in enumerate(self.centroids):
                d2 = np.square(z - centroid).sum(axis=1)
                closer = d2 < chunk_d2
                chunk_best[closer] = j
                chunk_d2[closer] = d2[closer]
        ids = np.asarray(self.segment_ids, dtype=np.int64)[best]
        names = np.asarray(self.segment_names, dtype=object)[best]
        return pd.DataFrame(
            {"segment_id": ids, "segment_name": names, "distance": np.sqrt(best_d2)},
            index=features.index,
        )

    def centroids_original(self) -> pd.DataFrame:
        """Centroids back in original units (index segment_id): the transform inverted.

        For log1p features this is a geometric-type mean of the members, not
        their arithmetic mean (``profiles`` gives those).
        """
        values = self.centroids * self.scale + self.center
        logged = np.array([name in self.log_features for name in self.features])
        values[:, logged] = np.expm1(values[:, logged])
        return pd.DataFrame(
            values, index=pd.Index(self.segment_ids, name="segment_id"), columns=self.features
        )

    def as_dict(self) -> dict[str, Any]:
        """Parameters, criterion values and segments, JSON-serialisable (a model run record)."""
        centroids = self.centroids_original()
        segments = []
        for j, segment_id in enumerate(self.segment_ids):
            segment = {
                "segment_id": int(segment_id),
                "segment_name": self.segment_names[j],
                "centroid_z": _floats(dict(zip(self.features, self.centroids[j], strict=True))),
                "centroid": _floats(centroids.loc[segment_id].to_dict()),
            }
            segment.update(self.info.get("segments", {}).get(int(segment_id), {}))
            segments.append(segment)
        record = {key: value for key, value in self.info.items() if key != "segments"}
        return {
            "model_version": self.model_version,
            "fingerprint": self.fingerprint,
            "features": list(self.features),
            "log_features": list(self.log_features),
            "clip": {
                name: [float(lo), float(hi)]
                for name, lo, hi in zip(self.features, self.clip_low, self.clip_high, strict=True)
            },
            "scaler": {
                name: {"mean": float(c), "scale": float(s)}
                for name, c, s in zip(self.features, self.center, self.scale, strict=True)
            },
            "k": self.k,
            "next_segment_id": int(self.next_segment_id),
            **record,
            "segments": segments,
        }


def train(
    features: pd.DataFrame,
    *,
    previous: ClusterModel | None = None,
    random_state: int = 0,
    k_range: tuple[int, int] = K_RANGE,
    min_cluster_share: float = MIN_CLUSTER_SHARE,
    sample_size: int = TRAIN_SAMPLE_SIZE,
    silhouette_sample_size: int = SILHOUETTE_SAMPLE_SIZE,
) -> ClusterModel:
    """Fit the transform and KMeans on (a sample of) ``features``; choose k; name the segments.

    ``features``: ``customer_features`` output (index customer_key; needs
    ``MODEL_FEATURES`` and ``NAME_COLUMNS``). ``previous``: the stored model, whose
    segment ids and names carry over to the clusters that match its centroids.
    Deterministic for a given input set and ``random_state``.
    """
    k_min, k_max = (int(k) for k in k_range)
    if not 2 <= k_min <= k_max:
        raise ValueError(f"k_range must be (k_min, k_max) with 2 <= k_min <= k_max, got {k_range}")
    _check_index(features)
    frame = features.sort_index()
    n_customers = len(frame)
    if n_customers < MIN_CUSTOMERS_PER_CLUSTER * k_max:
        raise ValueError(
            f"{n_customers} customers: at least {MIN_CUSTOMERS_PER_CLUSTER * k_max} are needed "
            f"to try up to {k_max} clusters"
        )
    if n_customers > sample_size:
        rng = np.random.default_rng(random_state)
        frame = frame.iloc[np.sort(rng.choice(n_customers, sample_size, replace=False))]
    raw = _matrix(frame, MODEL_FEATURES)
    stats_frame = frame.loc[:, list(NAME_COLUMNS) + ["online_share"]]
    if stats_frame.isna().any().any():
        raise ValueError(f"features hold missing values in {list(NAME_COLUMNS)}")

    clip_low, clip_high = _clip_bounds(raw)
    logged = tuple(name for name in MODEL_FEATURES if name in LOG_FEATURES)
    model = ClusterModel(
        features=MODEL_FEATURES,
        log_features=logged,
        clip_low=clip_low,
        clip_high=clip_high,
        center=np.zeros(len(MODEL_FEATURES)),
        scale=np.ones(len(MODEL_FEATURES)),
        centroids=np.zeros((0, len(MODEL_FEATURES))),
        segment_ids=(),
        segment_names=(),
        next_segment_id=1,
    )
    unscaled = model._scale(raw.copy())
    scaler = StandardScaler().fit(unscaled)
    model.center = scaler.mean_.copy()
    model.scale = scaler.scale_.copy()
    z = (unscaled - model.center) / model.scale

    n_train = len(z)
    with threadpool_limits(TRAIN_THREADS):
        candidates, fits = _candidates(
            z, range(k_min, k_max + 1), min_cluster_share, silhouette_sample_size, random_state
        )
    k, reason = _choose_k(candidates, previous)
    kmeans = fits[k]
    labels = kmeans.labels_
    centroids = kmeans.cluster_centers_
    shares = np.bincount(labels, minlength=k) / n_train

    # Member statistics in original units (for the names).
    stats = pd.DataFrame(
        {
            "frequency_median": stats_frame["frequency"].groupby(labels).median(),
            "online_share_mean": stats_frame["online_share"].groupby(labels).mean(),
        }
    ).reindex(range(k))
    base_names = [
        _base_name(dict(zip(MODEL_FEATURES, centroids[j], strict=True)), stats.iloc[j])
        for j in range(k)
    ]

    # Segment ids and names: carried over from matching previous clusters, else new.
    order = sorted(range(k), key=lambda j: (-shares[j], tuple(centroids[j])))
    carried: dict[int, tuple[int, str, float]] = {}
    next_id = 1
    previous_fingerprint = None
    if previous is not None:
        previous_fingerprint = previous.fingerprint
        next_id = int(previous.next_segment_id)
        if previous.features == model.features and previous.log_features == model.log_features:
            carried = _match(model, centroids, previous)
        else:
            warnings.warn(
                "the previous model uses other features: no segment carries over",
                stacklevel=2,
            )
    ids: dict[int, int] = {}
    for j in order:
        if j in carried:
            ids[j] = carried[j][0]
        else:
            ids[j] = next_id
            next_id += 1
    names = _unique_names(
        base_names,
        centroids,
        fixed={j: name for j, (_, name, _) in carried.items()},
        ids=ids,
    )

    by_id = sorted(range(k), key=lambda j: ids[j])
    model.centroids = centroids[by_id].copy()
    model.segment_ids = tuple(int(ids[j]) for j in by_id)
    model.segment_names = tuple(names[j] for j in by_id)
    model.next_segment_id = next_id
    model.info = {
        "criterion": "silhouette",
        "k_range": [k_min, k_max],
        "min_cluster_share": float(min_cluster_share),
        "k_reason": reason,
        "candidates": candidates,
        "random_state": int(random_state),
        "n_customers": int(n_customers),
        "n_train": int(n_train),
        "n_init": N_INIT,
        "silhouette_sample_size": int(min(silhouette_sample_size, n_train)),
        "clip_quantiles": list(CLIP_QUANTILES),
        "match_max_distance": MATCH_MAX_DISTANCE,
        "previous_fingerprint": previous_fingerprint,
        "segments": {
            int(ids[j]): {
                "train_share": float(shares[j]),
                "name_source": "carried" if j in carried else "derived",
                "derived_name": names[j] if j not in carried else base_names[j],
                "previous_segment_id": carried[j][0] if j in carried else None,
                "match_distance": carried[j][2] if j in carried else None,
            }
            for j in range(k)
        },
    }
    if previous is not None:
        kept = {carried[j][0] for j in carried}
        model.info["retired_segment_ids"] = [int(s) for s in previous.segment_ids if s not in kept]
    log.info(
        "trained %s on %d of %d customers: k=%d (%s), segments %s",
        MODEL_VERSION,
        n_train,
        n_customers,
        k,
        reason,
        dict(zip(model.segment_ids, model.segment_names, strict=True)),
    )
    return model


def profiles(model: ClusterModel, features: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """One row per segment of ``model`` (index segment_id, empty segments included).

    Columns ``segment_name``, ``customers``, ``share`` (of the customers of
    ``features``) and ``<column>_mean`` / ``<column>_median`` of
    ``PROFILE_COLUMNS`` in original units. ``assigned`` is ``model.assign(features)``
    (or a frame with its ``segment_id`` per customer_key).
    """
    _check_index(features)
    segment = assigned["segment_id"].reindex(features.index)
    if segment.isna().any():
        raise ValueError(f"{int(segment.isna().sum())} customers of features have no segment")
    unknown = set(segment.unique()) - set(model.segment_ids)
    if unknown:
        raise ValueError(f"segment ids {sorted(unknown)} are not segments of the model")
    segment = segment.astype("int64")
    ids = pd.Index(model.segment_ids, name="segment_id")
    columns = [c for c in PROFILE_COLUMNS if c in features.columns]
    grouped = features.loc[:, columns].groupby(segment.to_numpy())
    means = grouped.mean().reindex(ids)
    medians = grouped.median().reindex(ids)
    counts = segment.value_counts().reindex(ids, fill_value=0).astype("int64")
    table = pd.DataFrame(index=ids)
    table["segment_name"] = list(model.segment_names)
    table["customers"] = counts.to_numpy()
    table["share"] = counts.to_numpy() / max(len(segment), 1)
    for column in columns:
        table[f"{column}_mean"] = means[column].to_numpy()
        table[f"{column}_median"] = medians[column].to_numpy()
    return table


def label_churn(previous: pd.Series, current: pd.Series) -> dict[str, Any]:
    """How many customers changed segment between two nights.

    ``previous`` and ``current``: segment (id or name) per customer_key, e.g.
    ``assigned["segment_id"]`` of two nights. Only customers present in both
    count towards the churn. Returns ``customers_previous``,
    ``customers_current``, ``customers_both``, ``changed``, ``churn`` (changed /
    customers_both, NaN when no customer is in both), ``new_customers`` (only in
    current), ``gone_customers`` (only in previous), ``churn_by_segment`` (per
    previous segment: share of its customers in both that moved) and
    ``transitions`` (counts, rows = previous segment, columns = current segment,
    every label of either night on both axes).
    """
    previous = previous.dropna()
    current = current.dropna()
    for name, series in (("previous", previous), ("current", current)):
        if not series.index.is_unique:
            raise ValueError(f"{name} lists a customer more than once")
    both = previous.index.intersection(current.index)
    before = previous.loc[both].to_numpy()
    after = current.loc[both].to_numpy()
    moved = before != after
    changed = int(moved.sum())
    labels = _sorted_labels(set(before) | set(after))
    transitions = (
        pd.crosstab(
            pd.Series(before, name="previous"), pd.Series(after, name="current"), dropna=False
        )
        .reindex(index=labels, columns=labels, fill_value=0)
        .astype("int64")
    )
    transitions.index.name, transitions.columns.name = "previous", "current"
    by_segment = {}
    for label in _sorted_labels(set(before)):
        mask = before == label
        by_segment[_plain(label)] = float(moved[mask].mean())
    return {
        "customers_previous": int(len(previous)),
        "customers_current": int(len(current)),
        "customers_both": int(len(both)),
        "changed": changed,
        "churn": changed / len(both) if len(both) else float("nan"),
        "new_customers": int(len(current) - len(both)),
        "gone_customers": int(len(previous) - len(both)),
        "churn_by_segment": by_segment,
        "transitions": transitions,
    }


def publication_rows(model: ClusterModel, assigned: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """Rows to publish beside the RFM segments: as_of_date, customer_key, segment, model version."""
    frame = assigned.loc[:, ["segment_id", "segment_name", "distance"]].reset_index()
    frame = frame.rename(columns={frame.columns[0]: "customer_key"})
    frame.insert(0, "as_of_date", as_of)
    frame["model_version"] = f"{model.model_version}/{model.fingerprint}"
    return frame


# -- helpers ---------------------------------------------------------------------------------


def _check_index(features: pd.DataFrame) -> None:
    if not features.index.is_unique:
        raise ValueError("features list a customer more than once (index must be unique)")


def _matrix(features: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the columns {missing} (see ml.features.FEATURE_COLUMNS)")
    matrix = features.loc[:, list(columns)].to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(matrix)
    if bad.any():
        where = [c for c, b in zip(columns, bad.any(axis=0), strict=True) if b]
        raise ValueError(f"{int(bad.any(axis=1).sum())} customers have missing values in {where}")
    return matrix


def _clip_bounds(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = np.quantile(raw, CLIP_QUANTILES[0], axis=0)
    high = np.quantile(raw, CLIP_QUANTILES[1], axis=0)
    collapsed = high <= low
    low[collapsed] = raw[:, collapsed].min(axis=0)
    high[collapsed] = raw[:, collapsed].max(axis=0)
    return low, high


def _candidates(
    z: np.ndarray,
    ks: range,
    min_cluster_share: float,
    silhouette_sample_size: int,
    random_state: int,
) -> tuple[list[dict], dict[int, KMeans]]:
    """KMeans for every k, with its silhouette (same seeded sample for every k) and sizes."""
    n_train = len(z)
    sample = silhouette_sample_size if n_train > silhouette_sample_size else None
    candidates, fits = [], {}
    for k in ks:
        kmeans = KMeans(n_clusters=k, n_init=N_INIT, random_state=random_state).fit(z)
        labels = kmeans.labels_
        shares = np.bincount(labels, minlength=k) / n_train
        if len(np.unique(labels)) < 2:
            silhouette = float("nan")
        else:
            silhouette = float(
                silhouette_score(z, labels, sample_size=sample, random_state=random_state)
            )
        candidates.append(
            {
                "k": k,
                "silhouette": silhouette,
                "inertia": float(kmeans.inertia_),
                "min_share": float(shares.min()),
                "eligible": bool(shares.min() >= min_cluster_share and np.isfinite(silhouette)),
            }
        )
        fits[k] = kmeans
    return candidates, fits


def _choose_k(candidates: list[dict], previous: ClusterModel | None) -> tuple[int, str]:
    eligible = [c for c in candidates if c["eligible"]]
    if not eligible:
        best = max(candidates, key=lambda c: (c["min_share"], -c["k"]))
        msg = (
            f"no k in {[c['k'] for c in candidates]} gives every cluster at least the minimum "
            f"share; taking k={best['k']}, whose smallest cluster is largest "
            f"({best['min_share']:.1%})"
        )
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
        return best["k"], "no k eligible: largest smallest cluster"
    best = max(eligible, key=lambda c: (c["silhouette"], -c["k"]))
    if previous is not None and previous.k != best["k"]:
        same = [c for c in eligible if c["k"] == previous.k]
        if same and same[0]["silhouette"] >= best["silhouette"] - K_TOLERANCE:
            return previous.k, (
                f"previous k kept: silhouette {same[0]['silhouette']:.3f} within "
                f"{K_TOLERANCE} of the best ({best['silhouette']:.3f} at k={best['k']})"
            )
    return best["k"], f"highest silhouette among eligible k ({best['silhouette']:.3f})"


def _match(
    model: ClusterModel, centroids: np.ndarray, previous: ClusterModel
) -> dict[int, tuple[int, str, float]]:
    """New cluster index -> (previous segment id, name, distance) for the matched pairs."""
    old = (previous.centroids * previous.scale + previous.center - model.center) / model.scale
    cost = cdist(centroids, old)
    rows, cols = linear_sum_assignment(cost)
    return {
        int(r): (int(previous.segment_ids[c]), previous.segment_names[c], float(cost[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if cost[r, c] <= MATCH_MAX_DISTANCE
    }


def _base_name(z: dict[str, float], stats: pd.Series) -> str:
    words = []
    recency = z["recency_days"]
    if recency <= -BAND_Z:
        words.append("recent")
    elif recency >= STRONG_Z:
        words.append("lapsed")
    elif recency >= BAND_Z:
        words.append("lapsing")
    if z["monetary_365d"] >= BAND_Z:
        words.append("high-value")
    elif z["monetary_365d"] <= -BAND_Z:
        words.append("low-value")
    online = stats["online_share_mean"]
    if online >= ONLINE_SHARE_ONLINE:
        words.append("online")
    elif online <= ONLINE_SHARE_STORE:
        words.append("store")
    else:
        words.append("omnichannel")
    if z["tenure_days"] <= -STRONG_Z and recency < BAND_Z:
        words.append("newcomers")
    elif stats["frequency_median"] <= 1:
        words.append("one-timers")
    elif z["frequency_365d"] >= BAND_Z:
        words.append("regulars")
    else:
        words.append("shoppers")
    flags = []
    if z["complaints_365d"] >= STRONG_Z:
        flags.append("complaining")
    if z["web_sessions_90d"] >= STRONG_Z:
        flags.append("web-engaged")
    name = " ".join(words)
    name = name[0].upper() + name[1:]
    return ", ".join([name, *flags])


def _unique_names(
    base: list[str], centroids: np.ndarray, *, fixed: dict[int, str], ids: dict[int, int]
) -> list[str]:
    """Names per cluster index: fixed ones kept, equal derived ones told apart."""
    names = [fixed.get(j, base[j]) for j in range(len(base))]
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(name, []).append(j)
    for name, members in groups.items():
        if len(members) < 2:
            continue
        spread = np.ptp(centroids[members], axis=0)
        feature = int(np.argmax(spread))
        more, less = _CONTRAST_WORDS[MODEL_FEATURES[feature]]
        values = centroids[members, feature]
        if len(members) == 2:
            for j in members:
                if j not in fixed:
                    word = more if centroids[j, feature] == values.max() else less
                    names[j] = f"{name} ({word})"
        else:
            ranked = sorted(members, key=lambda j: ids[j])
            for rank, j in enumerate(ranked, start=1):
                if j not in fixed and rank > 1:
                    names[j] = f"{name} {rank}"
    # Whatever still collides (a contrast name equal to a fixed one): number by segment id.
    seen: dict[str, int] = {}
    for j in sorted(range(len(names)), key=lambda j: (j not in fixed, ids[j])):
        name = names[j]
        if name in seen:
            count = seen[name] + 1
            while f"{name} {count}" in names:
                count += 1
            seen[name] = count
            names[j] = f"{name} {count}"
        else:
            seen[name] = 1
    return names


def _sorted_labels(labels: set) -> list:
    try:
        return sorted(labels)
    except TypeError:
        return sorted(labels, key=str)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()}
