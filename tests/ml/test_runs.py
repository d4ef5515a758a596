"""The model-run ledger, the training cadence and the artefact store."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from include.warehouse import apply_schema
from ml.runs import load_or_train, model_step, training_date


def test_training_date_is_the_cadence_date_on_or_before_the_as_of_date():
    monday = date(2026, 11, 30)
    assert monday.weekday() == 0
    for offset in range(7):
        assert training_date(monday + timedelta(days=offset), 7) == monday
    assert training_date(monday - timedelta(days=1), 7) == monday - timedelta(days=7)
    assert training_date(date(2026, 12, 1), 1) == date(2026, 12, 1)
    with pytest.raises(ValueError, match="cadence_days must be 1 or more"):
        training_date(monday, 0)


@pytest.fixture
def warehouse(fresh_db_url) -> str:
    apply_schema(fresh_db_url)
    return fresh_db_url


def _runs(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select model, step, as_of_date, status, metrics, artefact_path, message"
            " from ops.model_runs order by run_id"
        ).fetchall()


def test_a_model_is_trained_once_per_cadence_period_and_reloaded(warehouse, tmp_path: Path):
    trained: list[date] = []

    def train(as_of: date):
        trained.append(as_of)
        return {"fitted_on": as_of}, {"auc": 0.75}

    kwargs = dict(model="churn", version="v1", cadence_days=7, train=train, root=tmp_path)
    first, on, fresh = load_or_train(warehouse, as_of=date(2026, 12, 2), **kwargs)
    assert (first, on, fresh) == ({"fitted_on": date(2026, 11, 30)}, date(2026, 11, 30), True)
    again, _, fresh = load_or_train(warehouse, as_of=date(2026, 12, 6), **kwargs)
    assert again == first and not fresh
    assert trained == [date(2026, 11, 30)]
    (row,) = _runs(warehouse)
    assert row[:5] == ("churn", "train", date(2026, 11, 30), "succeeded", {"auc": 0.75})
    assert Path(row[5]).is_file() and Path(row[5]).parent.parent.parent == tmp_path
    load_or_train(warehouse, as_of=date(2026, 12, 7), **kwargs)
    assert trained == [date(2026, 11, 30), date(2026, 12, 7)]


def test_a_failing_step_is_recorded_as_failed_with_its_message(warehouse):
    with pytest.raises(ZeroDivisionError):
        with model_step(
            warehouse, model="churn", version="v1", step="score", as_of=date(2026, 12, 1)
        ):
            1 / 0  # noqa: B018
    (row,) = _runs(warehouse)
    assert row[1:4] == ("score", date(2026, 12, 1), "failed")
    assert row[6] == "ZeroDivisionError: division by zero"
