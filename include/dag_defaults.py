"""Defaults shared by every DAG: retries, timeouts, ownership.

Kept import-light (standard library and include.config only): DAG files import it at parse time.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from include.config import HK_TZ

log = logging.getLogger(__name__)


def on_failure(context) -> None:
    """Log one line an on-call engineer can act on (hook an alerting notifier here)."""
    ti = context.get("task_instance")
    log.error(
        "CRM pipeline task failed: dag=%s task=%s run=%s; see the task log and the DAG's doc_md triage notes",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        context.get("run_id"),
    )


DEFAULT_ARGS = {
    "owner": "data-engineering",
    # Scheduled runs retry; an interactive `crm run` sets CRM_TASK_RETRIES=0 to fail fast.
    "retries": int(os.environ.get("CRM_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": on_failure,
}


# The earliest business date the nightly DAG runs for: far enough back for any
# real retailer's history, whenever it ended (a history of the 1990s runs for
# its own as-of dates). Catchup is off, so it never schedules old nights by
# itself. `crm run` refuses dates before it.
START_DATE = datetime(1970, 1, 1, tzinfo=ZoneInfo(HK_TZ))
