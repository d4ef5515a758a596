"""Run real Airflow 3 against this project: environment, metadata DB, nightly runs.

Airflow's metadata lives in the embedded server's ``airflow`` database (or
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` when set), ``AIRFLOW_HOME`` under
``CRM_HOME``, DAGs from the repository's ``dags/`` folder. Telemetry of Airflow,
Cosmos, dbt and GX is switched off: this platform sends nothing anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from include.config import HK_TZ, REPO_ROOT, CrmError, settings

DAG_ID = "crm_nightly"

TELEMETRY_OFF = {
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__CORE__ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
}


def airflow_env() -> dict[str, str]:
    cfg = settings()
    home = cfg.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    wh = urlsplit(cfg.warehouse_url)
    conn = {
        "conn_type": "postgres",
        "host": wh.hostname,
        "port": wh.port or 5432,
        "login": wh.username,
        "password": wh.password,
        "schema": wh.path.lstrip("/"),
    }
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
        "AIRFLOW_CONN_CRM_WAREHOUSE": json.dumps(conn),
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

    url = EmbeddedWarehouse(cfg.home).url("airflow")
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _airflow(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, *args], env=env, cwd=REPO_ROOT)
    if check and result.returncode != 0:
        raise CrmError(
            f"'airflow {' '.join(args)}' failed with exit code {result.returncode}; see its output above."
        )
    return result


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata schema once per Airflow version."""
    import airflow

    stamp = Path(env["AIRFLOW_HOME"]) / f".migrated-{airflow.__version__}"
    if stamp.exists():
        return
    _airflow("db", "migrate", env=env)
    stamp.touch()


def logical_date_for(business_date: date) -> datetime:
    """The run whose data interval is that Hong Kong business day.

    For a manual or test run Airflow infers the data interval of a cron data
    interval timetable as the last complete interval before the logical date,
    so the run for day D is triggered at D+1 00:00 Hong Kong time.
    """
    return datetime.combine(business_date + timedelta(days=1), time(0), ZoneInfo(HK_TZ))


def run_nightly(business_date: date) -> None:
    """Run the whole nightly DAG for one business date with ``airflow dags test``."""
    env = airflow_env()
    env.setdefault("CRM_TASK_RETRIES", "0")  # interactive: fail fast, do not wait for retries
    migrate(env)
    print(f"== crm_nightly for business date {business_date} ==", flush=True)
    _airflow("dags", "test", DAG_ID, logical_date_for(business_date).isoformat(), env=env)
