"""``crm run`` and the demo: several nights of ``crm_nightly`` in one Airflow process.

Each night is what ``airflow dags test`` runs (Airflow's own ``dag_test``
command, tasks in-process), but one process runs every night in date order:
starting Airflow, parsing the DAG and starting its in-process execution API
cost about 20 s, once instead of once a night. The process (``python -m
include.nights``) stops at the first night that fails, so no later night runs on
top of a broken one.

The parent shows one progress line per night (read from the metadata DB) and
gets each night's start and end on a pipe; Airflow's output for a night goes to
``CRM_HOME/logs/nightly/<business date>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import psycopg

from include.airflow_env import (
    DAG_ID,
    NightProgress,
    RunStatus,
    airflow_env,
    check_business_dates,
    check_ran,
    failure_report,
    last_run_id,
    logical_date_for,
    migrate,
    psycopg_url,
    read_run,
)
from include.config import REPO_ROOT, CrmError, settings


def nightly_log_path(business_date: date, log_dir: Path | None = None) -> Path:
    folder = Path(log_dir) if log_dir is not None else settings().home / "logs" / "nightly"
    return folder / f"{business_date}.log"


def run_nights(
    first: date, days: int = 1, *, progress: bool = True, log_dir: Path | None = None
) -> list[RunStatus]:
    """Run ``crm_nightly`` for ``days`` business dates from ``first``, in date order.

    With ``progress`` (the default) Airflow's output goes to one log file per
    night and the terminal shows a status line per night; without it the output
    streams to the terminal. Raises :class:`CrmError` at the first night that
    failed or ran no task; later nights do not run.
    """
    check_business_dates(first, days)
    dates = [date.fromordinal(first.toordinal() + n) for n in range(days)]
    env = airflow_env()
    env.setdefault("CRM_TASK_RETRIES", "0")  # interactive: fail fast, do not wait for retries
    metadata_url = psycopg_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    logs = {day: nightly_log_path(day, log_dir) for day in dates} if progress else {}
    if progress:
        env["NO_COLOR"] = "1"  # plain text in the log files
        env.setdefault("DBT_USE_COLORS", "False")
        logs[first].parent.mkdir(parents=True, exist_ok=True)
        with logs[first].open("a", encoding="utf-8") as log:
            migrate(env, log=log)
    else:
        migrate(env)
    after_id = last_run_id(metadata_url)
    read_fd, write_fd = os.pipe()
    args = [sys.executable, "-m", "include.nights", "--status-fd", str(write_fd)]
    if progress:
        args += ["--log-dir", str(logs[first].parent)]
    proc = subprocess.Popen(
        [*args, *(d.isoformat() for d in dates)], env=env, cwd=REPO_ROOT, pass_fds=(write_fd,)
    )
    os.close(write_fd)
    statuses: list[RunStatus] = []
    meter: NightProgress | None = None
    current: date | None = None
    offset = 0
    try:
        with os.fdopen(read_fd, encoding="utf-8") as events:
            for line in events:
                event = json.loads(line)
                day = date.fromisoformat(event["date"])
                if event["event"] == "start":
                    current = day
                    if not progress:
                        print(f"== crm_nightly for business date {day} ==", flush=True)
                        continue
                    offset = logs[day].stat().st_size if logs[day].exists() else 0
                    meter = NightProgress(metadata_url, day, after_id=after_id).start()
                    continue
                if meter is not None:
                    meter.stop()
                statuses.append(
                    _night_ended(
                        metadata_url, day, after_id, meter, logs.get(day), offset, event["state"]
                    )
                )
                meter, current = None, None
        returncode = proc.wait()
    except KeyboardInterrupt:
        _stop_process(proc)
        if meter is not None:
            meter.stop()
            meter.finish(
                f"night {current}: interrupted after {meter.elapsed()}; log: {logs[current]}"
            )
        raise
    except CrmError:
        proc.wait()
        raise
    finally:
        if meter is not None:
            meter.stop()
    if len(statuses) < len(dates):
        # The process died outside a night (Airflow failed to start) or in one.
        day = current or dates[len(statuses)]
        where = logs.get(day)
        raise CrmError(
            f"The nightly process stopped before the night of {day} ended (exit code "
            f"{returncode}); "
            + (f"its output is in {where}." if where else "see its output above.")
        )
    return statuses


def _night_ended(
    metadata_url: str,
    day: date,
    after_id: int,
    meter: NightProgress | None,
    log_path: Path | None,
    offset: int,
    state: str,
) -> RunStatus:
    status = _final_status(metadata_url, day, after_id)
    if meter is None:  # output on the terminal
        if state != "success" or (status is not None and status.state == "failed"):
            failed = ", ".join(status.failed) if status and status.failed else "no task"
            raise CrmError(f"The night of {day} failed at {failed}; see its output above.")
        return check_ran(status, day)
    elapsed = meter.elapsed()
    if state != "success" or (status is not None and status.state == "failed"):
        text, message = failure_report(
            status, day, elapsed=elapsed, log_path=log_path, returncode=1, log_offset=offset
        )
        meter.finish(text)
        raise CrmError(message)
    try:
        check_ran(status, day)
    except CrmError:
        meter.finish(f"night {day}: NOTHING RAN after {elapsed}; log: {log_path}")
        raise
    meter.finish(f"night {day}: success in {elapsed} ({status.total} tasks)")
    return status


def _final_status(metadata_url: str, business_date: date, after_id: int) -> RunStatus | None:
    try:
        with psycopg.connect(metadata_url, connect_timeout=10) as conn:
            return read_run(conn, business_date, after_id=after_id)
    except psycopg.errors.UndefinedTable:
        return None  # Airflow never got as far as its schema: the log says why
    except psycopg.Error as exc:
        raise CrmError(
            f"Could not read the state of the run for {business_date} from Airflow's metadata "
            f"database: {exc}"
        ) from None


def _stop_process(proc: subprocess.Popen) -> None:
    """Ask the nightly process to stop (as Ctrl-C would), then insist."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the nightly process --------------------------------------------------------------------


def _redirect_output(log_path: Path) -> None:
    """Send this process's stdout and stderr (Airflow's and dbt's logs) to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.nights")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("dates", nargs="+", type=date.fromisoformat)
    opts = parser.parse_args(argv)
    status = os.fdopen(opts.status_fd, "w", encoding="utf-8", buffering=1)

    def send(event: str, day: date, **extra: str) -> None:
        status.write(json.dumps({"event": event, "date": day.isoformat(), **extra}) + "\n")

    if opts.log_dir is not None:
        _redirect_output(nightly_log_path(opts.dates[0], opts.log_dir))
    from airflow.cli.cli_parser import get_parser
    from airflow.cli.commands.dag_command import dag_test
    from airflow.utils.cli import get_bagged_dag

    dag = None
    for day in opts.dates:
        if opts.log_dir is not None:
            _redirect_output(nightly_log_path(day, opts.log_dir))
        print(
            f"\n===== {DAG_ID} for business date {day}: started "
            f"{datetime.now().astimezone().isoformat(timespec='seconds')} =====",
            flush=True,
        )
        send("start", day)
        # The arguments `airflow dags test crm_nightly <logical date>` would have.
        args = get_parser().parse_args(["dags", "test", DAG_ID, logical_date_for(day).isoformat()])
        state = "success"
        try:
            dag = dag or get_bagged_dag(bundle_names=None, dag_id=DAG_ID)
            dag_test(args, dag=dag)
        except SystemExit as exc:  # dag_test's way of saying the run failed
            print(f"{DAG_ID} for {day}: {exc}", flush=True)
            state = "failed"
        except Exception:
            import traceback

            traceback.print_exc()
            state = "failed"
        sys.stdout.flush()
        sys.stderr.flush()
        send("end", day, state=state)
        if state != "success":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
