"""Configuration: where the warehouse, the shop database and the landing zone are.

With no configuration at all the project runs on its own embedded PostgreSQL
and a local landing folder under ``CRM_HOME`` (default ``<repo>/.crm``, which
git ignores). Three environment variables point it at real systems instead:

- ``WAREHOUSE_URL``  the warehouse, ``postgresql://user:password@host:port/dbname``
- ``SHOP_DB_URL``    the online shop's OLTP database (read-only for the pipeline)
- ``LANDING_URL``    the landing zone, a local path or ``s3://bucket/prefix``

Every problem with them is reported as one :class:`ConfigError` sentence that
names the setting and says what to do, never as a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
HK_TZ = "Asia/Hong_Kong"


class CrmError(Exception):
    """An error the user can act on; the CLI prints its message without a traceback."""


class ConfigError(CrmError):
    """A setting is missing or malformed."""


def crm_home() -> Path:
    """The folder for everything the project keeps locally (server data, landing, logs)."""
    return Path(os.environ.get("CRM_HOME") or REPO_ROOT / ".crm").resolve()


def check_pg_url(name: str, url: str) -> str:
    """Return ``url`` if it is a usable PostgreSQL URL, else raise naming the setting."""
    parts = urlsplit(url)
    if (
        parts.scheme not in {"postgresql", "postgres"}
        or not parts.hostname
        or not parts.path.strip("/")
    ):
        raise ConfigError(
            f"{name} must look like postgresql://user:password@host:port/dbname "
            f"(got {redact(url)!r}); fix it or unset it to use the embedded warehouse."
        )
    return url


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


@dataclass(frozen=True)
class Settings:
    warehouse_url: str
    shop_url: str
    landing_url: str
    home: Path
    embedded: bool

    @property
    def ground_truth_dir(self) -> Path:
        return self.home / "ground_truth"

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def customer_key_secret(self) -> str:
        return os.environ.get("CRM_CUSTOMER_KEY_SECRET", "dev-only-secret")


def settings() -> Settings:
    """Resolve the settings from the environment, starting nothing.

    The embedded warehouse's URLs are read from its state file, so this raises
    a ConfigError that says to run ``crm warehouse start`` when it has never run.
    """
    home = crm_home()
    warehouse_url = os.environ.get("WAREHOUSE_URL")
    shop_url = os.environ.get("SHOP_DB_URL")
    landing_url = os.environ.get("LANDING_URL") or str(home / "landing")
    embedded = not warehouse_url
    if warehouse_url:
        check_pg_url("WAREHOUSE_URL", warehouse_url)
    if shop_url:
        check_pg_url("SHOP_DB_URL", shop_url)
    if not warehouse_url or not shop_url:
        from include.warehouse import EmbeddedWarehouse

        server = EmbeddedWarehouse(home)
        warehouse_url = warehouse_url or server.url("warehouse")
        shop_url = shop_url or server.url("shop")
    return Settings(
        warehouse_url=warehouse_url,
        shop_url=shop_url,
        landing_url=landing_url,
        home=home,
        embedded=embedded,
    )
