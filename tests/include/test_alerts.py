"""Failure alerts reach a real SMTP server and a real webhook receiver, and are off by default.

The servers are local (aiosmtpd, http.server); the end-to-end test proves Airflow calls the
same notifiers when a night fails on the scheduler (tests/test_pipeline_e2e.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest

from include.alerts import FailureEmail, FailureWebhook, failure_callbacks, log_failure
from include.config import AlertSettings, ConfigError, alert_settings


class FailedTask:
    """The attributes of Airflow's task instance that an alert reads."""

    dag_id = "crm_nightly"
    task_id = "load_pos"
    try_number = 3
    log_url = "http://airflow.example/dags/crm_nightly/runs/r1/tasks/load_pos"


CONTEXT = {
    "task_instance": FailedTask(),
    "run_id": "scheduled__2026-11-21T00:00:00+08:00",
    # the run of business date 2026-11-20 ends at its Hong Kong midnight
    "data_interval_end": datetime(2026, 11, 21, tzinfo=ZoneInfo("Asia/Hong_Kong")),
    "exception": ValueError("pos/2026-11-20/S01_1.csv: missing column quantity"),
}


def test_nothing_but_the_log_line_by_default(monkeypatch):
    for name in ("CRM_ALERT_EMAIL_TO", "CRM_ALERT_WEBHOOK_URL", "CRM_ALERT_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    assert failure_callbacks() == [log_failure]


def test_a_failed_task_mails_every_recipient_what_failed_and_why(smtp_server):
    (_, email) = failure_callbacks(
        AlertSettings(email_to=("oncall@example.com", "lead@example.com"), smtp_url=smtp_server.url)
    )
    assert isinstance(email, FailureEmail)
    email(CONTEXT)
    assert len(smtp_server) == 1
    envelope = smtp_server[0]
    assert sorted(envelope.rcpt_tos) == ["lead@example.com", "oncall@example.com"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "[CRM] crm_nightly.load_pos failed (2026-11-20)"
    body = message.get_content()
    assert "business date 2026-11-20 (try 3)" in body
    assert "missing column quantity" in body
    assert FailedTask.log_url in body


def test_a_failed_task_posts_its_facts_to_the_webhook(webhook_server):
    (_, hook) = failure_callbacks(AlertSettings(webhook_url=webhook_server.url))
    assert isinstance(hook, FailureWebhook)
    hook(CONTEXT)
    assert len(webhook_server) == 1
    post = json.loads(webhook_server[0])
    assert post["task_id"] == "load_pos"
    assert post["business_date"] == "2026-11-20"
    assert post["error"].startswith("ValueError: pos/2026-11-20/S01_1.csv")
    assert "crm_nightly.load_pos" in post["text"]


def test_a_webhook_that_refuses_the_alert_fails_loudly(webhook_server):
    webhook_server.status = 500
    with pytest.raises(Exception, match="500"):
        FailureWebhook(webhook_server.url)(CONTEXT)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CRM_ALERT_EMAIL_TO", "oncall.example.com", "not an address"),
        ("CRM_ALERT_SMTP_URL", "mail.example.com:25", "CRM_ALERT_SMTP_URL must look like"),
        ("CRM_ALERT_WEBHOOK_URL", "file:///etc/passwd", "CRM_ALERT_WEBHOOK_URL must be"),
    ],
)
def test_a_malformed_alert_setting_is_one_sentence_naming_it(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        alert_settings()


def test_the_smtp_login_comes_from_the_url(monkeypatch, smtp_server):
    """The password is URL-encoded in CRM_ALERT_SMTP_URL (s%40cret is s@cret)."""
    monkeypatch.setenv("CRM_ALERT_EMAIL_TO", "oncall@example.com")
    monkeypatch.setenv("CRM_ALERT_SMTP_URL", smtp_server.url.replace("//", "//crm:s%40cret@"))
    monkeypatch.delenv("CRM_ALERT_WEBHOOK_URL", raising=False)
    (_, email) = failure_callbacks()
    email(CONTEXT)
    assert [e.login for e in smtp_server] == [b"crm"]


def test_a_wrong_smtp_password_fails_loudly(smtp_server):
    url = smtp_server.url.replace("//", "//crm:guess@")
    with pytest.raises(Exception, match="535|uthentication"):
        FailureEmail(url, "crm@localhost", ("oncall@example.com",))(CONTEXT)
    assert not smtp_server
