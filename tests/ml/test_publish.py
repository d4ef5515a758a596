"""Staged model outputs: checked, then published per as-of date in one transaction."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg
import pytest

from include.warehouse import apply_schema
from ml import publish

AS_OF = date(2026, 11, 30)
KEYS = ["k1", "k2", "k3"]


@pytest.fixture
def conn(fresh_db_url):
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            "create schema if not exists marts;"
            "create table marts.dim_customer"
            " (customer_key text primary key, is_marketing_opt_in boolean not null default true);"
            "create table marts.fct_customer_rfm (customer_key text, as_of_date date)"
        )
        for key in KEYS:
            conn.execute("insert into marts.dim_customer values (%s)", (key,))
            conn.execute("insert into marts.fct_customer_rfm values (%s, %s)", (key, AS_OF))
        conn.commit()
        yield conn


def churn_rows(keys=KEYS, probability=0.4, run_id=1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of_date": AS_OF,
            "customer_key": keys,
            "horizon_days": 90,
            "churn_probability": probability,
            "churn_percentile": 50.0,
            "risk_band": "medium",
            "drivers": "recency_days=40 (+0.10)",
            "model_version": "churn-test",
            "run_id": run_id,
        }
    )


def published(conn, table="churn_scores", columns="customer_key, churn_probability, run_id"):
    order = "priority_rank" if table == "winback_list" else "customer_key"
    return conn.execute(f"select {columns} from reporting.{table} order by {order}").fetchall()


def test_staged_rows_are_published_once_and_a_rerun_replaces_them(conn):
    publish.stage(conn, "churn_scores", AS_OF, churn_rows())
    assert publish.publish(conn, AS_OF) == {"churn_scores": 3, "winback_list": 3}
    publish.stage(conn, "churn_scores", AS_OF, churn_rows(probability=0.5, run_id=2))
    publish.publish(conn, AS_OF)
    assert published(conn) == [(k, 0.5, 2) for k in KEYS]


def test_a_customer_without_a_score_stops_publication_and_keeps_the_previous_one(conn):
    publish.stage(conn, "churn_scores", AS_OF, churn_rows())
    publish.publish(conn, AS_OF)
    publish.stage(conn, "churn_scores", AS_OF, churn_rows(keys=KEYS[:2], run_id=2))
    with pytest.raises(
        RuntimeError, match=r"1 of the 3 customers scored by marts.fct_customer_rfm"
    ):
        publish.publish(conn, AS_OF)
    assert published(conn) == [(k, 0.4, 1) for k in KEYS]


def test_personal_data_as_a_key_and_out_of_range_scores_are_refused(conn):
    rows = churn_rows(keys=[*KEYS, "someone@example.com"], probability=0.4)
    rows.loc[0, "churn_probability"] = 1.5
    publish.stage(conn, "churn_scores", AS_OF, rows)
    problems = publish.check_staged(conn, AS_OF)
    assert any("1 rows whose customer_key is not a pseudonymous key" in p for p in problems)
    assert any("1 rows with a churn probability outside [0, 1]" in p for p in problems)
    with pytest.raises(RuntimeError, match="not published"):
        publish.publish(conn, AS_OF)
    assert published(conn) == []


def test_rows_off_the_contract_are_refused_and_nothing_staged_is_not_a_success(conn):
    with pytest.raises(ValueError, match=r"not in the table \['email'\]"):
        publish.stage(conn, "churn_scores", AS_OF, churn_rows().assign(email="x@example.com"))
    with pytest.raises(RuntimeError, match="no model output is staged for 2026-11-30"):
        publish.publish(conn, AS_OF)


def winback(conn) -> list[tuple]:
    return published(conn, "winback_list", "customer_key, priority_rank, run_id")


def test_the_winback_list_holds_only_risky_customers_who_may_be_contacted(conn):
    conn.execute(
        "update marts.dim_customer set is_marketing_opt_in = false where customer_key = 'k2'"
    )
    rows = churn_rows()
    rows["churn_probability"] = [0.7, 0.9, 0.8]
    rows["risk_band"] = ["high", "high", "low"]
    publish.stage(conn, "churn_scores", AS_OF, rows)
    publish.publish(conn, AS_OF)
    # k2 (the riskiest) opted out; k3 is low risk
    assert winback(conn) == [("k1", 1, 1)]
    # an opt-out that arrives later is out of the next publication of that date
    conn.execute(
        "update marts.dim_customer set is_marketing_opt_in = false where customer_key = 'k1'"
    )
    publish.stage(conn, "churn_scores", AS_OF, rows.assign(run_id=2))
    publish.publish(conn, AS_OF)
    assert winback(conn) == []
