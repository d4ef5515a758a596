"""A local Airflow deployment: scheduler, dag-processor, triggerer, api-server (+ Celery workers).

``crm stack start`` runs the same components a production deployment runs
(docker-compose.yml), as background processes on this machine, against the
embedded warehouse's ``airflow`` metadata database; ``crm stack stop`` stops
them (SIGTERM, then SIGKILL after a grace period). Logs go to
``CRM_HOME/logs/airflow/<component>.log``; the process ids and the API port
are in ``CRM_HOME/airflow/stack.json``.

:class:`AirflowApi` is the REST client a user or another system would use:
trigger a night, run a backfill, read task states.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from include.config import CrmError, settings

DAG_ID = "crm_nightly"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


@dataclass
class StackState:
    executor: str
    port: int
    pids: dict[str, int] = field(default_factory=dict)
    workers: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _stack_file(home: Path | None = None) -> Path:
    return (home or settings().home) / "airflow" / "stack.json"


def _log_dir() -> Path:
    path = settings().home / "logs" / "airflow"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def read_state(home: Path | None = None) -> StackState | None:
    """The running stack's processes and port, from ``home`` (default CRM_HOME)."""
    path = _stack_file(home)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return StackState(**data)


def _secret(name: str) -> str:
    """A secret shared by every component, made once and kept under CRM_HOME."""
    path = settings().home / "airflow" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


UI_USER = "admin"


def ui_passwords_file(home: Path | None = None) -> Path:
    """The local stack's UI login ({user: password}, owner-only), made on first start."""
    return (home or settings().home) / "airflow" / "ui_passwords.json"


def _ui_login() -> dict[str, str]:
    """The environment that makes the UI and API ask for a login, unless left open."""
    from include.config import airflow_open_ui

    if airflow_open_ui():
        return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    path = ui_passwords_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({UI_USER: secrets.token_urlsafe(18)}))
        path.chmod(0o600)
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(path),
    }


def api_for(state: StackState, home: Path | None = None) -> AirflowApi:
    """A client of the local stack, logged in when the UI needs a login."""
    from include.config import airflow_open_ui

    path = ui_passwords_file(home)
    login = None
    if path.exists() and not airflow_open_ui():
        login = (UI_USER, json.loads(path.read_text())[UI_USER])
    return AirflowApi(state.url, login=login)


def stack_env(executor: str, port: int, *, schedule: bool = True) -> dict[str, str]:
    """The environment of every component (and of `crm airflow` commands beside them)."""
    from include.airflow_env import airflow_env

    env = airflow_env()
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET")
            or _secret("jwt_secret"),
            # Let the scheduler pick up triggered runs and finished tasks quickly.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True" if schedule else "False",
            **_ui_login(),
        }
    )
    if executor == "CeleryExecutor":
        env.setdefault("AIRFLOW__CELERY__BROKER_URL", DEFAULT_BROKER)
        meta = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://", 1)[1]
        env.setdefault("AIRFLOW__CELERY__RESULT_BACKEND", f"db+postgresql://{meta}")
    return env


def worker_hostname() -> str:
    """The host name a local Celery worker reports: the machine's, plus the worker's name."""
    import socket

    return f"{socket.gethostname()}-{os.environ.get('CRM_WORKER_NAME', 'worker')}"


def redis_answers(url: str = DEFAULT_BROKER) -> bool:
    """True when a Redis server answers PING at ``url`` (the Celery broker)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    *, executor: str = "LocalExecutor", workers: int = 2, schedule: bool = True, timeout: int = 180
) -> StackState:
    """Start every component in the background and wait until the API answers and the DAG is there."""
    from include.airflow_env import migrate

    current = read_state()
    if current and any(_alive(p) for p in current.pids.values()):
        raise CrmError(
            f"An Airflow stack is already running ({current.executor}, {current.url}): "
            "run 'crm stack stop' first."
        )
    if executor not in ("LocalExecutor", "CeleryExecutor"):
        raise CrmError(f"executor must be LocalExecutor or CeleryExecutor (got {executor!r}).")
    port = _free_port()
    env = stack_env(executor, port, schedule=schedule)
    if executor == "CeleryExecutor" and not redis_answers(env["AIRFLOW__CELERY__BROKER_URL"]):
        raise CrmError(
            f"No Redis answers at {env['AIRFLOW__CELERY__BROKER_URL']}: start Redis or set "
            "AIRFLOW__CELERY__BROKER_URL to the broker."
        )
    migrate(env)
    airflow = str(Path(sys.executable).parent / "airflow")
    commands = {name: [airflow, name] for name in COMPONENTS}
    if executor == "CeleryExecutor":
        for n in range(1, workers + 1):
            commands[f"worker-{n}"] = [
                airflow,
                "celery",
                "worker",
                "--celery-hostname",
                f"worker-{n}@%h",
                "--concurrency",
                "4",
                "--without-mingle",
                "--without-gossip",
            ]
    state = StackState(
        executor=executor, port=port, workers=workers if executor == "CeleryExecutor" else 0
    )
    logs = _log_dir()
    for name, cmd in commands.items():
        own_env = env
        if name.startswith("worker-"):
            # Task instances record which worker ran them (hostname column).
            own_env = {
                **env,
                "CRM_WORKER_NAME": name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            }
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                cmd,
                env=own_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state.pids[name] = proc.pid
    _stack_file().write_text(json.dumps(asdict(state)))
    try:
        api = api_for(state)
        api.wait_healthy(timeout=timeout, pids=state.pids)
        api.wait_dag(DAG_ID, timeout=timeout)
        api.unpause(DAG_ID)
    except BaseException:
        stop()
        raise
    return state


def stop(grace: float = 30) -> str:
    state = read_state()
    if state is None:
        return "no Airflow stack was started here"
    alive = {n: p for n, p in state.pids.items() if _alive(p)}
    for pid in alive.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in alive.values()):
        time.sleep(0.2)
    killed = [n for n, p in alive.items() if _alive(p)]
    for name in killed:
        try:
            os.killpg(alive[name], signal.SIGKILL)
        except ProcessLookupError:
            pass
    _stack_file().unlink(missing_ok=True)
    if not alive:
        return "the Airflow stack was not running"
    extra = f" (killed after {grace:.0f} s: {', '.join(killed)})" if killed else ""
    return f"stopped {', '.join(alive)}{extra}"


def status() -> tuple[bool, str]:
    state = read_state()
    if state is None:
        return False, "no Airflow stack was started here (crm stack start)"
    lines = [f"{state.executor}, API and UI at {state.url}"]
    running = True
    for name, pid in state.pids.items():
        up = _alive(pid)
        running &= up
        lines.append(f"  {name:<14} pid {pid:<8} {'running' if up else 'NOT RUNNING'}")
    return running, "\n".join(lines)


class AirflowApi:
    """A small client of Airflow 3's REST API (``/api/v2``) with the simple auth manager."""

    def __init__(self, url: str, login: tuple[str, str] | None = None):
        self.url = url.rstrip("/")
        self.login = login  # (user, password); None: the server lets anyone in as admin
        self._token: str | None = None

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise CrmError(f"Airflow API {method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            if self.login is None:
                answer = self._request("GET", "/auth/token", auth=False)
            else:
                user, password = self.login
                answer = self._request(
                    "POST", "/auth/token", {"username": user, "password": password}, auth=False
                )
            self._token = answer["access_token"]
        return self._token

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._request("PATCH", path, body)

    def wait_healthy(self, *, timeout: float, pids: dict[str, int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            dead = [n for n, p in (pids or {}).items() if not _alive(p)]
            if dead:
                raise CrmError(
                    f"Airflow {', '.join(dead)} exited at start: see {_log_dir()}/{dead[0]}.log"
                )
            try:
                health = self._request("GET", "/api/v2/monitor/health", auth=False)
                states = {k: v.get("status") for k, v in health.items() if isinstance(v, dict)}
                if all(s == "healthy" for s in states.values()):
                    return
                last = str(states)
            except (OSError, CrmError) as exc:
                last = str(exc)
            time.sleep(1)
        raise CrmError(
            f"Airflow did not become healthy in {timeout:.0f} s ({last}); logs: {_log_dir()}"
        )

    def wait_dag(self, dag_id: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except CrmError:
                time.sleep(1)
        raise CrmError(
            f"The dag-processor did not load {dag_id} in {timeout:.0f} s; logs: {_log_dir()}"
        )

    def unpause(self, dag_id: str) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, business_date: date, *, dag_id: str = DAG_ID) -> str:
        """Trigger the night of a Hong Kong business date; returns the run id."""
        from include.airflow_env import logical_date_for

        run = self.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"logical_date": logical_date_for(business_date).isoformat()},
        )
        return run["dag_run_id"]

    def backfill(self, first: date, last: date, *, dag_id: str = DAG_ID) -> int:
        """Backfill the nights ``first``..``last``, one at a time in date order."""
        from include.airflow_env import logical_date_for

        body = {
            "dag_id": dag_id,
            "from_date": logical_date_for(first).isoformat(),
            "to_date": logical_date_for(last).isoformat(),
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        }
        return self.post("/api/v2/backfills", body)["id"]

    def wait_run(self, run_id: str, *, dag_id: str = DAG_ID, timeout: float = 1800) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise CrmError(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s")

    def task_instances(self, run_id: str, *, dag_id: str = DAG_ID) -> list[dict]:
        out: list[dict] = []
        while True:
            page = self.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(out)}"
            )
            out += page["task_instances"]
            if len(out) >= page["total_entries"] or not page["task_instances"]:
                return out

    def night_states(self, first: date, last: date, *, dag_id: str = DAG_ID) -> dict[date, str]:
        """The state of the run of each business date from ``first`` to ``last``."""
        from datetime import datetime

        from include.airflow_env import logical_date_for

        wanted = {logical_date_for(d): d for d in backfill_dates(first, last)}
        states = {}
        for run in self.runs(dag_id=dag_id):
            logical = datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
            if logical in wanted:
                states[wanted[logical]] = run["state"]
        return states

    def runs(self, *, dag_id: str = DAG_ID) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")[
            "dag_runs"
        ]

    def wait_backfill(self, backfill_id: int, *, timeout: float = 3600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get(f"/api/v2/backfills/{backfill_id}").get("completed_at"):
                return
            time.sleep(2)
        raise CrmError(f"backfill {backfill_id} did not complete in {timeout:.0f} s")


def backfill_dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
