"""Defaults shared by every DAG: retries, timeouts, ownership.

Kept import-light (standard library, include.config and include.alerts only): DAG files import it at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from include.alerts import failure_callbacks
from include.config import HK_TZ

DEFAULT_ARGS = {
    "owner": "data-engineering",
    # Scheduled runs retry; an interactive `crm run` sets CRM_TASK_RETRIES=0 to fail fast.
    "retries": int(os.environ.get("CRM_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
    # A log line, then the e-mail and webhook notifiers when configured (include/alerts.py).
    "on_failure_callback": failure_callbacks(),
}


# The earliest business date the nightly DAG runs for: far enough back for any
# real retailer's history, whenever it ended (a history of the 1990s runs for
# its own as-of dates). Catchup is off, so it never schedules old nights by
# itself. `crm run` refuses dates before it.
START_DATE = datetime(1970, 1, 1, tzinfo=ZoneInfo(HK_TZ))
