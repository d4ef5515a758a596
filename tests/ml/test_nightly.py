"""The nightly ML tasks on a synthetic warehouse, as the DAG runs them: train where due,
validate, score, stage, publish; a re-run reuses the model and publishes the same rows."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from include.warehouse import apply_schema
from ml import churn, nightly, publish
from ml import customer_forecast as cf
from ml.runs import training_date
from tests.ml.test_customer_forecast import ORDERS, last_day, load, simulate

MODELS = ("churn", "customer_forecast")


@pytest.fixture
def night(feature_db, tmp_path, monkeypatch):
    """A Night on the last day of a 300-day synthetic history (enough for both models),
    with the marts publication checks read: dim_customer (a third not opted in) and the
    RFM population (a purchase in the last 365 days)."""
    monkeypatch.setenv("CRM_HOME", str(tmp_path))  # the model artefacts
    monkeypatch.setenv("WAREHOUSE_URL", feature_db)
    monkeypatch.setenv("SHOP_DB_URL", feature_db)
    apply_schema(feature_db)
    tables = simulate(n=1500, days=300, seed=3)
    as_of = last_day(tables)
    with psycopg.connect(feature_db, autocommit=True) as conn:
        load(conn, tables)
        conn.execute(
            "create table marts.dim_customer as select customer_key,"
            " abs(hashtext(customer_key)) % 3 <> 0 as is_marketing_opt_in"
            f" from (select distinct customer_key from {ORDERS}) c"
        )
        conn.execute(
            "create table marts.fct_customer_rfm as select distinct customer_key,"
            f" %(as_of)s::date as as_of_date from {ORDERS}"
            " where is_purchase and business_date > %(as_of)s::date - 365",
            {"as_of": as_of},
        )
    return nightly.Night(feature_db, as_of, "manual__test")


WINBACK_COLUMNS = (
    "as_of_date", "customer_key", "churn_probability", "churn_percentile", "risk_band",
    "drivers", "priority_rank", "model_version",
)  # fmt: skip


def published(conn, table: str) -> list[tuple]:
    columns = WINBACK_COLUMNS if table == "winback_list" else publish.TABLES[table]
    columns = [c for c in columns if c != "run_id"]
    return conn.execute(
        f"select {', '.join(columns)} from reporting.{table} order by customer_key"
    ).fetchall()


def steps(conn) -> list[tuple]:
    return conn.execute(
        "select model, step, as_of_date, status from ops.model_runs order by run_id"
    ).fetchall()


def test_a_night_trains_scores_and_publishes_and_a_rerun_changes_nothing(night):
    as_of = night.as_of
    first = {
        "churn": nightly.run_churn(night),
        "customer_forecast": nightly.run_customer_forecast(night),
    }

    with psycopg.connect(night.warehouse_url) as conn:
        buyers = conn.execute(
            f"select count(distinct customer_key) from {ORDERS}"
            " where is_purchase and business_date <= %s",
            (as_of,),
        ).fetchone()[0]
        for model in MODELS:
            assert first[model]["customers"] == buyers
            assert first[model]["trained_as_of"] == training_date(as_of, 7)
        done = publish.publish(conn, as_of)
        assert done["churn_scores"] == done["customer_forecast"] == buyers

        # Each model: trained (with its validation) on its cadence date, scored tonight.
        trained = training_date(as_of, 7)
        for model in MODELS:
            assert (model, "validate", trained, "succeeded") in steps(conn)
            assert (model, "train", trained, "succeeded") in steps(conn)
            assert (model, "score", as_of, "succeeded") in steps(conn)
        methods = dict(
            conn.execute(
                "select model, array_agg(distinct method order by method)"
                " from reporting.model_validation group by model"
            ).fetchall()
        )
        assert methods["churn"] == ["bgnbd", "bgnbd_no_purchase", "model"]  # no rule table
        assert methods["customer_forecast"] == ["bgnbd", "ml", "pareto_nbd"]

        # The win-back list: the risky, contactable customers of the published scores.
        scores = {row[1]: row for row in published(conn, "churn_scores")}
        winback = published(conn, "winback_list")
        opted_in = {
            key for key, ok in conn.execute("select * from marts.dim_customer").fetchall() if ok
        }
        expected = {
            key for key, row in scores.items() if row[5] in churn.WINBACK_BANDS and key in opted_in
        }
        assert {row[1] for row in winback} == expected and len(expected) > 50
        ranked = sorted(winback, key=lambda row: row[6])  # priority_rank
        assert [row[2] for row in ranked] == sorted((row[2] for row in ranked), reverse=True)

        forecast = published(conn, "customer_forecast")
        assert all(row[3] == as_of + timedelta(days=1) for row in forecast)
        assert all(row[4] == as_of + timedelta(days=cf.HORIZON_DAYS) for row in forecast)
        before = {t: published(conn, t) for t in ("churn_scores", "customer_forecast")}
        n_steps = len(steps(conn))

    # The same night again (a cleared task): the models are loaded, not retrained, and the
    # publication is the same rows, replaced rather than added.
    again = {
        "churn": nightly.run_churn(night),
        "customer_forecast": nightly.run_customer_forecast(night),
    }
    with psycopg.connect(night.warehouse_url) as conn:
        publish.publish(conn, as_of)
        assert {t: published(conn, t) for t in before} == before
        new = steps(conn)[n_steps:]
        assert sorted(new) == sorted((m, "score", as_of, "succeeded") for m in MODELS)
    assert again == first


def test_a_history_too_short_for_a_model_skips_it_with_the_reason(night):
    early = nightly.Night(night.warehouse_url, night.as_of - timedelta(days=120))
    with pytest.raises(nightly.NotEnoughHistory, match="The churn model needs 208 days"):
        nightly.run_churn(early)
    with pytest.raises(nightly.NotEnoughHistory, match="The customer forecast needs 287 days"):
        nightly.run_customer_forecast(early)
