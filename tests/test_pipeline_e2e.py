"""The whole nightly pipeline with real Airflow against the embedded warehouse, on
simulated data, along every path a night can take:

1. `crm run` (Airflow's `dags test`, in one process) for the first two nights;
2. a real scheduler (`crm stack start`: scheduler, dag-processor, triggerer,
   api-server, and CeleryExecutor with two workers on Redis, or LocalExecutor
   where no Redis answers): a backfill of both nights created through the REST
   API runs them one at a time in date order and leaves every table as the
   `dags test` runs did;
3. a night triggered through the REST API whose dbt test fails: the run fails,
   dbt's skips are Airflow skips, nothing is published, the failure is posted to
   the alert webhook; after the fix, clearing `dbt.build` re-runs what failed;
4. a night whose raw gate fails stops before dbt, and `crm run` runs no later night.

Each Airflow state of a dbt node is compared with dbt's own run_results.json.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)
DAYS = 16  # two more days than the nights below that publish: the failing nights'
LAST = START + timedelta(days=DAYS - 3)
FIRST_NIGHT = LAST - timedelta(days=1)
FAILING_DBT_NIGHT = LAST + timedelta(days=1)
FAILING_GATE_NIGHT = LAST + timedelta(days=2)
PUBLISHED_SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts", "pii", "reporting")


def crm(home: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "include.cli", *args],
        env={**os.environ, "CRM_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0 or not check, (
        f"crm {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def world(test_server):
    home = test_server.home
    crm(
        home,
        "simulate",
        "--start",
        START.isoformat(),
        "--days",
        str(DAYS),
        "--customers",
        "400",
        "--stores",
        "3",
        "--quiet",
    )
    url = test_server.url("warehouse")
    first = crm(home, "run", "--date", FIRST_NIGHT.isoformat())
    with psycopg.connect(url) as conn:
        after_first = conn.execute("select count(*) from raw.pos_lines").fetchone()[0]
    crm(home, "run", "--date", LAST.isoformat())
    return {
        "home": home,
        "url": url,
        "shop": test_server.url("shop"),
        "airflow": test_server.url("airflow"),
        "first": first,
        "pos_after_first": after_first,
        "tables": table_checksums(url),
    }


def airflow_rows(world, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(world["airflow"]) as conn:
        return conn.execute(sql, params).fetchall()


def run_of(world, business_date: date) -> tuple[str, str]:
    """(run_id, state) of the DAG run for a business date."""
    from include.airflow_env import logical_date_for

    rows = airflow_rows(
        world,
        "select run_id, state from dag_run where dag_id = 'crm_nightly' and logical_date = %s",
        (logical_date_for(business_date),),
    )
    assert len(rows) == 1, rows
    return rows[0]


def task_states(world, run_id: str) -> dict[str, tuple[str, str | None]]:
    rows = airflow_rows(
        world,
        "select task_id, state, hostname from task_instance where run_id = %s",
        (run_id,),
    )
    return {task: (state, host) for task, state, host in rows}


def assert_states_match_dbt(world, run_id: str) -> dict:
    """Every dbt status task's Airflow state is what dbt's own run_results.json says."""
    from include.dbt_build import OK_STATUSES, project_graph, run_dir

    graph = project_graph()
    results: dict[str, str] = {}
    attempts = sorted(run_dir(run_id, world["home"]).iterdir(), key=lambda p: int(p.name))
    assert attempts, f"no run_results.json kept for {run_id}"
    for attempt in attempts:  # later attempts override earlier ones, as in ops.dbt_node_results
        data = json.loads((attempt / "run_results.json").read_text())
        results.update({r["unique_id"]: r["status"] for r in data["results"]})
    states = task_states(world, run_id)
    checked = 0
    for uid, node in graph.nodes.items():
        mine = [results.get(u) for u in (uid, *node.tests)]
        if all(s in OK_STATUSES for s in mine):
            expected = "success"
        elif any(s is None for s in mine):
            expected = "failed"
        elif all(s in OK_STATUSES | {"skipped"} for s in mine):
            expected = "skipped"
        else:
            expected = "failed"
        group = node.group
        assert states[f"dbt.{group}.{node.name}"][0] == expected, (node.name, mine)
        checked += 1
    assert checked == len(graph.nodes)
    return results


def data_rows(path: Path) -> int:
    """Count a landing file's records independently of the loader."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    if ".csv" in path.name:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return max(len(rows) - 1, 0)
    return sum(1 for line in text.splitlines() if line.strip())


# Two weeks of history: too short for every model (the segments are trained as of
# 2026-10-05, with five days of buyers), so each ml task skips saying why, and so does
# ml.publish; everything else succeeds. (The models' path through Airflow is measured on
# the demo's 15 months: BENCHMARKS.md.)
SHORT_HISTORY_SKIPS = {
    "ml.segments", "ml.churn", "ml.customer_forecast", "ml.sales_forecast", "ml.publish",
}  # fmt: skip


def assert_night_succeeded(states: dict) -> None:
    not_success = {task: state for task, (state, _) in states.items() if state != "success"}
    assert not_success == dict.fromkeys(SHORT_HISTORY_SKIPS, "skipped"), not_success


def test_two_nights_through_dags_test(world):
    from expectations import privacy
    from include import access
    from include.demo import privacy_lines

    for night in (FIRST_NIGHT, LAST):
        run_id, state = run_of(world, night)
        assert state == "success"
        assert_night_succeeded(task_states(world, run_id))
        results = assert_states_match_dbt(world, run_id)
        assert len(results) > 800  # models, seeds, snapshots and every test: one dbt build
    with psycopg.connect(world["url"]) as conn:
        assert (
            conn.execute("select count(*) from raw.pos_lines").fetchone()[0]
            > world["pos_after_first"]
        )
        published = dict(
            conn.execute(
                "select as_of_date, count(*) from reporting.customer_segments group by 1"
            ).fetchall()
        )
        assert set(published) == {FIRST_NIGHT, LAST}
        assert all(n > 50 for n in published.values())
        # Skipped before any model step: nothing trained, staged or published.
        assert conn.execute("select count(*) from ops.model_runs").fetchone()[0] == 0
        assert conn.execute("select count(*) from reporting.customer_clusters").fetchone()[0] == 0
        assert conn.execute("select max(business_date) from marts.fct_sales").fetchone()[0] == LAST
        # dbt source freshness ran each night, judged at the end of that business day: the
        # tills and the tracker sent that day's data, although by the clock of this test
        # run (weeks later) dbt itself calls them stale.
        freshness = conn.execute(
            "select business_date, table_name, success, detail from ops.quality_results"
            " where gate = 'source_freshness'"
        ).fetchall()
        for night in (FIRST_NIGHT, LAST):
            judged = {t: (ok, detail) for d, t, ok, detail in freshness if d == night}
            assert {"raw.pos_lines", "raw.web_events", "raw.shop_orders"} <= set(judged)
            for table in ("raw.pos_lines", "raw.web_events"):
                ok, detail = judged[table]
                assert ok and "fresh" in detail and "run's clock: warn" in detail, detail
        assert (
            conn.execute("select count(distinct channel) from marts.fct_sales").fetchone()[0] == 2
        )
        # the night's build applied the department grants, and every privacy check passed
        assert access.drift(conn) == []
        checks = {suite: (good, bad) for suite, _, good, bad in privacy.verdict(conn, LAST)}
        assert set(checks) >= {"privacy_columns", "access_grants", "privacy_content"}
        assert {s: bad for s, (_, bad) in checks.items() if s != "privacy_requests"} == {
            s: 0 for s in checks if s != "privacy_requests"
        }
    assert privacy_lines(world["url"], LAST)[0].endswith(": passed")
    # the night's report for people, written by the DAG after publication
    page = (world["home"] / "reports" / LAST.isoformat() / "index.html").read_text()
    assert "Privacy verdict: <b data-kpi='privacy' class='pass'>passed</b>" in page
    assert "<section id='sales'>" in page and "<section id='service'>" in page


def table_checksums(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema = any(%s) and table_type = 'BASE TABLE'",
            (list(PUBLISHED_SCHEMAS),),
        ).fetchall()
        return {
            t: conn.execute(
                # Without run_id: the lineage of a re-run is its own, its rows must not differ.
                "select count(*) || ':' || coalesce(md5(string_agg(j, '|' order by j)), '')"
                f" from (select (to_jsonb(r) - 'run_id')::text as j from {t} r) rows"
            ).fetchone()[0]
            for (t,) in tables
        }


@pytest.fixture(scope="module")
def scheduler(world, module_webhook_server):
    """One Airflow stack for the module: Celery with two workers where Redis answers,
    else LocalExecutor; failed tasks post to the module's webhook receiver."""
    from include.airflow_stack import api_for, read_state, redis_answers

    executor = "celery" if redis_answers() else "local"
    args = ["--workers", "2"] if executor == "celery" else []
    crm(
        world["home"], "stack", "start", "--executor", executor, *args, "--no-schedule",
        CRM_ALERT_WEBHOOK_URL=module_webhook_server.url,
    )  # fmt: skip
    yield {"executor": executor, "api": api_for(read_state(world["home"]), world["home"])}
    crm(world["home"], "stack", "stop", check=False)


@pytest.fixture(scope="module")
def backfill(world, scheduler):
    out = crm(
        world["home"], "backfill", "--from", FIRST_NIGHT.isoformat(), "--to", LAST.isoformat()
    )
    return {"output": out.stdout, "tables": table_checksums(world["url"])}


def test_a_backfill_through_the_api_runs_nights_in_order_and_changes_nothing(world, backfill):
    """Both nights again on the scheduler, one at a time in date order: every table ends as
    the `dags test` runs left it (nothing lost or duplicated, the same results)."""
    changed = sorted(t for t in world["tables"] if world["tables"][t] != backfill["tables"].get(t))
    assert not changed, f"tables changed by a backfill: {changed}"
    first, last = (run_of(world, d)[0] for d in (FIRST_NIGHT, LAST))
    spans = airflow_rows(
        world,
        "select run_id, run_type, state, start_date, end_date from dag_run"
        " where run_id = any(%s) order by start_date",
        ([first, last],),
    )
    assert [r[0] for r in spans] == [first, last], "nights ran out of date order"
    assert all(r[1] == "backfill" and r[2] == "success" for r in spans), spans
    assert spans[0][4] <= spans[1][3], "the two nights overlapped"
    for run in (first, last):
        # The backfill built again (attempt 2 of each run), it did not just mark success.
        assert len(list(_run_dirs(world, run))) >= 2
        assert_night_succeeded(task_states(world, run))
        assert_states_match_dbt(world, run)


def test_the_local_airflow_ui_and_api_need_the_login_crm_stack_start_made(world, scheduler):
    import urllib.error
    import urllib.request

    from include.airflow_stack import AirflowApi

    api = scheduler["api"]
    assert api.login is not None and api.get("/api/v2/dags")["total_entries"] == 1
    for path in ("/auth/token", "/api/v2/dags"):  # no token for nobody, no API without one
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api.url + path, timeout=30)
        assert refused.value.code in (401, 403), path
    with pytest.raises(Exception, match="HTTP 40[13]"):
        AirflowApi(api.url, login=("admin", "wrong")).get("/api/v2/dags")
    password_file = world["home"] / "airflow" / "ui_passwords.json"
    assert password_file.stat().st_mode & 0o077 == 0


def test_both_celery_workers_ran_tasks(world, scheduler, backfill):
    if scheduler["executor"] != "celery":
        pytest.skip("No Redis answers at 127.0.0.1:6379, so the stack ran LocalExecutor.")
    hosts = {
        host
        for run in (run_of(world, d)[0] for d in (FIRST_NIGHT, LAST))
        for _, host in task_states(world, run).values()
        if host and "worker-" in host
    }
    assert {h.rsplit("-", 2)[-2] + "-" + h.rsplit("-", 1)[-1] for h in hosts} == {
        "worker-1",
        "worker-2",
    }, f"task instances name these workers: {hosts}"


def _run_dirs(world, run_id):
    from include.dbt_build import run_dir

    return run_dir(run_id, world["home"]).iterdir()


def test_a_failing_dbt_test_fails_the_night_and_clearing_the_build_recovers(
    world, scheduler, backfill, module_webhook_server
):
    """A night triggered through the API, as a user or another system would. A store
    listed twice in the store master fails stg_stores__stores' unique test (an error): the
    run fails, the nodes dbt skipped are skipped, nothing is published, and the failure
    reaches the alert webhook. After the fix, clearing dbt.build (with its downstream
    tasks) builds only what failed or was skipped, and the night is published."""
    # Every day is simulated up front: simulating a day after its night ran rewrites
    # web files of the UTC date that night already loaded (web files are by UTC hour).
    night = FAILING_DBT_NIGHT
    api = scheduler["api"]
    duplicate = (
        "insert into raw.stores select store_code, store_name, district, region, opened_on,"
        " closed_on, _load_id, _file, -1 from raw.stores"
        " where _load_id = (select max(_load_id) from raw.stores) order by store_code limit 1"
    )
    with psycopg.connect(world["url"]) as conn:
        conn.execute(duplicate)
        published_before = conn.execute(
            "select count(*) from reporting.customer_segments"
        ).fetchone()[0]
    run_id = api.trigger(night)
    assert api.wait_run(run_id, timeout=1200) == "failed"
    states = task_states(world, run_id)
    assert states["dbt.build"][0] == "failed"
    assert states["dbt.staging.stg_stores__stores"][0] == "failed"
    assert states["publish_segments"][0] == "upstream_failed"
    skipped = [t for t, (s, _) in states.items() if s == "skipped" and t.startswith("dbt.")]
    assert skipped, "dbt skipped the descendants of the failed node; Airflow must show it"
    assert_states_match_dbt(world, run_id)
    alerts = {(a["task_id"], a["business_date"]) for a in map(json.loads, module_webhook_server)}
    assert ("dbt.build", night.isoformat()) in alerts, alerts
    with psycopg.connect(world["url"]) as conn:
        assert conn.execute("select count(*) from reporting.customer_segments").fetchone()[0] == (
            published_before
        )
        conn.execute("delete from raw.stores where _line = -1")
    api.post(
        "/api/v2/dags/crm_nightly/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": ["dbt.build"],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
            "dry_run": False,
        },
    )
    assert api.wait_run(run_id, timeout=1200) == "success"
    with psycopg.connect(world["url"]) as conn:
        attempts = dict(
            conn.execute(
                "select attempt, count(*) from ops.dbt_node_results where dag_run_id = %s"
                " group by 1",
                (run_id,),
            ).fetchall()
        )
        assert set(attempts) == {1, 2}
        assert attempts[2] < attempts[1], "the second attempt rebuilt more than what failed"
        assert (
            conn.execute(
                "select count(*) from reporting.customer_segments where as_of_date = %s", (night,)
            ).fetchone()[0]
            > 50
        )
    assert_states_match_dbt(world, run_id)
    crm(world["home"], "stack", "stop")


def test_a_failed_critical_expectation_stops_publication(world):
    """Breaks raw data on purpose: the night must fail at the raw gate and leave the
    published segments exactly as they were (the store master is put back after)."""
    from include.airflow_env import logical_date_for

    night = FAILING_GATE_NIGHT
    with psycopg.connect(world["url"]) as conn:
        conn.execute("create table public.stores_kept as select * from raw.stores")
        conn.execute("delete from raw.stores")
        before = conn.execute(
            "select as_of_date, count(*) from reporting.customer_segments group by 1"
        ).fetchall()
    # Two nights asked for: the first fails, so the second must not run at all.
    result = crm(world["home"], "run", "--date", night.isoformat(), "--days", "2", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"The night of {night} failed at gate_raw" in result.stderr
    assert f"night {night + timedelta(days=1)}" not in result.stdout
    assert not airflow_rows(
        world,
        "select run_id from dag_run where dag_id = 'crm_nightly' and logical_date = %s",
        (logical_date_for(night + timedelta(days=1)),),
    )
    log = (world["home"] / "logs" / "nightly").glob(f"{night}*.log")
    output += "".join(p.read_text() for p in log)
    assert "raw.stores" in output
    with psycopg.connect(world["url"]) as conn:
        after = conn.execute(
            "select as_of_date, count(*) from reporting.customer_segments group by 1"
        ).fetchall()
        conn.execute("insert into raw.stores select * from public.stores_kept")
        conn.execute("drop table public.stores_kept")
    assert sorted(after) == sorted(before)


def test_every_landing_row_is_loaded_or_quarantined(world):
    """After every night (the last two failed after their loads): each landing file's
    rows are in raw or in quarantine, as its ledger row says."""
    landing = world["home"] / "landing"
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    assert len(files) > DAYS * 5
    with psycopg.connect(world["url"]) as conn:
        loaded = dict(
            conn.execute(
                "select _file, count(*) from (select _file from raw.pos_lines union all select _file from raw.stores"
                " union all select _file from raw.loyalty_members union all select _file from raw.web_events"
                " union all select _file from raw.complaint_tickets union all select _file from raw.privacy_requests) f"
                " group by _file"
            ).fetchall()
        )
        quarantined = dict(
            conn.execute(
                "select object, count(*) from quarantine.rejected_rows group by object"
            ).fetchall()
        )
        ledger = dict(
            conn.execute(
                "select object, rows_read from ops.load_ledger where status = 'loaded'"
                " and source <> 'shop'"
            ).fetchall()
        )
        failed = conn.execute(
            "select count(*) from ops.load_ledger where status <> 'loaded'"
        ).fetchone()[0]
    assert failed == 0
    for path in files:
        key = path.relative_to(landing).as_posix()
        expected = data_rows(path)
        assert ledger.get(key) == expected, key
        assert loaded.get(key, 0) + quarantined.get(key, 0) == expected, key


def test_every_shop_row_version_reached_raw(world):
    with psycopg.connect(world["shop"]) as shop, psycopg.connect(world["url"]) as wh:
        for table, key in [
            ("customers", "customer_id, updated_at"),
            ("orders", "order_id, updated_at"),
            ("order_items", "order_id, line_no"),
            ("products", "sku, updated_at"),
        ]:
            source = set(shop.execute(f"select {key} from public.{table}").fetchall())
            landed = set(wh.execute(f"select {key} from raw.shop_{table}").fetchall())
            assert source and source <= landed, f"{table}: {len(source - landed)} rows missing"
