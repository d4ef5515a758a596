"""Lint the dbt project with sqlfluff's dbt templater (``make lint``).

The dbt templater compiles every model and needs a reachable database, so this
starts the embedded warehouse for the duration (and stops it again if it was
not running), then runs ``sqlfluff lint dbt_project``; it exits non-zero on
any finding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from include.config import REPO_ROOT, crm_home
from include.warehouse import EmbeddedWarehouse


def main() -> int:
    server = EmbeddedWarehouse(crm_home())
    was_running = server.status().running
    server.start()
    try:
        url = urlsplit(os.environ.get("WAREHOUSE_URL") or server.url("warehouse"))
        env = {
            **os.environ,
            "CRM_PG_HOST": url.hostname or "127.0.0.1",
            "CRM_PG_PORT": str(url.port or 5432),
            "CRM_PG_USER": url.username or "",
            "CRM_PG_PASSWORD": url.password or "",
            "CRM_PG_DATABASE": url.path.lstrip("/"),
        }
        sqlfluff = Path(sys.executable).parent / "sqlfluff"
        return subprocess.call([str(sqlfluff), "lint", "dbt_project"], env=env, cwd=REPO_ROOT)
    finally:
        if not was_running:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
