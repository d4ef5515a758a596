"""ML benchmark: time and peak memory of the model steps at 100k and 1M customers.

    .venv/bin/python bench/ml.py                      # 100k and 1M customers
    .venv/bin/python bench/ml.py --customers 100000   # one scale

It starts its own embedded PostgreSQL (``include.warehouse.EmbeddedWarehouse``) in a
temporary CRM_HOME, and per scale builds a throwaway database holding only the tables
``ml/features.py`` reads, filled in SQL (generate_series): about 2 years of history, each
customer 1-40 purchase days between a first day and a dropout day, 1-3 sales lines per
order with a category, some complaints, logged-in web sessions and loyalty tiers. Building
it is set-up, reported apart.

Each model step runs in a fresh spawned child process (so its peak RSS, ``ru_maxrss`` of
that child, is its own), with ``work_mem`` as ``ml.nightly.Night.connect`` and the thread
limit of ``ml.nightly.ml_threads()`` (threadpoolctl). Models pass between steps as pickles.
Wall and CPU (user + system of the child) cover the step itself, not the imports.
"Scoring" = the two feature queries (customer_features, btyd_summary) once + churn score
(probability, percentile, drivers) + cluster assign + customer forecast score, the models
scoring from those frames (the pure ``score_features`` / ``score_frame``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AS_OF = date(2026, 11, 30)
HISTORY_DAYS = 730

BUILD_SQL = """
drop schema if exists intermediate cascade;
drop schema if exists marts cascade;
create schema intermediate;
create schema marts;
set work_mem = '256MB';
create temp table cust as
select i,
       'C' || lpad(i::text, 8, '0') as customer_key,
       1 + floor(power(random(), 2) * 40)::int as n,
       f,
       f + floor(random() * (%(days)s - f))::int as last_day
from (select i, floor(power(random(), 0.7) * (%(days)s - 1))::int as f
      from generate_series(1, %(n)s) as i) s;
create table intermediate.int_customers__orders as
select c.customer_key,
       case when random() < 0.3 then 'online' else 'store' end as channel,
       %(start)s::date + (c.f + floor(random() * (c.last_day - c.f + 1))::int) as business_date,
       true as is_purchase,
       random() < 0.05 as has_return,
       round((20 + random() * 800)::numeric, 2) as net_amount,
       1 + floor(random() * 3)::int as lines
from cust c, generate_series(1, c.n) as k;
create table marts.fct_sales as
select o.customer_key, o.business_date, o.channel,
       'S' || (1 + floor(random() * 10)::int) as store_code,
       (array['apparel','beauty','home','food','toys','sports','electronics','books'])
           [1 + floor(random() * 8)::int] as category,
       false as is_return, false as is_void, random() < 0.01 as is_unknown_sku,
       (o.net_amount / o.lines)::numeric(12, 2) as net_amount
from intermediate.int_customers__orders o, generate_series(1, o.lines) as l;
create table marts.fct_complaints as
select customer_key, business_date from intermediate.int_customers__orders
where random() < 0.02;
create table marts.fct_web_sessions as
select c.customer_key, random() < 0.7 as is_logged_in,
       %(start)s::date + floor(random() * %(days)s)::int as business_date
from cust c, lateral generate_series(1, floor(random() * 8 + c.i * 0)::int) as k;
create table intermediate.int_customers__loyalty_tier_history as
select customer_key, %(start)s::date + f as tier_date,
       (array['classic','silver','gold','platinum'])[1 + floor(power(random(), 2) * 4)::int]
           as to_tier
from cust where random() < 0.6;
analyze;
"""


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "?")  # fmt: skip
    mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")))  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GB RAM, Python {sys.version.split()[0]}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# =============================================================================================
# Steps (run in a spawned child)
# =============================================================================================
def _connect(url: str):
    import psycopg

    from ml.nightly import WORK_MEM

    conn = psycopg.connect(url)
    conn.execute(f"set work_mem = '{WORK_MEM}'")
    conn.commit()
    return conn


def _save(work: Path, name: str, obj) -> None:
    (work / f"{name}.pkl").write_bytes(pickle.dumps(obj))


def _load(work: Path, name: str):
    return pickle.loads((work / f"{name}.pkl").read_bytes())


def step_features(conn, work):
    from ml.features import customer_features

    _save(work, "features", customer_features(conn, AS_OF))


def step_churn_train(conn, work):
    from ml import churn

    _save(work, "churn", churn.train(conn, AS_OF))


def step_churn_score(conn, work):
    from ml import churn

    model, features = _load(work, "churn"), _load(work, "features")
    t0 = time.perf_counter()
    churn.score_features(model, features, AS_OF)
    return time.perf_counter() - t0


def step_clusters_train(conn, work):
    from ml import clusters

    _save(work, "clusters", clusters.train(_load(work, "features")))


def step_clusters_assign(conn, work):
    model, features = _load(work, "clusters"), _load(work, "features")
    t0 = time.perf_counter()
    model.assign(features)
    return time.perf_counter() - t0


def step_forecast_train(conn, work):
    from ml import customer_forecast

    _save(work, "forecast", customer_forecast.train(conn, AS_OF))


def step_forecast_score(conn, work):
    from ml import customer_forecast

    model, features = _load(work, "forecast"), _load(work, "features")
    summary = _load(work, "summary")
    t0 = time.perf_counter()
    customer_forecast.score_frame(model, features, summary, AS_OF)
    return time.perf_counter() - t0


def step_btyd_summary(conn, work):
    from ml.features import btyd_summary

    _save(work, "summary", btyd_summary(conn, AS_OF))


def step_bgnbd_fit(conn, work):
    from ml.btyd import BgNbd

    s = _load(work, "summary")
    BgNbd.fit(s["x"], s["t_x"], s["T"])


def step_pareto_fit(conn, work):
    from ml.btyd import ParetoNbd

    s = _load(work, "summary")
    ParetoNbd.fit(s["x"], s["t_x"], s["T"])


def step_sales_forecast(conn, work):
    from ml import sales_forecast

    history = sales_forecast.daily_sales(conn, until=AS_OF)
    sales_forecast.forecast(history, cutoff=AS_OF)


STEPS = {
    "features (customer_features)": step_features,
    "btyd_summary": step_btyd_summary,
    "churn train": step_churn_train,
    "churn score (probability, percentile, drivers)": step_churn_score,
    "clusters train (sample)": step_clusters_train,
    "clusters assign": step_clusters_assign,
    "customer forecast train": step_forecast_train,
    "customer forecast score": step_forecast_score,
    "BG/NBD fit": step_bgnbd_fit,
    "Pareto/NBD fit": step_pareto_fit,
    "sales forecast (daily_sales + forecast)": step_sales_forecast,
}
#: Scoring a night: the two feature queries once, then every model from those frames.
SCORING = ("features (customer_features)", "btyd_summary", "churn score (probability, percentile, drivers)", "clusters assign", "customer forecast score")  # fmt: skip


def _child(name: str, url: str, work: str, queue) -> None:
    from threadpoolctl import threadpool_limits

    from ml.nightly import ml_threads

    conn = _connect(url)
    with threadpool_limits(ml_threads()):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        try:
            inner = STEPS[name](conn, Path(work))
        except ValueError as error:  # a fit the synthetic data do not identify
            print(f"# {name}: {error}", file=sys.stderr, flush=True)
            inner = None
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    conn.close()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    queue.put({"wall": inner if inner is not None else wall, "cpu": cpu, "peak_mb": r1.ru_maxrss / 1024})  # fmt: skip


def run_step(name: str, url: str, work: Path) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, url, str(work), queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"step {name} failed (exit code {proc.exitcode})")
    return queue.get()


# =============================================================================================
def build(server_url_for, admin_url: str, n: int) -> tuple[str, float, dict]:
    import psycopg

    db = f"bench_ml_{n}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{db}"')
        conn.execute(f'create database "{db}"')
    url = server_url_for(db)
    start = date.fromordinal(AS_OF.toordinal() - HISTORY_DAYS + 1)
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in BUILD_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement.replace("%(days)s", str(HISTORY_DAYS)).replace("%(n)s", str(n)).replace("%(start)s", f"'{start}'"))  # fmt: skip
        counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in ("intermediate.int_customers__orders", "marts.fct_sales", "marts.fct_web_sessions", "marts.fct_complaints")}  # fmt: skip
    return url, time.perf_counter() - t0, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, action="append", help="scale (repeatable); default 100000 and 1000000")  # fmt: skip
    parser.add_argument("--skip", action="append", default=[], help="skip a step by name")
    args = parser.parse_args()
    scales = args.customers or [100_000, 1_000_000]

    from include.warehouse import EmbeddedWarehouse

    home = Path(tempfile.mkdtemp(prefix="bench-ml-"))
    wh = EmbeddedWarehouse(home)
    started = datetime.now(UTC)
    load_before = loadavg()
    results: dict[int, dict] = {}
    setup: dict[int, str] = {}
    try:
        say(wh.start())
        for n in scales:
            say(f"building {n:,} customers")
            url, secs, counts = build(wh.url, wh.url("postgres"), n)
            rows = ", ".join(f"{k.split('.')[1]} {v:,}" for k, v in counts.items())
            setup[n] = f"{secs:.0f} s ({rows})"
            say(f"built in {setup[n]}")
            work = home / f"work{n}"
            work.mkdir()
            results[n] = {}
            for name in STEPS:
                if name in args.skip:
                    continue
                say(f"{n:,}: {name}")
                results[n][name] = run_step(name, url, work)
                say(f"  {results[n][name]}")
    finally:
        say(wh.stop())
        shutil.rmtree(home, ignore_errors=True)
    load_after = loadavg()

    cmd = " ".join([".venv/bin/python", "bench/ml.py", *sys.argv[1:]])
    print(f"## Results: ML benchmark, {started:%Y-%m-%d %H:%M} UTC\n")
    print(f"- Machine: {machine()}; load average before {load_before}, after {load_after}")
    print(f"- Command: `{cmd}`; as_of {AS_OF}, {HISTORY_DAYS} days of history, ML threads {os.environ.get('CRM_ML_THREADS', '1')}")  # fmt: skip
    for n, text in setup.items():
        print(f"- Set-up at {n:,} customers (not in the results): {text}")
    print()
    head = " | ".join(f"{n // 1000}k wall s | {n // 1000}k CPU s | {n // 1000}k peak MB" for n in scales)  # fmt: skip
    print(f"| step | {head} |")
    print("|---|" + "---:|" * (3 * len(scales)))
    for name in STEPS:
        cells = []
        for n in scales:
            r = results.get(n, {}).get(name)
            cells += (
                [f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['peak_mb']:.0f}"] if r else ["-"] * 3
            )
        print(f"| {name} | {' | '.join(cells)} |")
    cells = []
    for n in scales:
        total = sum(results[n][s]["wall"] for s in SCORING if s in results.get(n, {}))
        cells += [f"**{total:.1f}** ({'under' if total < 120 else 'over'} 2 min)", "", ""]
    print(f"| **scoring total** (features + btyd_summary + churn score + assign + forecast score) | {' | '.join(cells)} |")  # fmt: skip


if __name__ == "__main__":
    main()
