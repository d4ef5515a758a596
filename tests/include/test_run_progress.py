"""`crm run`: dates it refuses, the progress line read from Airflow's metadata
tables, the failure message, and the check that a run actually ran something.

No Airflow run here: the metadata tables are minimal real ``dag_run`` and
``task_instance`` tables (the columns ``include.airflow_env`` reads) in a fresh
PostgreSQL database.
"""

from __future__ import annotations

import io
import time
from datetime import date, timedelta

import psycopg
import pytest

from include import airflow_env
from include import nights as nights_module
from include.airflow_env import (
    DAG_ID,
    NightProgress,
    RunStatus,
    check_ran,
    error_lines,
    failure_report,
    format_duration,
    logical_date_for,
    psycopg_url,
    read_run,
    stage_of,
)
from include.cli import main
from include.config import CrmError
from include.pipeline import last_complete_business_date

DAY = date(2026, 11, 20)

# ---- dates `crm run` refuses before starting Airflow ----


@pytest.fixture
def started_nights(monkeypatch) -> list[date]:
    """Nights `crm run` would have started (Airflow's process replaced by a recorder)."""
    nights: list[date] = []

    def run_nights(first, days=1, **kwargs):
        nights.extend(first + timedelta(days=n) for n in range(days))

    monkeypatch.setattr(nights_module, "run_nights", run_nights, raising=True)
    return nights


def _refused(capsys, *argv: str) -> str:
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crm: ") and "\n" not in err, err  # one sentence, no traceback
    return err


def test_refuses_a_date_before_the_dag_start(capsys, started_nights):
    err = _refused(capsys, "--date", "1969-12-31")
    assert "before the nightly DAG's start date 1970-01-01" in err
    assert started_nights == []
    # a history that ended long ago runs for its own as-of date
    assert main(["run", "--date", "1997-09-30"]) == 0
    assert started_nights == [date(1997, 9, 30)]


@pytest.mark.parametrize("ahead", [1, 2], ids=["today", "tomorrow"])
def test_refuses_a_day_that_has_not_ended(capsys, started_nights, ahead):
    day = last_complete_business_date() + timedelta(days=ahead)
    err = _refused(capsys, "--date", day.isoformat())
    assert f"{day} has not ended in Hong Kong" in err
    assert started_nights == []


def test_refuses_a_range_running_past_the_last_complete_day_as_a_whole(capsys, started_nights):
    latest = last_complete_business_date()
    first = latest - timedelta(days=1)
    err = _refused(capsys, "--date", first.isoformat(), "--days", "3")
    assert f"{first} to {latest + timedelta(days=1)}" in err and "nothing was run" in err
    assert started_nights == []  # not even the two nights that could run


def test_runs_a_range_ending_at_the_last_complete_day(capsys, started_nights):
    latest = last_complete_business_date()
    assert main(["run", "--date", (latest - timedelta(days=2)).isoformat(), "--days", "3"]) == 0
    assert started_nights == [latest - timedelta(days=n) for n in (2, 1, 0)]


def test_refuses_no_days(capsys, started_nights):
    err = _refused(capsys, "--date", "2020-01-01", "--days", "0")
    assert "--days must be 1 or more" in err


# ---- stages ----


@pytest.mark.parametrize(
    ("task_id", "stage"),
    [
        ("extract_shop", "loads"),
        ("load_pos", "loads"),
        ("load_privacy", "loads"),
        ("gate_raw", "raw gate"),
        ("dbt.build", "dbt build"),
        ("dbt.staging.stg_pos__sales", "dbt status"),
        ("dbt.marts.fct_sales_tests", "dbt status"),
        ("dbt.cross_model_tests", "dbt status"),
        ("gate_marts", "marts gate"),
        ("publish_segments", "publish"),
    ],
)
def test_stage_of(task_id, stage):
    assert stage_of(task_id) == stage


def _status(*tasks: tuple[str, str | None], state: str = "running") -> RunStatus:
    return RunStatus(run_id="manual__x", state=state, tasks=tuple(tasks))


def test_stage_is_the_working_tasks_else_the_first_unfinished_one():
    assert _status(("load_pos", "success"), ("load_web", "running")).stage == "loads"
    both = _status(("dbt.build", "running"), ("dbt.staging.a", "deferred"))
    assert both.stage == "dbt build + dbt status"
    between = _status(("load_pos", "success"), ("gate_raw", None), ("gate_marts", None))
    assert between.stage == "raw gate"
    failing = _status(
        ("gate_raw", "failed"), ("dbt.build", "upstream_failed"), ("gate_marts", None)
    )
    assert failing.stage == "raw gate failed"
    assert _status(("publish_segments", "success")).stage is None
    assert _status().stage is None


def test_format_duration():
    assert format_duration(45.9) == "0:45"
    assert format_duration(83) == "1:23"
    assert format_duration(3723) == "1:02:03"


def test_psycopg_url_from_airflow_setting():
    assert psycopg_url("postgresql+psycopg2://u:p@h:5/airflow") == "postgresql://u:p@h:5/airflow"
    with pytest.raises(CrmError, match="must be PostgreSQL"):
        psycopg_url("sqlite:////tmp/airflow.db")


# ---- the poller against real metadata-shaped tables ----

METADATA = """
create table dag_run (
    id serial primary key, dag_id text not null, run_id text not null,
    logical_date timestamptz, state text
);
create table task_instance (
    dag_id text not null, run_id text not null, task_id text not null,
    map_index integer not null default -1, state text
);
"""


def _add_run(conn, run_id: str, state: str, tasks: dict[str, str | None], day: date = DAY) -> int:
    (run_pk,) = conn.execute(
        "insert into dag_run (dag_id, run_id, logical_date, state) values (%s, %s, %s, %s)"
        " returning id",
        (DAG_ID, run_id, logical_date_for(day), state),
    ).fetchone()
    for task_id, task_state in tasks.items():
        conn.execute(
            "insert into task_instance (dag_id, run_id, task_id, state) values (%s, %s, %s, %s)",
            (DAG_ID, run_id, task_id, task_state),
        )
    return run_pk


def _set(conn, run_id: str, **states: str) -> None:
    for task_id, state in states.items():
        conn.execute(
            "update task_instance set state = %s where run_id = %s and task_id = %s",
            (state, run_id, task_id.replace("__", ".")),
        )


NIGHT = {
    "extract_shop": None,
    "load_pos": None,
    "gate_raw": None,
    "dbt.build": None,
    "dbt.staging.stg_pos__sales": None,
    "dbt.cross_model_tests": None,
    "gate_marts": None,
    "publish_segments": None,
}


def test_poller_tolerates_a_run_and_tables_that_do_not_exist_yet(fresh_db_url):
    out = io.StringIO()
    meter = NightProgress(fresh_db_url, DAY, out=out, tty=False)
    assert meter.poll() is None  # no tables at all: Airflow has not migrated yet
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(METADATA)
    assert meter.poll() is None  # tables, but no run yet
    meter.show()
    assert out.getvalue() == f"night {DAY}  stage: starting    tasks -/-      elapsed 0:00\n"


def test_poller_follows_the_new_run_and_names_the_failed_task_and_the_log(fresh_db_url, tmp_path):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(METADATA)
        # An older run of the same night, which `airflow dags test` is about to replace.
        old = _add_run(conn, "manual__old", "success", dict.fromkeys(NIGHT, "success"))
        out = io.StringIO()
        meter = NightProgress(fresh_db_url, DAY, after_id=old, out=out, tty=False)
        assert meter.poll() is None  # the old run is not this one

        _add_run(conn, "manual__new", "running", NIGHT)
        _set(conn, "manual__new", extract_shop="running", load_pos="running")
        meter.poll()
        meter.show()
        _set(conn, "manual__new", extract_shop="success")
        meter.poll()
        meter.show()  # same stage: no new line
        _set(conn, "manual__new", load_pos="success", gate_raw="success", dbt__build="running")
        meter.poll()
        meter.show()
        _set(
            conn,
            "manual__new",
            dbt__build="failed",
            dbt__staging__stg_pos__sales="upstream_failed",
            dbt__cross_model_tests="upstream_failed",
            gate_marts="upstream_failed",
            publish_segments="upstream_failed",
        )
        conn.execute("update dag_run set state = 'failed' where run_id = 'manual__new'")
        status = meter.poll()
    lines = out.getvalue().splitlines()
    assert [line.split("  stage: ")[1].split("  tasks")[0].strip() for line in lines] == [
        "loads",
        "dbt build",
    ]
    assert "tasks 0/8" in lines[0] and "tasks 3/8" in lines[1]
    assert status.run_id == "manual__new" and status.failed == ["dbt.build"]

    log = tmp_path / "2026-11-20.log"
    log.write_text(
        "===== an earlier night =====\n[error] something from last week\n",
        encoding="utf-8",
    )
    offset = log.stat().st_size
    with log.open("a", encoding="utf-8") as f:
        f.write(AIRFLOW_LOG)
    text, message = failure_report(
        status, DAY, elapsed="0:52", log_path=log, returncode=1, log_offset=offset
    )
    head, *shown = text.splitlines()
    assert head == f"night {DAY}: FAILED at dbt.build after 0:52; log: {log}"
    assert shown == [
        "  20:12:04  Failure in model fct_sales (models/marts/fct_sales.sql)",
        "  20:12:04    Database Error in model fct_sales: division by zero",
        "  20:12:05  Done. PASS=930 WARN=0 ERROR=1 SKIP=6 NO-OP=4 TOTAL=941",
        "  2026-12-01T20:14:25.813579Z [error    ] Task failed with exception     [task]",
        "  include.config.CrmError: dbt build failed for 1 node:",
        "    - model.crm.fct_sales: division by zero",
        "  2026-12-01T20:14:25.819004Z [error    ] CRM pipeline task failed: task=dbt.build",
        "  DagRun failed",
    ]
    assert "dbt.build" in message and str(log) in message and message.count(". ") == 0


# The shape of `airflow dags test` output: structlog records, a traceback, dbt's lines.
AIRFLOW_LOG = """\
2026-12-01T20:12:53.333607Z [info     ] pos: 40 file(s) loaded (3606 rows, 0 quarantined), 0 failed
2026-12-01T20:12:53.5Z [info     ] _get_default_value called with key "row_condition"
\x1b[31m20:12:04  Failure in model fct_sales (models/marts/fct_sales.sql)\x1b[0m
20:12:04    Database Error in model fct_sales: division by zero
20:12:05  Done. PASS=930 WARN=0 ERROR=1 SKIP=6 NO-OP=4 TOTAL=941
2026-12-01T20:14:25.813579Z [error    ] Task failed with exception     [task]
Traceback (most recent call last):
  File "/work/main/include/dbt_build.py", line 300, in build
    raise CrmError(message)
    ^^^^^^^^^^^^^^^^^^^^^^^
include.config.CrmError: dbt build failed for 1 node:
  - model.crm.fct_sales: division by zero
2026-12-01T20:14:25.819004Z [error    ] CRM pipeline task failed: task=dbt.build
2026-12-01T20:14:25.900515Z [info     ] Marking run <DagRun crm_nightly> failed
DagRun failed
"""


def test_failure_without_a_failed_task_says_how_airflow_exited(tmp_path):
    text, message = failure_report(
        None, DAY, elapsed="0:05", log_path=tmp_path / "missing.log", returncode=1
    )
    assert text == (
        f"night {DAY}: FAILED at no task (airflow exited with code 1) after 0:05; "
        f"log: {tmp_path / 'missing.log'}"
    )


def test_error_lines_keeps_the_last_thirty(tmp_path):
    log = tmp_path / "n.log"
    log.write_text("".join(f"ERROR number {i}\nfine {i}\n" for i in range(50)), encoding="utf-8")
    lines = error_lines(log)
    assert len(lines) == 30 and lines[0] == "ERROR number 20" and lines[-1] == "ERROR number 49"


def test_poller_thread_rewrites_one_line_on_a_terminal(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(METADATA)
        _add_run(conn, "manual__tty", "running", {"load_pos": "success", "gate_raw": "running"})
    out = io.StringIO()
    meter = NightProgress(fresh_db_url, DAY, out=out, tty=True, interval=0.02).start()
    time.sleep(0.3)
    meter.stop()
    meter.finish(f"night {DAY}: success in 0:01 (2 tasks)")
    text = out.getvalue()
    assert "\n" not in text[:-1] and text.count("\r") >= 3
    assert "stage: raw gate    tasks 1/2" in text
    assert text.rsplit("\r", 1)[1].rstrip() == f"night {DAY}: success in 0:01 (2 tasks)"


def test_a_failure_report_overwrites_the_whole_status_line():
    out = io.StringIO()
    meter = NightProgress("postgresql://unused/x", DAY, out=out, tty=True)
    meter.show()
    meter.finish("night: FAILED\n  an error line")
    line = meter.line()
    assert out.getvalue() == f"\r{line}\r{'night: FAILED'.ljust(len(line))}\n  an error line\n"


# ---- a successful exit must have run something ----


def test_a_run_that_ran_no_task_is_not_a_success(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(METADATA)
        _add_run(conn, "manual__empty", "success", {})
        _add_run(conn, "manual__removed", "success", {"load_pos": "removed"}, DAY + timedelta(1))
        empty = read_run(conn, DAY)
        removed = read_run(conn, DAY + timedelta(1))
    assert empty is not None and empty.total == 0
    with pytest.raises(CrmError, match=f"Airflow ran no task for business date {DAY}"):
        check_ran(empty, DAY)
    with pytest.raises(CrmError, match="Airflow ran no task"):
        check_ran(removed, DAY + timedelta(1))
    with pytest.raises(CrmError, match="Airflow ran no task"):
        check_ran(None, DAY)  # the run is not in the metadata DB at all


def test_a_run_must_end_in_success():
    with pytest.raises(CrmError, match="is 'failed', not 'success'"):
        check_ran(_status(("load_pos", "success"), state="failed"), DAY)
    ok = _status(("load_pos", "success"), ("gate_raw", "skipped"), state="success")
    assert check_ran(ok, DAY) is ok


def test_migration_is_redone_when_the_metadata_database_lost_its_schema(fresh_db_url):
    """The stamp in AIRFLOW_HOME survives `crm warehouse destroy`; the schema does not."""
    sqlalchemy_url = fresh_db_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    assert not airflow_env._has_schema(sqlalchemy_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("create table alembic_version (version_num text primary key)")
    assert airflow_env._has_schema(sqlalchemy_url)
