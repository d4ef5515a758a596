"""`crm demo`: simulated history, a few real nightly runs, and a report of what they produced."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

from include.config import redact, settings

LAYERS = ("raw", "ops", "quarantine", "staging", "intermediate", "marts", "pii", "reporting")


def run_demo(*, history_days: int, nightly_days: int, seed: int) -> None:
    from include.airflow_env import run_nightly
    from include.simulator import simulate

    cfg = settings()
    landing = cfg.landing_url.removeprefix("file://")
    last_day = date.today() - timedelta(days=1)
    first_night = last_day - timedelta(days=nightly_days - 1)
    history_start = first_night - timedelta(days=history_days - 1)
    sim_args = dict(shop_url=cfg.shop_url, ground_truth_dir=cfg.ground_truth_dir, seed=seed)
    simulated_to = _simulated_to(cfg.shop_url)
    started = time.monotonic()
    if simulated_to is None:
        print(f"Simulating {history_days} days of history, {history_start} to {first_night} ...")
        print(
            simulate(landing_dir=Path(landing), start=history_start, days=history_days, **sim_args)
        )
        simulated_to = first_night
    for offset in range(nightly_days):
        day = first_night + timedelta(days=offset)
        if simulated_to < day:
            print(
                simulate(
                    landing_dir=Path(landing),
                    start=None,
                    days=(day - simulated_to).days,
                    **sim_args,
                )
            )
            simulated_to = day
        run_nightly(day)
    print(report(cfg.warehouse_url, as_of=last_day, elapsed=time.monotonic() - started))


def _simulated_to(shop_url: str) -> date | None:
    with psycopg.connect(shop_url) as conn:
        exists = conn.execute("select to_regclass('sim.state')").fetchone()[0]
        if not exists:
            return None
        row = conn.execute("select max(last_day) from sim.state").fetchone()
        return row[0] if row else None


def report(warehouse_url: str, *, as_of: date, elapsed: float | None = None) -> str:
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
    lines.append(f"Customer segments as of {latest}:")
    lines += [f"  {name:<22} {n:>7,}" for name, n in segments]
    lines.append(f"GX Data Docs: {cfg.gx_dir}/uncommitted/data_docs/local_site/index.html")
    lines.append(f"Warehouse: {redact(cfg.warehouse_url)}  (psql: .venv/bin/crm warehouse psql)")
    lines.append(
        "Airflow UI on the same metadata database: .venv/bin/crm airflow standalone "
        "then open http://localhost:8080"
    )
    if elapsed is not None:
        lines.append(f"Demo pipeline time: {elapsed:,.0f} s")
    return "\n".join(lines)
