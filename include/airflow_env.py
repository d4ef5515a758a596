"""Run real Airflow 3 against this project: environment, metadata DB, nightly runs.

Airflow's metadata lives in the embedded server's ``airflow`` database (or
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` when set), ``AIRFLOW_HOME`` under
``CRM_HOME``, DAGs from the repository's ``dags/`` folder. Telemetry of Airflow,
dbt and GX is switched off: this platform sends nothing anywhere.

The progress line of a night (``NightProgress``) is read from the metadata
DB's ``dag_run`` and ``task_instance`` tables about once a second; dates the
DAG cannot run (before its start, not ended in Hong Kong) are refused before
Airflow starts, and a run that ran nothing is never reported as a success.
``include.nights`` runs the nights.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import threading
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import psycopg

from include.config import HK_TZ, REPO_ROOT, CrmError, settings

DAG_ID = "crm_nightly"

TELEMETRY_OFF = {
    "AIRFLOW__CORE__ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
}


def airflow_env() -> dict[str, str]:
    """The environment of every Airflow process of this project, from the settings.

    The tasks read the warehouse, shop and landing zone from the same settings
    (include/config.py), so no Airflow connection is needed.
    """
    cfg = settings()
    home = cfg.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    meta = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or _metadata_url(cfg)
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "CRM_HOME": str(cfg.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": os.environ.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get(
            "AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"
        ),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return env


def _metadata_url(cfg) -> str:
    if not cfg.embedded:
        raise CrmError(
            "WAREHOUSE_URL is set, so Airflow's metadata database is not the embedded one: "
            "set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to a PostgreSQL database for Airflow."
        )
    from include.warehouse import EmbeddedWarehouse

    url = EmbeddedWarehouse(cfg.home).airflow_url()
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _airflow(
    *args: str, env: dict[str, str], check: bool = True, log: IO[str] | None = None
) -> subprocess.CompletedProcess:
    """Run the venv's ``airflow``; its output goes to ``log`` when given, else the terminal."""
    out = {"stdout": log, "stderr": subprocess.STDOUT} if log is not None else {}
    result = subprocess.run([_airflow_bin(), *args], env=env, cwd=REPO_ROOT, **out)
    if check and result.returncode != 0:
        where = f"see {log.name}" if log is not None else "see its output above"
        raise CrmError(
            f"'airflow {' '.join(args)}' failed with exit code {result.returncode}; {where}."
        )
    return result


def migrate(env: dict[str, str], *, log: IO[str] | None = None) -> None:
    """Create or upgrade Airflow's metadata schema once per Airflow version.

    Again when the metadata database has no schema although the stamp says so
    (``crm warehouse destroy`` deletes the database, not ``AIRFLOW_HOME``).
    """
    # The distribution's metadata, not `import airflow` (which costs seconds).
    version = importlib.metadata.version("apache-airflow")
    stamp = Path(env["AIRFLOW_HOME"]) / f".migrated-{version}"
    if stamp.exists() and _has_schema(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]):
        return
    if log is not None:
        print(f"Migrating Airflow's metadata database to {version} (once) ...", flush=True)
    _airflow("db", "migrate", env=env, log=log)
    stamp.touch()


def _has_schema(sqlalchemy_url: str) -> bool:
    """Whether Airflow's metadata database has been migrated (has ``alembic_version``)."""
    try:
        url = psycopg_url(sqlalchemy_url)
    except CrmError:
        return True  # not PostgreSQL: trust the stamp
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return conn.execute("select to_regclass('alembic_version')").fetchone()[0] is not None
    except psycopg.Error:
        return True  # unreachable: migrating would not help, the run will say what is wrong


def logical_date_for(business_date: date) -> datetime:
    """The logical date of the run for that Hong Kong business day: D+1 00:00 Hong Kong time.

    The nightly DAG runs at the midnight that ends the day, and ``airflow dags
    test`` is given that midnight (see the schedule in dags/crm_nightly.py).
    """
    from include.pipeline import end_of

    return end_of(business_date)


def check_business_dates(first: date, days: int = 1) -> None:
    """Refuse, in one sentence, nights the DAG cannot run: before its start or not yet ended.

    A range is refused as a whole, before anything runs.
    """
    from include.dag_defaults import START_DATE
    from include.pipeline import check_runnable, last_complete_business_date

    start = START_DATE.astimezone(ZoneInfo(HK_TZ)).date()
    latest = last_complete_business_date()
    last = first + timedelta(days=days - 1)
    if days < 1:
        raise CrmError(f"--days must be 1 or more (got {days}): nothing was run.")
    if first < start:
        raise CrmError(
            f"Business date {first} is before the nightly DAG's start date {start}: nothing was run."
        )
    check_runnable(first)  # the DAG's own refusal of a day that has not ended
    if last > latest:
        raise CrmError(
            f"The nights {first} to {last} run past the latest complete day in Hong Kong "
            f"({latest}): nothing was run; end the range at {latest} or earlier."
        )


# ---- progress of one nightly run, read from Airflow's metadata database ----

STAGES = ("loads", "raw gate", "dbt build", "dbt status", "marts gate", "publish")
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
WORKING_STATES = frozenset({"running", "deferred", "restarting", "up_for_retry"})
# Log lines worth showing after a failure: Airflow's, dbt's and GX's messages.
_ERROR_LINE = re.compile(r"error|fail", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# One Airflow (structlog) record: `2026-12-01T20:14:25.813579Z [error    ] ...`.
_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z? \[(\w+)\s*\]")
_TRACEBACK_STARTS = (
    "Traceback (most recent call last)",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_NO_ERRORS = re.compile(r"\bERROR=0\b|\b0 failed\b")
ERROR_LINES = 30


def stage_of(task_id: str) -> str:
    """The stage of the nightly DAG a task belongs to (see dags/crm_nightly.py)."""
    if task_id == "extract_shop" or task_id.startswith("load_"):
        return "loads"
    if task_id == "gate_raw":
        return "raw gate"
    if task_id == "dbt.build":
        return "dbt build"
    if task_id.startswith("dbt."):
        return "dbt status"
    if task_id == "gate_marts":
        return "marts gate"
    if task_id == "publish_segments":
        return "publish"
    return task_id


@dataclass(frozen=True)
class RunStatus:
    """One DAG run and the states of its task instances, as the metadata DB has them."""

    run_id: str
    state: str | None
    tasks: tuple[tuple[str, str | None], ...]  # (task_id, state), mapped tasks once per index

    @property
    def total(self) -> int:
        return len(self.tasks)

    @property
    def finished(self) -> int:
        return sum(state in FINISHED_STATES for _, state in self.tasks)

    @property
    def succeeded(self) -> int:
        return sum(state == "success" for _, state in self.tasks)

    @property
    def failed(self) -> list[str]:
        return sorted({task for task, state in self.tasks if state == "failed"})

    @property
    def stage(self) -> str | None:
        """The stage(s) of the tasks at work now, in pipeline order.

        Between two tasks, the first stage with a task still to finish, or,
        once a task failed, that stage's name with "failed" (Airflow is then
        marking what depends on it); None when there are no tasks yet or all
        have finished.
        """
        order = {name: i for i, name in enumerate(STAGES)}

        def key(stage: str) -> tuple[int, str]:
            return order.get(stage, len(STAGES)), stage

        working = {stage_of(task) for task, state in self.tasks if state in WORKING_STATES}
        if working:
            return " + ".join(sorted(working, key=key))
        if self.failed:
            return f"{stage_of(self.failed[0])} failed"
        pending = {stage_of(task) for task, state in self.tasks if state not in FINISHED_STATES}
        return min(pending, key=key) if pending else None


def psycopg_url(sqlalchemy_url: str) -> str:
    """Airflow's SQLAlchemy URL as one psycopg accepts (drop the ``+driver``)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    base = scheme.split("+", 1)[0]
    if not sep or base not in {"postgresql", "postgres"}:
        raise CrmError(
            "crm run reads the run's progress from Airflow's metadata database, which must be "
            "PostgreSQL: set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to a postgresql:// URL."
        )
    return f"postgresql://{rest}"


def last_run_id(metadata_url: str) -> int:
    """The highest dag_run id so far: the run `airflow dags test` creates next is above it.

    (`dags test` deletes an older run of the same logical date; ids tell them apart.)
    """
    with psycopg.connect(metadata_url, connect_timeout=10) as conn:
        if conn.execute("select to_regclass('dag_run')").fetchone()[0] is None:
            return 0
        return conn.execute("select coalesce(max(id), 0) from dag_run").fetchone()[0]


def read_run(
    conn: psycopg.Connection, business_date: date, *, after_id: int = 0
) -> RunStatus | None:
    """The nightly run for ``business_date`` (created after ``after_id``), or None if not there yet."""
    row = conn.execute(
        "select run_id, state from dag_run where dag_id = %s and logical_date = %s and id > %s"
        " order by id desc limit 1",
        (DAG_ID, logical_date_for(business_date), after_id),
    ).fetchone()
    if row is None:
        return None
    run_id, state = row
    tasks = conn.execute(
        "select task_id, state from task_instance where dag_id = %s and run_id = %s"
        " order by task_id, map_index",
        (DAG_ID, run_id),
    ).fetchall()
    return RunStatus(run_id=run_id, state=state, tasks=tuple((t, s) for t, s in tasks))


def format_duration(seconds: float) -> str:
    """``0:45``, ``1:23``, ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class NightProgress:
    """One status line for one night, updated from the metadata DB about once a second.

    On a terminal the line is rewritten in place (``\\r``); otherwise (tests, CI,
    a pipe) a line is printed only when the stage changes.
    """

    def __init__(
        self,
        metadata_url: str,
        business_date: date,
        *,
        after_id: int = 0,
        out: IO[str] | None = None,
        tty: bool | None = None,
        interval: float = 1.0,
    ) -> None:
        self.metadata_url = metadata_url
        self.business_date = business_date
        self.after_id = after_id
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.interval = interval
        self.status: RunStatus | None = None
        self.stage = "starting"
        self.started = _time.monotonic()
        self._printed_stage: str | None = None
        self._width = 0
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading --
    def poll(self) -> RunStatus | None:
        """Read the run once; keep the last good reading when the DB is not answering."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.metadata_url, autocommit=True, connect_timeout=5)
            status = read_run(self._conn, self.business_date, after_id=self.after_id)
        except psycopg.Error:
            # Not migrated yet, the server busy, a connection dropped: try again next time.
            self._close()
            return self.status
        if status is not None:
            self.status = status
            self.stage = status.stage or self.stage
        return self.status

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- showing --
    def line(self) -> str:
        elapsed = format_duration(_time.monotonic() - self.started)
        if self.status is None:
            tasks = "-/-"
        else:
            tasks = f"{self.status.finished}/{self.status.total}"
        return (
            f"night {self.business_date}  stage: {self.stage:<10}  tasks {tasks:<7}  "
            f"elapsed {elapsed}"
        )

    def show(self) -> None:
        if self.tty:
            text = self.line()
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.out.flush()
        elif self.stage != self._printed_stage:
            self._printed_stage = self.stage
            print(self.line(), file=self.out, flush=True)

    def finish(self, text: str) -> None:
        """Replace the status line with the night's final line."""
        if self.tty:
            first, sep, rest = text.partition("\n")
            self.out.write("\r" + first.ljust(self._width) + sep + rest + "\n")
            self.out.flush()
        else:
            print(text, file=self.out, flush=True)

    # -- the polling thread --
    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self.show()
            self._stop.wait(self.interval)

    def start(self) -> NightProgress:
        self.started = _time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="crm-night-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close()

    def elapsed(self) -> str:
        return format_duration(_time.monotonic() - self.started)


def error_lines(log_path: Path, *, offset: int = 0, limit: int = ERROR_LINES) -> list[str]:
    """The last ``limit`` lines of the log (from ``offset``) that tell what failed.

    Airflow's records at level error or critical, with the exception and its
    message but not the traceback's frames (nor the list of nodes dbt skipped
    because of the failure); its info and debug records never
    (they count "0 failed" files); any other line (dbt's and GX's output, a
    warning) that mentions an error or a failure.
    """
    try:
        with log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    hits: list[str] = []
    level = None  # the level of the Airflow record the current line belongs to
    in_traceback = False
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        record = _RECORD.match(line)
        if record:
            level, in_traceback = record.group(1).lower(), False
            keep = level in {"error", "critical"} or (
                level not in {"info", "debug"} and _ERROR_LINE.search(line)
            )
        elif level in {"error", "critical"}:
            if line.startswith(_TRACEBACK_STARTS):
                in_traceback = True
                continue
            if in_traceback and (line.startswith(" ") or not line):
                continue  # a frame: file, code and ^^^ lines
            in_traceback = False
            # The exception and its message, without the nodes dbt skipped because of it.
            keep = bool(line) and not line.endswith(": skipped")
        else:
            keep = bool(_ERROR_LINE.search(line)) and not _NO_ERRORS.search(line)
        if keep:
            hits.append(line[:500])
    return hits[-limit:]


def check_ran(status: RunStatus | None, business_date: date) -> RunStatus:
    """A successful exit is not enough: the run must be success and have run a task."""
    if status is None or status.succeeded == 0:
        raise CrmError(
            f"Airflow ran no task for business date {business_date} (DAG {DAG_ID}, logical date "
            f"{logical_date_for(business_date).isoformat()}): nothing was done, check that the "
            "DAG parses ('crm airflow dags list-import-errors')."
        )
    if status.state != "success":
        raise CrmError(
            f"Airflow exited without error but the run for business date {business_date} is "
            f"{status.state!r}, not 'success' (run {status.run_id})."
        )
    return status


def failure_report(
    status: RunStatus | None,
    business_date: date,
    *,
    elapsed: str,
    log_path: Path,
    returncode: int,
    log_offset: int = 0,
) -> tuple[str, str]:
    """The lines to print after a failed night, and the one-sentence CrmError message."""
    failed = status.failed if status is not None else []
    at = ", ".join(failed) if failed else f"no task (airflow exited with code {returncode})"
    head = f"night {business_date}: FAILED at {at} after {elapsed}; log: {log_path}"
    lines = [head] + [f"  {line}" for line in error_lines(log_path, offset=log_offset)]
    message = (
        f"The night of {business_date} failed at {at}; the error lines above are from {log_path}."
    )
    return "\n".join(lines), message
