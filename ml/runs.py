"""Model runs: the ``ops.model_runs`` ledger, the training cadence and the artefact store.

Every step a model takes (train, validate, score) is one row of
``ops.model_runs`` with its version, parameters, data window, metrics and
artefact path; a step that raises is recorded as failed with its message.

Training follows a cadence fixed by dates, not by the clock: the model used
for business date D is the one trained as of ``training_date(D, cadence)``,
the latest cadence date on or before D (every ``cadence_days`` days from a
fixed Monday). Its artefact is stored once under
``CRM_HOME/models/<model>/<version>/<training date>.pkl``; a later night of
the same cadence period loads it, and a re-run of a past night loads (or, if
deleted, re-trains identically) the same model, so scoring a past as-of date
again gives the same output.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

CADENCE_EPOCH = date(2000, 1, 3)  # a Monday: weekly cadences train on Mondays


def training_date(as_of: date, cadence_days: int) -> date:
    """The cadence date on or before ``as_of`` whose model serves ``as_of``."""
    if cadence_days < 1:
        raise ValueError(f"cadence_days must be 1 or more (got {cadence_days})")
    periods = (as_of - CADENCE_EPOCH).days // cadence_days
    return CADENCE_EPOCH + timedelta(days=periods * cadence_days)


def models_dir() -> Path:
    from include.config import settings

    return settings().home / "models"


def artefact_path(model: str, version: str, trained_as_of: date, root: Path | None = None) -> Path:
    return (root or models_dir()) / model / version / f"{trained_as_of.isoformat()}.pkl"


def save_artefact(obj: Any, path: Path) -> None:
    """Pickle ``obj`` to ``path`` atomically (a killed task leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_artefact(path: Path) -> Any:
    with path.open("rb") as fh:
        return pickle.load(fh)  # noqa: S301 - our own artefacts, written by save_artefact


@dataclass
class Step:
    """An open ``ops.model_runs`` row; set ``metrics``, ``data_from``/``data_to``, ``artefact``."""

    run_id: int
    metrics: dict = field(default_factory=dict)
    data_from: date | None = None
    data_to: date | None = None
    artefact: Path | None = None


@contextmanager
def model_step(
    warehouse_url: str,
    *,
    model: str,
    version: str,
    step: str,
    as_of: date,
    parameters: dict | None = None,
    dag_run_id: str | None = None,
) -> Iterator[Step]:
    """Record one model step; it is committed as running first, so a killed task shows."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        run_id = conn.execute(
            "insert into ops.model_runs (model, model_version, step, as_of_date, parameters,"
            " dag_run_id, status) values (%s, %s, %s, %s, %s, %s, 'running') returning run_id",
            (model, version, step, as_of, _json(parameters or {}), dag_run_id),
        ).fetchone()[0]
    current = Step(run_id)
    try:
        yield current
    except BaseException as exc:
        _finish(warehouse_url, current, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    _finish(warehouse_url, current, "succeeded", None)


def _finish(warehouse_url: str, current: Step, status: str, message: str | None) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(
            "update ops.model_runs set status = %s, message = %s, metrics = %s, data_from = %s,"
            " data_to = %s, artefact_path = %s, finished_at = clock_timestamp()"
            " where run_id = %s",
            (
                status,
                message,
                _json(current.metrics),
                current.data_from,
                current.data_to,
                str(current.artefact) if current.artefact else None,
                current.run_id,
            ),
        )


def _json(value: dict) -> str:
    return json.dumps(value, default=_plain, sort_keys=True)


def _plain(value: Any) -> Any:
    """numpy scalars, dates and paths as JSON values."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, date | Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def load_or_train(
    warehouse_url: str,
    *,
    model: str,
    version: str,
    as_of: date,
    cadence_days: int,
    train: Callable[[date], tuple[Any, dict]],
    parameters: dict | None = None,
    dag_run_id: str | None = None,
    root: Path | None = None,
) -> tuple[Any, date, bool]:
    """The model serving ``as_of``: loaded if its cadence date's artefact exists, else trained.

    ``train(trained_as_of)`` returns the fitted model and the metrics to record.
    Returns (model, trained_as_of, trained_now).
    """
    trained_as_of = training_date(as_of, cadence_days)
    path = artefact_path(model, version, trained_as_of, root)
    if path.exists():
        return load_artefact(path), trained_as_of, False
    with model_step(
        warehouse_url,
        model=model,
        version=version,
        step="train",
        as_of=trained_as_of,
        parameters={**(parameters or {}), "cadence_days": cadence_days},
        dag_run_id=dag_run_id,
    ) as step:
        fitted, metrics = train(trained_as_of)
        save_artefact(fitted, path)
        step.metrics, step.artefact, step.data_to = metrics, path, trained_as_of
    return fitted, trained_as_of, True
