"""Configuration: where the warehouse, the shop database and the landing zone are.

With no configuration at all the project runs on its own embedded PostgreSQL
and a local landing folder under ``CRM_HOME`` (default ``<repo>/.crm``, which
git ignores). Three environment variables point it at real systems instead:

- ``WAREHOUSE_URL``  the warehouse, ``postgresql://user:password@host:port/dbname``
- ``SHOP_DB_URL``    the online shop's OLTP database (read-only for the pipeline)
- ``LANDING_URL``    the landing zone, a local path or ``s3://bucket/prefix``

and ``CRM_SOURCES`` says which of the source systems of the contract this
retailer has (:func:`declared_sources`; default: all of them).

Every problem with them is reported as one :class:`ConfigError` sentence that
names the setting and says what to do, never as a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
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


def without_password(url: str) -> str:
    """The URL with no password at all, for a command line (give the password as PGPASSWORD)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", "@", 1)


SOURCES = ("shop", "pos", "stores", "loyalty", "web", "complaints", "privacy")
"""The source systems, in pipeline order: the shop database and the landing sources of
contract/sources.yml (tests/include/test_contract.py keeps the two lists equal)."""

SALES_SOURCES = ("shop", "pos")
"""Sources that bring sales: a retailer declares at least one."""

CUSTOMER_SOURCES = ("shop", "loyalty")
"""Sources that bring known customers (shop accounts, loyalty members): at least one."""

ALWAYS_DECLARED = ("privacy",)
"""Loaded whether listed or not: privacy requests (PDPO opt-outs, erasures) must never be ignored."""

SOURCES_VARIABLE = "CRM_SOURCES"

GAP_FAIL_DAYS_VARIABLE = "CRM_GAP_FAIL_DAYS"
QUARANTINE_FAIL_RATE_VARIABLE = "CRM_QUARANTINE_FAIL_RATE"


def _whole_days(variable: str, default: str, value: str | None, minimum: int) -> int:
    text = os.environ.get(variable, default) if value is None else value
    days = int(text) if text.strip().isdigit() else -1
    if days < minimum:
        raise ConfigError(
            f"{variable} must be a whole number of days, at least {minimum} (got {text!r})."
        )
    return days


def quarantine_fail_rate(value: str | None = None) -> float:
    """Share of a source's rows of the night that may be quarantined before the raw gate
    fails (default 0.05); any quarantined row is a warning."""
    text = os.environ.get(QUARANTINE_FAIL_RATE_VARIABLE, "0.05") if value is None else value
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ConfigError(
            f"{QUARANTINE_FAIL_RATE_VARIABLE} must be a share between 0 and 1, e.g. 0.05"
            f" (got {text!r})."
        )
    return rate


def gap_fail_days(value: str | None = None) -> int:
    """Days an expected file (a store's POS export, a web hour, a daily file) may be late
    before the raw gate fails (default 3); before that its absence is a warning."""
    return _whole_days(GAP_FAIL_DAYS_VARIABLE, "3", value, 1)


SHOP_OVERLAP_VARIABLE = "CRM_SHOP_OVERLAP_MINUTES"


def shop_overlap(value: str | None = None) -> timedelta:
    """How far behind its watermark the shop extract re-reads (default 10 minutes): rows
    whose ``updated_at`` committed up to this late are still extracted."""
    text = os.environ.get(SHOP_OVERLAP_VARIABLE, "10") if value is None else value
    try:
        minutes = int(text)
    except ValueError:
        minutes = -1
    if minutes < 0:
        raise ConfigError(
            f"{SHOP_OVERLAP_VARIABLE} must be a whole number of minutes, 0 or more (got {text!r})."
        )
    return timedelta(minutes=minutes)


SHOP_RECONCILE_VARIABLE = "CRM_SHOP_RECONCILE_DAYS"


def shop_reconcile_days(value: str | None = None) -> int:
    """How often (days) the shop extract compares every key with raw (default 7): versions
    its window missed are extracted, rows deleted in the shop recorded as deletions."""
    return _whole_days(SHOP_RECONCILE_VARIABLE, "7", value, 1)


LATE_DAYS_VARIABLE = "CRM_LATE_DAYS"
LATE_SWEEP_VARIABLE = "CRM_LATE_SWEEP_DAYS"


OPEN_UI_VARIABLE = "CRM_AIRFLOW_OPEN_UI"


def airflow_open_ui() -> bool:
    """``CRM_AIRFLOW_OPEN_UI=true``: the local Airflow UI and API let anyone in as admin
    (a demo on a laptop). Unset, they need the login ``crm stack start`` prints."""
    value = os.environ.get(OPEN_UI_VARIABLE, "").strip().lower()
    if value not in ("", "true", "false"):
        raise ConfigError(f"{OPEN_UI_VARIABLE} must be true or false, got {value!r}")
    return value == "true"


def late_days(value: str | None = None) -> int:
    """How many days late a dated file is still listed by every night's load (default 14);
    the incremental models reprocess loads as far back (dbt var incremental_lookback_days)."""
    return _whole_days(LATE_DAYS_VARIABLE, "14", value, 0)


def late_sweep_days(value: str | None = None) -> int:
    """How often (days) the loader lists a dated source's whole landing history (default 7),
    to find files that came later than ``late_days`` and were never listed."""
    return _whole_days(LATE_SWEEP_VARIABLE, "7", value, 1)


def declared_sources(value: str | None = None) -> tuple[str, ...]:
    """The source systems this retailer has, from ``CRM_SOURCES`` (or ``value``), in pipeline order.

    ``CRM_SOURCES`` is a comma-separated list of ``shop, pos, stores, loyalty,
    web, complaints, privacy`` (case and spaces ignored); unset or empty means
    all of them. ``privacy`` is always included. Valid combinations: at least
    one sales source (``shop`` or ``pos``), at least one customer source
    (``shop`` or ``loyalty``: without one no sale belongs to a known customer
    and there is nothing to segment), and ``pos`` and ``stores`` together (the
    store master describes the stores whose POS exports are loaded); ``web``
    and ``complaints`` go with anything. So an online shop alone works, and so
    do stores with a loyalty programme (``pos,stores,loyalty``). Any problem is
    one :class:`ConfigError` sentence naming the setting.

    This is the only place that reads the setting; :class:`Settings` carries
    the result.
    """
    text = os.environ.get(SOURCES_VARIABLE, "") if value is None else value
    if not text.strip():
        return SOURCES
    names = {name.strip().lower() for name in text.split(",")} - {""}
    unknown = sorted(names - set(SOURCES))
    shown = f"{SOURCES_VARIABLE}={text.strip()!r}"
    if unknown or not names:
        which = f"unknown source(s) {', '.join(map(repr, unknown))}" if unknown else "no source"
        raise ConfigError(
            f"{shown} names {which}: use a comma-separated list of "
            f"{', '.join(SOURCES)} (unset means all of them)."
        )
    names |= set(ALWAYS_DECLARED)
    if not names & set(SALES_SOURCES):
        raise ConfigError(
            f"{shown} declares no sales source: declare shop (the online shop), pos with "
            f"stores (the tills and the store master) or both."
        )
    if not names & set(CUSTOMER_SOURCES):
        raise ConfigError(
            f"{shown} declares no customer source: declare shop (shop accounts), loyalty "
            f"(loyalty members) or both, since without them no sale belongs to a known customer."
        )
    if ("pos" in names) != ("stores" in names):
        given, missing = ("pos", "stores") if "pos" in names else ("stores", "pos")
        raise ConfigError(
            f"{shown} declares {given} without {missing}: declare pos and stores together "
            f"(the store master describes the stores whose POS exports are loaded)."
        )
    return tuple(name for name in SOURCES if name in names)


CUSTOMER_KEY_SECRET_VARIABLE = "CRM_CUSTOMER_KEY_SECRET"
DEV_CUSTOMER_KEY_SECRET = "dev-only-secret"
"""The local default (also dbt_project.yml's, for a dbt command typed by hand)."""


@dataclass(frozen=True)
class Settings:
    warehouse_url: str
    shop_url: str
    landing_url: str
    home: Path
    embedded: bool
    # the source systems this retailer has (CRM_SOURCES): declared_sources()
    sources: tuple[str, ...] = SOURCES
    # the login the pipeline's steps use (include/roles.py); WAREHOUSE_URL's user on
    # your own warehouse, the unprivileged crm_pipeline on the embedded one
    pipeline_login_url: str = ""
    shop_login_url: str = ""

    def url_as(self, role: str) -> str:
        """The warehouse URL whose sessions run as the pipeline role ``role``."""
        from include.roles import as_role

        return as_role(self.pipeline_login_url or self.warehouse_url, role)

    @property
    def shop_reader_url(self) -> str:
        """The shop, in read-only sessions (and as crm_shop_reader on the embedded shop)."""
        from include.roles import SHOP_READER, as_role

        if self.shop_login_url:
            return as_role(self.shop_login_url, SHOP_READER, read_only=True)
        return as_role(self.shop_url, "", read_only=True)

    @property
    def ground_truth_dir(self) -> Path:
        return self.home / "ground_truth"

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def customer_key_secret(self) -> str:
        """The key of the pseudonymous customer_key. The default is public (it is in
        this repository), so it is accepted only on the embedded, local warehouse."""
        secret = os.environ.get(CUSTOMER_KEY_SECRET_VARIABLE, "").strip()
        if secret and secret != DEV_CUSTOMER_KEY_SECRET:
            return secret
        if self.embedded:
            return DEV_CUSTOMER_KEY_SECRET
        raise ConfigError(
            f"{CUSTOMER_KEY_SECRET_VARIABLE} must hold a secret of your own when WAREHOUSE_URL"
            " points at a real warehouse: the default is public, so anyone holding a card or"
            " shop id could recompute its customer_key."
        )


ALERT_EMAIL_VARIABLE = "CRM_ALERT_EMAIL_TO"
ALERT_SMTP_VARIABLE = "CRM_ALERT_SMTP_URL"
ALERT_FROM_VARIABLE = "CRM_ALERT_EMAIL_FROM"
ALERT_WEBHOOK_VARIABLE = "CRM_ALERT_WEBHOOK_URL"
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
"""URL schemes of ``CRM_ALERT_SMTP_URL`` and their default ports: plain, STARTTLS, TLS."""


@dataclass(frozen=True)
class AlertSettings:
    """Where a failed task is reported (include/alerts.py); empty means that channel is off."""

    email_to: tuple[str, ...] = ()
    smtp_url: str = "smtp://localhost:25"
    email_from: str = "crm-pipeline@localhost"
    webhook_url: str = ""


def alert_settings() -> AlertSettings:
    """The failure alerts from the environment; both are off unless configured.

    - ``CRM_ALERT_EMAIL_TO``: comma-separated addresses that get an e-mail per failed task;
    - ``CRM_ALERT_SMTP_URL``: ``smtp://[user:password@]host[:port]`` (``smtp+starttls://``
      or ``smtps://`` for encrypted servers; default ``smtp://localhost:25``);
    - ``CRM_ALERT_EMAIL_FROM``: the sender (default ``crm-pipeline@localhost``);
    - ``CRM_ALERT_WEBHOOK_URL``: an ``http(s)://`` URL that gets a JSON POST per failed task
      (its ``text`` field reads as a message in Slack or Teams incoming webhooks).

    This is the only place that reads them; a malformed one is one ConfigError sentence.
    """
    to = tuple(a.strip() for a in os.environ.get(ALERT_EMAIL_VARIABLE, "").split(",") if a.strip())
    bad = [a for a in to if "@" not in a]
    if bad:
        raise ConfigError(f"{ALERT_EMAIL_VARIABLE} holds {bad[0]!r}, which is not an address.")
    smtp_url = os.environ.get(ALERT_SMTP_VARIABLE) or AlertSettings.smtp_url
    smtp = urlsplit(smtp_url)
    if smtp.scheme not in SMTP_SCHEMES or not smtp.hostname:
        raise ConfigError(
            f"{ALERT_SMTP_VARIABLE} must look like smtp://user:password@host:port (or "
            f"smtp+starttls://, smtps://), got {redact(smtp_url)!r}."
        )
    webhook = os.environ.get(ALERT_WEBHOOK_VARIABLE, "").strip()
    hook = urlsplit(webhook)
    if webhook and (hook.scheme not in {"http", "https"} or not hook.hostname):
        raise ConfigError(
            f"{ALERT_WEBHOOK_VARIABLE} must be an http:// or https:// URL, got {redact(webhook)!r}."
        )
    return AlertSettings(
        email_to=to,
        smtp_url=smtp_url,
        email_from=os.environ.get(ALERT_FROM_VARIABLE) or AlertSettings.email_from,
        webhook_url=webhook,
    )


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
    sources = declared_sources()
    if warehouse_url:
        check_pg_url("WAREHOUSE_URL", warehouse_url)
    if shop_url:
        check_pg_url("SHOP_DB_URL", shop_url)
    pipeline_login_url = shop_login_url = ""
    if not warehouse_url or not shop_url:
        from include.warehouse import EmbeddedWarehouse

        server = EmbeddedWarehouse(home)
        if not warehouse_url:
            warehouse_url = server.url("warehouse")
            pipeline_login_url = server.pipeline_url("warehouse")
        if not shop_url:
            shop_url = server.url("shop")
            shop_login_url = server.pipeline_url("shop")
    return Settings(
        warehouse_url=warehouse_url,
        shop_url=shop_url,
        landing_url=landing_url,
        home=home,
        embedded=embedded,
        sources=sources,
        pipeline_login_url=pipeline_login_url,
        shop_login_url=shop_login_url,
    )
