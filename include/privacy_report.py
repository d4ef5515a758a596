"""The privacy evidence report of a night (HTML): what the privacy officer shows
the Privacy Commissioner (PDPO DPP1-DPP6).

1. data map: every dataset of contract/privacy.yml, its purpose, who reads it,
   its retention and legal hold, its personal columns;
2. retention: per dataset with a retention period and per set of files kept
   outside the warehouse (landing, logs, GX results, models), what the night's
   purge did;
3. purge and erasure log: every retention and erasure action of the night;
4. requests: the data-subject requests of the last ``ANSWER_DAYS`` days, with
   when they arrived and what became of them (no identifiers: request ids and
   pseudonymous keys only);
5. checks: every privacy check of the night's marts gate, passed or failed.

Written by the nightly DAG's ``privacy_evidence`` task (after the marts gate,
whatever it decided, so a failed night has its evidence too) to
``CRM_HOME/privacy/evidence/<date>.html``; ``crm privacy evidence``.
"""

from __future__ import annotations

import html
import os
from datetime import date, timedelta
from pathlib import Path

import psycopg

from include.privacy import LANDING, Policy, policy

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.fail{color:#a00;font-weight:600}.pass{color:#070}
.verdict{font-size:1.1rem;padding:.5rem;border:2px solid}
"""


def _table(headers: list[str], rows: list[tuple], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    if isinstance(value, bool):
        return '<span class="pass">passed</span>' if value else '<span class="fail">FAILED</span>'
    return html.escape("" if value is None else str(value))


def _retention_text(dataset) -> str:
    retention = dataset.retention
    if retention is None:
        return "none (no personal data)"
    if retention == "derived":
        return "derived (rebuilt from what it reads)"
    text = f"{retention.action} after {retention.days} days from {retention.column}"
    if retention.versions_of:
        text += f" (replaced versions of {', '.join(retention.versions_of)})"
    return text


def data_map_rows(rules: Policy) -> list[tuple]:
    rows = []
    for name, dataset in sorted(rules.datasets.items()):
        personal = [
            f"{column} ({spec.sensitivity})"
            for column, spec in sorted(dataset.columns.items())
            if spec.is_personal
        ]
        rows.append(
            (
                name,
                dataset.purpose,
                ", ".join(dataset.departments),
                _retention_text(dataset),
                f"{dataset.legal_hold_days} days" if dataset.legal_hold_days else "",
                ", ".join(personal),
            )
        )
    for name, files in sorted(rules.files.items()):
        where = "the landing zone" if files.where == LANDING else f"CRM_HOME/{files.where}"
        rows.append(
            (f"files:{name}", files.holds, "", f"delete after {files.days} days ({where})", "", "")
        )
    return rows


def render(conn: psycopg.Connection, business_date: date, rules: Policy | None = None) -> str:
    """The report of ``business_date`` as one self-contained HTML page."""
    from expectations.privacy import ANSWER_DAYS, PRIVACY_SUITES, verdict
    from include.retention import tables

    rules = rules or policy()
    retention = conn.execute(
        "select dataset, bool_or(not dry_run), max(cutoff), sum(rows_affected) filter"
        " (where not dry_run), bool_and(table_found) from ops.retention_actions"
        " where business_date = %s group by dataset",
        (business_date,),
    ).fetchall()
    done = {row[0]: row[1:] for row in retention}
    retention_rows = [
        (name, *(done[name][:3] if name in done else (False, None, None)))
        for name in [*tables(rules), *(f"files:{f}" for f in sorted(rules.files))]
    ]
    log = conn.execute(
        "select acted_at, 'retention' as kind, dataset, action, rows_affected,"
        " array_to_string(columns_emptied, ', ')"
        " from ops.retention_actions where business_date = %s and rows_affected > 0"
        " and not dry_run"
        " union all"
        " select acted_at, 'erasure', dataset, action, rows_affected,"
        " array_to_string(columns_emptied, ', ')"
        " from ops.erasure_actions where business_date = %s"
        " order by 1",
        (business_date, business_date),
    ).fetchall()
    requests = []
    if conn.execute("select to_regclass('marts.rpt_privacy_requests')").fetchone()[0]:
        since = business_date - timedelta(days=ANSWER_DAYS)
        requests = conn.execute(
            "select request_id, request_type, received_at, match_status, matched_customers,"
            " erased_on from marts.rpt_privacy_requests"
            " where received_at::date > %s order by received_at, request_id",
            (since,),
        ).fetchall()
    checks = conn.execute(
        """
        select distinct on (table_name, suite, expectation)
            suite, table_name, severity, success, coalesce(observed, ''), detail
        from ops.quality_results
        where gate = 'marts' and business_date = %s and suite = any(%s)
        order by table_name, suite, expectation, checked_at desc
        """,
        (business_date, list(PRIVACY_SUITES)),
    ).fetchall()
    summary = verdict(conn, business_date)
    failed = [s for s, severity, _, bad in summary if bad and severity == "critical"]
    if not summary:
        state = "not checked: no marts gate ran for this date"
    elif failed:
        state = "FAILED: " + ", ".join(failed)
    else:
        state = "passed"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Privacy evidence {business_date}</title><style>{STYLE}</style></head><body>",
        f"<h1>Privacy evidence, night of {business_date}</h1>",
        f"<p class='verdict'>Privacy verdict of the marts gate: {html.escape(state)}</p>",
        "<p>Policy: contract/privacy.yml (Personal Data (Privacy) Ordinance, Cap. 486)."
        " Counts and pseudonymous keys only: this page holds no personal data.</p>",
        "<h2>1. Data map</h2>",
        _table(
            ["dataset", "purpose", "departments", "retention", "legal hold", "personal columns"],
            data_map_rows(rules),
            "No dataset declared.",
        ),
        "<h2>2. Retention status</h2>",
        _table(
            ["dataset", "purged tonight", "cutoff", "rows (files) deleted or emptied"],
            retention_rows,
            "No dataset has a retention period.",
        ),
        "<h2>3. Purge and erasure log</h2>",
        _table(
            ["at", "kind", "dataset", "action", "rows", "columns emptied"],
            log,
            "Nothing was deleted or emptied tonight.",
        ),
        f"<h2>4. Data-subject requests of the last {ANSWER_DAYS} days</h2>",
        _table(
            ["request", "type", "received", "status", "customers", "erased on"],
            requests,
            "No request received.",
        ),
        "<h2>5. Privacy checks of the marts gate</h2>",
        _table(
            ["suite", "table", "severity", "result", "observed", "check"],
            checks,
            "No privacy check ran for this date.",
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def write(warehouse_url: str, business_date: date, folder: Path) -> Path:
    """Render the night's report into ``folder/<date>.html`` (owner-only); its path."""
    with psycopg.connect(warehouse_url) as conn:
        page = render(conn, business_date)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{business_date.isoformat()}.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(page)
    return path
