"""`crm demo`: simulated history, a few real nightly runs, and a report of what they produced."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

from include.config import CrmError, redact, settings

LAYERS = ("raw", "ops", "quarantine", "staging", "intermediate", "marts", "pii", "reporting")


def run_demo(*, history_days: int, nightly_days: int, seed: int) -> None:
    from include.airflow_env import check_business_dates, format_duration
    from include.nights import run_nights
    from include.pipeline import last_complete_business_date
    from include.simulator import simulate

    cfg = settings()
    landing = cfg.landing_url.removeprefix("file://")
    # The latest day that has ended in Hong Kong (the machine's own date may differ).
    last_day = last_complete_business_date()
    first_night = last_day - timedelta(days=nightly_days - 1)
    history_start = first_night - timedelta(days=history_days - 1)
    sim_args = dict(shop_url=cfg.shop_url, ground_truth_dir=cfg.ground_truth_dir, seed=seed)
    check_business_dates(first_night, nightly_days)
    simulated_to = _simulated_to(cfg.shop_url)
    logs = cfg.home / "logs"
    print(
        f"Logs: Airflow's output (all task logs) per night in {logs / 'nightly'}/<date>.log, "
        f"dbt's own log in {logs / 'dbt'}."
    )
    started = time.monotonic()
    # Every day is simulated before the first night runs, as `crm simulate` then
    # `crm run --days N` would: simulating a day after the previous night ran
    # rewrites web files of the UTC date the two Hong Kong days share (hours
    # 16-23), which that night already loaded, and the loader refuses files
    # that changed after loading.
    if simulated_to is None:
        days = (last_day - history_start).days + 1
        print(f"Simulating {days} days, {history_start} to {last_day} ...")
        print(
            _simulate(
                simulate, landing_dir=Path(landing), start=history_start, days=days, **sim_args
            )
        )
    elif simulated_to < last_day:
        print(
            _simulate(
                simulate,
                landing_dir=Path(landing),
                start=None,
                days=(last_day - simulated_to).days,
                **sim_args,
            )
        )
    print(f"Running {nightly_days} night(s) with Airflow, {first_night} to {last_day}:")
    run_nights(first_night, nightly_days)
    elapsed = time.monotonic() - started
    print(
        f"Demo: {nightly_days} night(s), {first_night} to {last_day}, in {format_duration(elapsed)}."
    )
    print(report(cfg.warehouse_url, as_of=last_day, elapsed=elapsed))


def _simulate(simulate, **kwargs) -> str:
    """The simulator's refusals (another world in this shop database, ...) as one CrmError."""
    try:
        return simulate(**kwargs)
    except ValueError as exc:
        raise CrmError(
            f"{exc} The demo builds its own world: run it in a fresh CRM_HOME."
        ) from None


def _simulated_to(shop_url: str) -> date | None:
    with psycopg.connect(shop_url) as conn:
        exists = conn.execute("select to_regclass('sim.state')").fetchone()[0]
        if not exists:
            return None
        row = conn.execute("select max(last_day) from sim.state").fetchone()
        return row[0] if row else None


def report(warehouse_url: str, *, as_of: date, elapsed: float | None = None) -> str:
    from include.pipeline import evidence_folder, reports_folder

    cfg = settings()
    lines = []
    with psycopg.connect(warehouse_url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) order by 1, 2",
            (list(LAYERS),),
        ).fetchall()
        lines.append("Rows per table:")
        for schema, table in tables:
            (n,) = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            lines.append(f"  {schema + '.' + table:<45} {n:>10,}")
        ledger = conn.execute(
            "select status, count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined)"
            " from ops.load_ledger group by status order by status"
        ).fetchall()
        lines.append("Load ledger (status, loads, rows read, loaded, quarantined):")
        lines += [
            f"  {s:<8} {c:>6} {r or 0:>10,} {lo or 0:>10,} {q or 0:>8,}"
            for s, c, r, lo, q in ledger
        ]
        segments = conn.execute(
            "select segment, count(*) from reporting.customer_segments"
            " where as_of_date = (select max(as_of_date) from reporting.customer_segments)"
            " group by segment order by 2 desc"
        ).fetchall()
        latest = conn.execute("select max(as_of_date) from reporting.customer_segments").fetchone()[
            0
        ]
    lines.append(f"RFM segments published to reporting.customer_segments as of {latest}:")
    lines += [f"  {name:<22} {n:>7,}" for name, n in segments]
    lines += business_answers(warehouse_url)
    lines += model_validation(warehouse_url)
    lines += privacy_lines(warehouse_url, as_of)
    evidence = evidence_folder(cfg.home) / f"{as_of.isoformat()}.html"
    if evidence.exists():
        lines.append(f"Privacy evidence report: {evidence}")
    else:
        lines.append(f"Privacy evidence report: not written for {as_of} ({evidence} missing)")
    lines.append(f"GX Data Docs: {cfg.gx_dir}/uncommitted/data_docs/local_site/index.html")
    page = reports_folder(cfg.home) / as_of.isoformat() / "index.html"
    if page.exists():
        lines.append(f"Nightly report: {page}  (open it: .venv/bin/crm report --open)")
    else:
        lines.append(f"Nightly report: not written for {as_of} ({page} missing)")
    lines.append(f"Warehouse: {redact(cfg.warehouse_url)}  (psql: .venv/bin/crm warehouse psql)")
    lines.append(
        "Airflow UI with these runs: .venv/bin/crm stack start (prints the address; "
        ".venv/bin/crm stack stop to end)"
    )
    if elapsed is not None:
        lines.append(f"Demo pipeline time: {elapsed:,.0f} s")
    return "\n".join(lines)


def privacy_lines(warehouse_url: str, as_of: date) -> list[str]:
    """The privacy verdict of the night and who reads what (contract/privacy.yml)."""
    from expectations.privacy import verdict
    from include.access import matrix

    with psycopg.connect(warehouse_url) as conn:
        checks = verdict(conn, as_of)
        reach = matrix(conn)
    failed = [suite for suite, severity, _, bad in checks if bad and severity == "critical"]
    warned = [suite for suite, severity, _, bad in checks if bad and severity != "critical"]
    state = "FAILED: " + ", ".join(failed) if failed else "passed"
    if not checks:
        state = "not checked (no marts gate ran for this date)"
    lines = [f"Privacy verdict of {as_of} (marts gate, contract/privacy.yml): {state}"]
    lines += [
        f"  {suite:<26} {severity:<8} {good:>3} passed {bad:>3} failed"
        for suite, severity, good, bad in checks
    ]
    if warned:
        lines.append(f"  warnings (see Data Docs): {', '.join(warned)}")
    lines.append("Department roles (relations / columns / personal columns they read):")
    lines += [
        f"  {r.role:<26} {r.relations:>4} {r.columns:>6} {r.personal_columns:>5}"
        + (f"  rows of its region only: {', '.join(r.row_filtered)}" if r.row_filtered else "")
        for r in reach
    ]
    return lines


# A few of the business questions the marts answer, one query each (marts only).
QUESTIONS = (
    (
        "High-end customers, top value decile (marts.fct_customer_value)",
        "select 'customers, threshold HKD ' || min(high_end_threshold)::text, count(*)"
        " from marts.fct_customer_value where is_high_end",
    ),
    (
        "Lost and at-risk customers by reason (marts.fct_customer_churn_risk)",
        "select churn_status || ': ' || churn_reason, count(*) from marts.fct_customer_churn_risk"
        " where churn_status <> 'active' group by 1 order by 2 desc",
    ),
    (
        "Complaints needing follow-up (marts.rpt_complaint_followup_queue)",
        "select case when is_overdue then 'overdue' else 'open, on time' end, count(*)"
        " from marts.rpt_complaint_followup_queue group by 1 order by 1",
    ),
    (
        "Online vs stores, last complete month (marts.rpt_channel_comparison)",
        "select 'online revenue / AOV / customers', null union all"
        " select to_char(online_revenue, 'FM999,999,990') || ' / ' || online_average_order_value"
        " || ' / ' || online_customers, null from last_month union all"
        " select 'store revenue / AOV / customers', null union all"
        " select to_char(store_revenue, 'FM999,999,990') || ' / ' || store_average_order_value"
        " || ' / ' || store_customers, null from last_month",
    ),
    (
        "Customers buying 1-2 categories with cross-sell suggestions (marts.fct_cross_sell_gaps)",
        "select 'customers (opted in: ' || count(distinct customer_key) filter"
        " (where is_marketing_opt_in) || ')', count(distinct customer_key)"
        " from marts.fct_cross_sell_gaps",
    ),
)
LAST_MONTH = (
    "with last_month as (select * from marts.rpt_channel_comparison"
    " where period_type = 'month' and is_complete_period order by period_start desc limit 1) "
)


def business_answers(warehouse_url: str) -> list[str]:
    lines = []
    with psycopg.connect(warehouse_url) as conn:
        for title, query in QUESTIONS:
            if "last_month" in query:
                query = LAST_MONTH + query
            try:
                answer = conn.execute(query).fetchall()
            except psycopg.errors.UndefinedTable:
                conn.rollback()
                continue
            lines.append(f"{title}:")
            lines += [
                f"  {label:<45} {n:>7,}" if n is not None else f"  {label}" for label, n in answer
            ]
    return lines


# Each model's latest validation next to its baselines (reporting.model_validation).
VALIDATIONS = (
    (
        "Churn risk (no purchase in 90 days), time split: ROC AUC / Brier",
        "churn",
        "select method, max(value) filter (where metric = 'roc_auc'),"
        " max(value) filter (where metric = 'brier') from latest"
        " where bucket = '' group by method order by method <> 'model', method",
    ),
    *(
        (
            f"Customer forecast, 13-week holdout ({label}): RMSE / correlation / total error %",
            "customer_forecast",
            "select method, max(value) filter (where metric = 'rmse'),"
            " max(value) filter (where metric = 'correlation'),"
            " max(value) filter (where metric = 'total_error_pct') from latest"
            f" where bucket = '' and target = '{target}' group by method"
            " order by method <> 'ml', method",
        )
        for target, label in (("purchases", "purchases"), ("spend", "spend, HKD"))
    ),
    (
        "Sales forecast, 6 rolling 28-day backtests: MASE model / seasonal naive",
        "sales_forecast",
        "select split_part(bucket, ':', 1), max(value) filter (where method = 'model'),"
        " max(value) filter (where method = 'seasonal_naive') from latest"
        " where metric = 'mase' and bucket like '%%:all' group by 1 order by 1",
    ),
)


METHOD_LABELS: dict = {
    "model": "model",
    "ml": "model",
    "rule": "rule (churn status)",
    ("churn", "bgnbd"): "BG/NBD 1 - P(alive)",
    "bgnbd": "BG/NBD",
    "bgnbd_no_purchase": "BG/NBD P(no purchase)",
    "pareto_nbd": "Pareto/NBD",
}


def model_validation(warehouse_url: str) -> list[str]:
    lines = []
    with psycopg.connect(warehouse_url) as conn:
        for title, model, query in VALIDATIONS:
            latest = (
                "with latest as (select * from reporting.model_validation where model = %(model)s"
                " and run_id = (select max(run_id) from reporting.model_validation"
                " where model = %(model)s)) "
            )
            try:
                rows = conn.execute(latest + query, {"model": model}).fetchall()
            except psycopg.errors.UndefinedTable:
                conn.rollback()
                return lines
            lines.append(f"{title}:")
            if not rows:
                lines.append("  not validated yet (history too short; see ops.model_runs)")
            for label, *values in rows:
                shown = " / ".join("-" if v is None else f"{v:,.3f}" for v in values)
                name = METHOD_LABELS.get((model, label)) or METHOD_LABELS.get(label, label)
                lines.append(f"  {name:<24} {shown}")
    return lines
