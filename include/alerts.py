"""Failure alerts: Airflow notifiers that e-mail someone and post to a webhook when a task fails.

Off by default. ``CRM_ALERT_EMAIL_TO`` turns the e-mail on, ``CRM_ALERT_WEBHOOK_URL`` the
webhook (include.config.alert_settings reads them). Every DAG's failure callback is
:func:`failure_callbacks`: a log line always, then each configured notifier. They run in the
task's own process after its last try, so a scheduler with workers alerts the same way as
``crm run``. A notifier that cannot deliver logs why and raises: Airflow records the error in
the task log, and the other notifiers still run.

Standard library only (smtplib, urllib): DAG files import this at parse time.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from airflow.sdk import BaseNotifier

from include.config import SMTP_SCHEMES, AlertSettings, alert_settings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30


def failure_facts(context) -> dict[str, str | int | None]:
    """What an on-call engineer needs first: which night, which task, why, where the log is."""
    from include.pipeline import business_date_of

    ti = context.get("task_instance") or context.get("ti")
    day_end = context.get("data_interval_end")
    exception = context.get("exception")
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id"),
        "business_date": business_date_of(day_end).isoformat() if day_end else None,
        "try_number": getattr(ti, "try_number", None),
        "error": f"{type(exception).__name__}: {exception}" if exception else None,
        "log_url": getattr(ti, "log_url", None),
    }


def failure_text(facts: dict) -> str:
    lines = [
        f"CRM pipeline task failed: {facts['dag_id']}.{facts['task_id']}"
        f" for business date {facts['business_date']} (try {facts['try_number']}).",
        f"Run: {facts['run_id']}",
    ]
    if facts["error"]:
        lines.append(f"Error: {facts['error']}")
    if facts["log_url"]:
        lines.append(f"Log: {facts['log_url']}")
    lines.append("Triage: the DAG's doc_md (Airflow UI, DAG Docs) says what to check per task.")
    return "\n".join(lines)


def log_failure(context) -> None:
    """Always: one log line an on-call engineer can act on."""
    log.error(failure_text(failure_facts(context)))


class FailureEmail(BaseNotifier):
    """An e-mail per failed task, over SMTP (plain, STARTTLS or TLS, with optional login)."""

    def __init__(self, smtp_url: str, sender: str, recipients: tuple[str, ...]):
        super().__init__()
        self.smtp_url, self.sender, self.recipients = smtp_url, sender, recipients

    def notify(self, context) -> None:
        facts = failure_facts(context)
        message = EmailMessage()
        message["Subject"] = (
            f"[CRM] {facts['dag_id']}.{facts['task_id']} failed ({facts['business_date']})"
        )
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(failure_text(facts))
        url = urlsplit(self.smtp_url)
        port = url.port or SMTP_SCHEMES[url.scheme]
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(url.hostname, port, timeout=TIMEOUT_SECONDS) as smtp:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)


class FailureWebhook(BaseNotifier):
    """A JSON POST per failed task: the facts, and ``text`` for chat incoming webhooks."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def notify(self, context) -> None:
        facts = failure_facts(context)
        body = json.dumps({"text": failure_text(facts), **facts}).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (http(s) only: alert_settings)
            if response.status >= 300:
                raise RuntimeError(f"the alert webhook answered HTTP {response.status}")


def notifiers(settings: AlertSettings | None = None) -> list[BaseNotifier]:
    """The configured notifiers (none by default)."""
    settings = settings or alert_settings()
    made: list[BaseNotifier] = []
    if settings.email_to:
        made.append(FailureEmail(settings.smtp_url, settings.email_from, settings.email_to))
    if settings.webhook_url:
        made.append(FailureWebhook(settings.webhook_url))
    return made


def failure_callbacks(settings: AlertSettings | None = None) -> list[Callable]:
    """Every DAG task's ``on_failure_callback``: the log line, then each configured notifier."""
    return [log_failure, *notifiers(settings)]
