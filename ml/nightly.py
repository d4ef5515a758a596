"""The nightly model steps: one function per model, called by the DAG's ``ml`` tasks.

Each step, for business date D: gets the model serving D (trained on its
cadence, ``CADENCE_DAYS``, or loaded: ``ml.runs.load_or_train``), validates it
against its baselines when it is trained (``reporting.model_validation``),
scores D, and stages the rows for ``ml.publish``. Every step is a row of
``ops.model_runs``. A model whose history is too short for it raises
``NotEnoughHistory`` (the DAG shows the task as skipped, with the reason);
nothing is staged for it and the others still publish.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import psycopg

from ml import publish
from ml.runs import load_artefact, load_or_train, model_step, models_dir, training_date

log = logging.getLogger(__name__)

#: How often each model is re-trained (days; the cadence dates are fixed, see ml.runs).
CADENCE_DAYS = {"clusters": 28, "churn": 7, "customer_forecast": 7, "sales_forecast": 1}


#: Session work_mem of the model steps' warehouse connections.
WORK_MEM = "64MB"


def ml_threads() -> int:
    """Threads each model step may use (CRM_ML_THREADS, default 1).

    One by default: the steps run side by side on a worker, and on a busy
    2-core machine an OpenMP fit with threads took 18 times longer than one
    without.
    """
    value = os.environ.get("CRM_ML_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"CRM_ML_THREADS must be a whole number of 1 or more (got {value!r})")
    return int(value)


class NotEnoughHistory(Exception):
    """The warehouse's history is too short for this model tonight (the message says why)."""


@dataclass(frozen=True)
class Night:
    warehouse_url: str
    as_of: date
    dag_run_id: str | None = None

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.warehouse_url)
        # The feature queries aggregate per customer: at the server's default 4MB a
        # million customers spill to disk and take minutes instead of seconds.
        conn.execute(f"set work_mem = '{WORK_MEM}'")
        conn.commit()
        return conn


def _history_days(conn: psycopg.Connection, as_of: date) -> int:
    """Days from the first purchase in the warehouse to ``as_of`` (0: none)."""
    first = conn.execute(
        "select min(business_date) from intermediate.int_customers__orders"
        " where is_purchase and business_date <= %s",
        (as_of,),
    ).fetchone()[0]
    return 0 if first is None else (as_of - first).days + 1


def _require(conn: psycopg.Connection, as_of: date, days: int, what: str) -> None:
    have = _history_days(conn, as_of)
    if have < days:
        raise NotEnoughHistory(
            f"{what} needs {days} days of purchase history up to {as_of}; the warehouse "
            f"holds {have}: not run tonight"
        )


def _record_validation(
    conn: psycopg.Connection,
    *,
    as_of: date,
    model: str,
    run_id: int,
    rows: list[tuple[str, str, str, str, float | None]],
) -> None:
    with conn.transaction():
        # One validation per model and as-of date: a re-run replaces it.
        conn.execute(
            "delete from reporting.model_validation where as_of_date = %s and model = %s",
            (as_of, model),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into reporting.model_validation (as_of_date, model, method, target,"
                " metric, bucket, value, run_id) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (as_of, model, m, t, k, b, None if v is None or v != v else float(v), run_id)
                    for m, t, k, b, v in rows
                ],
            )


# -- ML segments ---------------------------------------------------------------------------


def _previous_artefact(model: str, version: str, before: date) -> object | None:
    folder = models_dir() / model / version
    older = sorted(p for p in folder.glob("*.pkl") if p.stem < before.isoformat())
    return load_artefact(older[-1]) if older else None


def run_segments(night: Night) -> dict:
    from ml import clusters
    from ml.features import customer_features

    as_of = night.as_of
    needed = clusters.MIN_CUSTOMERS_PER_CLUSTER * clusters.K_RANGE[1]
    trained_on = training_date(as_of, CADENCE_DAYS["clusters"])
    with night.connect() as conn:
        # The model serving tonight is trained as of its cadence date: it needs the buyers.
        buyers = conn.execute(
            "select count(distinct customer_key) from intermediate.int_customers__orders"
            " where is_purchase and business_date <= %s",
            (trained_on,),
        ).fetchone()[0]
        if buyers < needed:
            raise NotEnoughHistory(
                f"ML segments are trained as of {trained_on} (every {CADENCE_DAYS['clusters']} "
                f"days) and need {needed} customers with a purchase by then; there are {buyers}"
            )
        features = customer_features(conn, as_of)

        def train(trained_as_of: date):
            previous = _previous_artefact("clusters", clusters.MODEL_VERSION, trained_as_of)
            fitted = clusters.train(customer_features(conn, trained_as_of), previous=previous)
            return fitted, fitted.as_dict()

        model, trained_as_of, _ = load_or_train(
            night.warehouse_url,
            model="clusters",
            version=clusters.MODEL_VERSION,
            as_of=as_of,
            cadence_days=CADENCE_DAYS["clusters"],
            train=train,
            dag_run_id=night.dag_run_id,
        )
        with model_step(
            night.warehouse_url,
            model="clusters",
            version=clusters.MODEL_VERSION,
            step="score",
            as_of=as_of,
            parameters={"trained_as_of": trained_as_of, "fingerprint": model.fingerprint},
            dag_run_id=night.dag_run_id,
        ) as step:
            assigned = model.assign(features)
            rows = clusters.publication_rows(model, assigned, as_of=as_of)
            rows["run_id"] = step.run_id
            publish.stage(conn, "customer_clusters", as_of, rows)
            table = clusters.profiles(model, features, assigned).reset_index()
            profile_columns = [c for c in table.columns if c.endswith(("_mean", "_median"))]
            table["profile"] = [
                json.dumps({c: _number(r[c]) for c in profile_columns}, sort_keys=True)
                for _, r in table.iterrows()
            ]
            table["as_of_date"] = as_of
            table["model_version"] = rows["model_version"].iloc[0]
            table["run_id"] = step.run_id
            publish.stage(
                conn,
                "customer_cluster_profiles",
                as_of,
                table.loc[:, publish.TABLES["customer_cluster_profiles"]],
            )
            churn = _label_churn(conn, as_of, assigned["segment_id"], clusters.label_churn)
            step.metrics = {
                "customers": len(assigned),
                "segments": dict(
                    zip(table["segment_name"], table["customers"].astype(int), strict=True)
                ),
                "label_churn_vs_previous_night": churn,
            }
            step.data_to = as_of
    return step.metrics


def _number(value) -> float | None:
    value = float(value)
    return None if value != value else round(value, 4)


def _label_churn(
    conn: psycopg.Connection, as_of: date, current: pd.Series, label_churn: Callable
) -> float | None:
    """Share of yesterday's published customers whose ML segment changed tonight."""
    previous = dict(
        conn.execute(
            "select customer_key, segment_id from reporting.customer_clusters where as_of_date = %s",
            (as_of - timedelta(days=1),),
        ).fetchall()
    )
    if not previous:
        return None
    result = label_churn(pd.Series(previous), current)
    return None if result["churn"] != result["churn"] else round(float(result["churn"]), 4)


# -- Sales forecasts -----------------------------------------------------------------------


def run_sales_forecast(night: Night) -> dict:
    from ml import sales_forecast as sf

    as_of = night.as_of
    version = sf.MODEL_VERSION
    with night.connect() as conn:
        _require(conn, as_of, sf.MIN_BACKTEST_TRAIN_DAYS + 1, "The sales forecast")
        history = sf.daily_sales(conn, until=as_of)
        with model_step(
            night.warehouse_url,
            model="sales_forecast",
            version=version,
            step="validate",
            as_of=as_of,
            parameters={"horizon_days": sf.HORIZON_DAYS, "n_cutoffs": sf.N_CUTOFFS},
            dag_run_id=night.dag_run_id,
        ) as step:
            points, metrics = sf.backtest(history)
            rows = []
            for record in metrics.to_dict("records"):
                bucket = f"{record['level']}:{record['horizon_bucket']}"
                for metric in ("wape", "bias", "mase", "rel_mae", "coverage80", "coverage95"):
                    rows.append(("model", "net_sales", metric, bucket, record[metric]))
                for metric, column in (("wape", "wape_naive"), ("mase", "mase_naive")):
                    rows.append(("seasonal_naive", "net_sales", metric, bucket, record[column]))
            _record_validation(
                conn, as_of=as_of, model="sales_forecast", run_id=step.run_id, rows=rows
            )
            cutoffs = sorted(pd.to_datetime(points["cutoff"]).dt.date.unique())
            overall = metrics[metrics["horizon_bucket"] == "all"].set_index("level")
            step.metrics = {
                "cutoffs": [str(c) for c in cutoffs],
                "mase": overall["mase"].round(3).to_dict(),
                "rel_mae": overall["rel_mae"].round(3).to_dict(),
                "coverage80": overall["coverage80"].round(3).to_dict(),
                "coverage95": overall["coverage95"].round(3).to_dict(),
            }
            step.data_to = as_of
            validation = step.metrics
        with model_step(
            night.warehouse_url,
            model="sales_forecast",
            version=version,
            step="score",
            as_of=as_of,
            parameters={"horizon_days": sf.HORIZON_DAYS},
            dag_run_id=night.dag_run_id,
        ) as step:
            frame = sf.forecast(history, cutoff=as_of)
            out = frame.rename(columns={"key": "series_key"})
            out["as_of_date"] = as_of
            out["target_date"] = pd.to_datetime(out["target_date"]).dt.date
            out["run_id"] = step.run_id
            publish.stage(
                conn, "sales_forecast", as_of, out.loc[:, publish.TABLES["sales_forecast"]]
            )
            step.metrics = {
                "series": int(out.groupby(["level", "series_key"]).ngroups),
                "rows": len(out),
            }
            step.data_to = as_of
    return {"validation": validation, **step.metrics}


# -- Churn risk ----------------------------------------------------------------------------


def _churn_validation_rows(validation) -> list[tuple]:
    rows = []
    for scorer, record in validation.metrics.to_dict("index").items():
        for metric in ("roc_auc", "brier", "base_rate"):
            if metric in record:
                rows.append((scorer, "churned", metric, "", record[metric]))
    deciles = validation.deciles
    if {"scorer", "decile", "lift", "observed_rate", "mean_predicted"} <= set(deciles.columns):
        for record in deciles.to_dict("records"):
            bucket = f"decile {int(record['decile'])}"
            for metric in ("lift", "observed_rate", "mean_predicted"):
                rows.append((record["scorer"], "churned", metric, bucket, record[metric]))
    return rows


def run_churn(night: Night) -> dict:
    from ml import churn

    as_of = night.as_of
    horizon = churn.DEFAULT_HORIZON_DAYS
    with night.connect() as conn:
        # A time split needs a validation date with an observed window and a training
        # date whose window ended before it: two horizons of history at least.
        _require(conn, as_of, 2 * horizon + churn.MIN_HISTORY_DAYS, "The churn model")

        def train(trained_as_of: date):
            with model_step(
                night.warehouse_url,
                model="churn",
                version=churn.MODEL_VERSION,
                step="validate",
                as_of=trained_as_of,
                parameters={"horizon_days": horizon},
                dag_run_id=night.dag_run_id,
            ) as check:
                validation = churn.validate(conn, horizon_days=horizon, observed_to=trained_as_of)
                check.metrics = {
                    "validation_as_of": validation.as_of,
                    "metrics": validation.metrics.to_dict("index"),
                    "beats": validation.beats,
                    "baselines": validation.baselines,
                    "notes": validation.notes,
                }
                _record_validation(
                    conn,
                    as_of=trained_as_of,
                    model="churn",
                    run_id=check.run_id,
                    rows=_churn_validation_rows(validation),
                )
            fitted = churn.train(conn, trained_as_of, horizon_days=horizon)
            return fitted, {**fitted.record(), "validation_run_id": check.run_id}

        model, trained_as_of, _ = load_or_train(
            night.warehouse_url,
            model="churn",
            version=churn.MODEL_VERSION,
            as_of=as_of,
            cadence_days=CADENCE_DAYS["churn"],
            train=train,
            dag_run_id=night.dag_run_id,
        )
        with model_step(
            night.warehouse_url,
            model="churn",
            version=churn.MODEL_VERSION,
            step="score",
            as_of=as_of,
            parameters={"trained_as_of": trained_as_of, "horizon_days": horizon},
            dag_run_id=night.dag_run_id,
        ) as step:
            scores = churn.score(model, conn, as_of)
            drivers = [c for c in scores.columns if c.startswith("driver_")]
            out = scores.reset_index().rename(
                columns={
                    scores.index.name or "index": "customer_key",
                    "percentile": "churn_percentile",
                }
            )
            out["drivers"] = [
                "; ".join(d for d in row if d) for row in out[drivers].itertuples(index=False)
            ]
            out["as_of_date"] = as_of
            out["run_id"] = step.run_id
            publish.stage(conn, "churn_scores", as_of, out.loc[:, publish.TABLES["churn_scores"]])
            step.metrics = {
                "customers": len(out),
                "bands": out["risk_band"].value_counts().to_dict(),
                "mean_probability": round(float(out["churn_probability"].mean()), 4),
            }
            step.data_to = as_of
    return {"trained_as_of": trained_as_of, **step.metrics}


# -- Customer-level forecast ---------------------------------------------------------------


def _forecast_validation_rows(validation) -> list[tuple]:
    rows = []
    for (method, target), record in validation.metrics.to_dict("index").items():
        for metric in ("rmse", "mae", "correlation", "total_error_pct"):
            if metric in record:
                rows.append((method, target, metric, "", record[metric]))
    for (bucket, method, target), record in validation.calibration.to_dict("index").items():
        for metric in ("mean_predicted", "mean_actual"):
            if metric in record:
                rows.append((method, target, metric, f"x={bucket}", record[metric]))
    return rows


def run_customer_forecast(night: Night) -> dict:
    from ml import customer_forecast as cf

    as_of = night.as_of
    horizon = cf.HORIZON_DAYS
    with night.connect() as conn:
        _require(conn, as_of, cf.history_needed(horizon, validation=True), "The customer forecast")

        def train(trained_as_of: date):
            with model_step(
                night.warehouse_url,
                model="customer_forecast",
                version=cf.MODEL_VERSION,
                step="validate",
                as_of=trained_as_of,
                parameters={"horizon_days": horizon},
                dag_run_id=night.dag_run_id,
            ) as check:
                validation = cf.validate(conn, horizon_days=horizon, observed_to=trained_as_of)
                check.metrics = validation.record()
                check.data_from, check.data_to = validation.calibration_end, validation.holdout_end
                _record_validation(
                    conn,
                    as_of=trained_as_of,
                    model="customer_forecast",
                    run_id=check.run_id,
                    rows=_forecast_validation_rows(validation),
                )
            fitted = cf.train(conn, trained_as_of, horizon_days=horizon)
            return fitted, {"validation_run_id": check.run_id, "notes": list(fitted.notes)}

        model, trained_as_of, _ = load_or_train(
            night.warehouse_url,
            model="customer_forecast",
            version=cf.MODEL_VERSION,
            as_of=as_of,
            cadence_days=CADENCE_DAYS["customer_forecast"],
            train=train,
            dag_run_id=night.dag_run_id,
        )
        with model_step(
            night.warehouse_url,
            model="customer_forecast",
            version=cf.MODEL_VERSION,
            step="score",
            as_of=as_of,
            parameters={"trained_as_of": trained_as_of, "horizon_days": horizon},
            dag_run_id=night.dag_run_id,
        ) as step:
            scores = cf.score(model, conn, as_of)
            out = scores.reset_index().rename(
                columns={scores.index.name or "index": "customer_key"}
            )
            out["as_of_date"] = as_of
            out["period_start"] = as_of + timedelta(days=1)
            out["period_end"] = as_of + timedelta(days=int(model.horizon_days))
            out["run_id"] = step.run_id
            publish.stage(
                conn, "customer_forecast", as_of, out.loc[:, publish.TABLES["customer_forecast"]]
            )
            step.metrics = {
                "customers": len(out),
                "expected_purchases": round(float(out["expected_purchases"].sum()), 1),
                "expected_spend": round(float(out["expected_spend"].sum()), 2),
            }
            step.data_to = as_of
    return {"trained_as_of": trained_as_of, **step.metrics}


#: The DAG's ml tasks, by task id.
STEPS: dict[str, Callable[[Night], dict]] = {
    "segments": run_segments,
    "churn": run_churn,
    "customer_forecast": run_customer_forecast,
    "sales_forecast": run_sales_forecast,
}


def run(name: str, *, business_date: date, dag_run_id: str | None = None) -> dict:
    """One ml task of the nightly DAG for ``business_date`` (NotEnoughHistory: skip it)."""
    from threadpoolctl import threadpool_limits

    from include.config import settings
    from include.roles import PUBLISHER

    with threadpool_limits(ml_threads()):
        return STEPS[name](Night(settings().url_as(PUBLISHER), business_date, dag_run_id))


def publish_night(business_date: date) -> dict:
    """The DAG's ml.publish task: check the night's staged outputs, then publish them."""
    from include.config import settings
    from include.roles import PUBLISHER
    from ml import accuracy

    with psycopg.connect(settings().url_as(PUBLISHER)) as conn:
        if not any(publish.staged_counts(conn, business_date).values()):
            # Every model skipped (each said why): there is nothing to check or publish.
            raise NotEnoughHistory(
                f"no model ran for {business_date} (each ml task's log says why): "
                "nothing to publish"
            )
        published = publish.publish(conn, business_date)
        published["forecast_accuracy"] = accuracy.refresh(conn, business_date)
    return published
