"""Nightly run benchmark: where the time of one `crm run --date D` goes.

    .venv/bin/python bench/nightly.py            # demo scale: 5000 customers, 10 stores, 90 days, 2 nights
    .venv/bin/python bench/nightly.py --customers 400 --stores 3 --history-days 14   # a quick check

It makes its own CRM_HOME (a temporary folder unless --home), starts the
embedded warehouse there (``crm warehouse start``), simulates --history-days
days ending the day before the first night (``crm simulate``), migrates
Airflow's metadata database once (timed apart: a first ``crm run`` does it),
then for each of the last --nights complete Hong Kong business days (simulated
up front with the history) in one ``crm run --date <first> --days N``, as a user
would: one Airflow process runs every night. A night's wall time runs from the
end of the night before (for the first, the start of the command) to the line
``crm run`` prints when the night ends. WAREHOUSE_URL, SHOP_DB_URL, LANDING_URL and
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN are removed from the environment, so
nothing outside the temporary home is touched.

For each night the task instances of its DAG run are read from Airflow's
metadata database (the ``airflow`` database of the embedded server) and the
night is split into its parts: the loads, the two gates, the one ``dbt build``
(``dbt.build``), the per-node status tasks, the publication, and what is
left of the night's wall time (orchestration overhead: for the first
night the start of ``crm run`` and Airflow before the first task, the status
tasks, the gaps between tasks, the end after the last). Under ``airflow dags
test`` the tasks run one after another, so the sums are also time spans.

After the nights the last night's ``dbt build`` is run once more outside
Airflow, in this process (``include.dbt_build.build``, same threads, same
business date; idempotent), to compare with the same build inside Airflow.

Every dbt node of each night that failed, erred or warned is listed with
dbt's message, then the slowest nodes: run at ten times the demo's scale
(``--customers 50000 --stores 40``) it finds what only scale reaches.

The machine is small and shared: the load average is sampled every 5 s during
the nights and reported with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: crm, airflow
OUTSIDE = ("WAREHOUSE_URL", "SHOP_DB_URL", "LANDING_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
DAG_ID = "crm_nightly"
LOADS = ("extract_shop", "load_pos", "load_stores", "load_loyalty", "load_web", "load_complaints", "load_privacy")  # fmt: skip


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# =============================================================================================
# Machine and code
# =============================================================================================
def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))  # fmt: skip
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem_kb / 1024 / 1024}


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


class LoadSampler:
    """The 1-minute load average every ``interval`` seconds, in a thread, with the time (UTC)."""

    def __init__(self, interval: float = 5.0):
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loadavg", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((datetime.now(UTC), loadavg()[0]))
            self._stop.wait(self.interval)

    def mean(self, start: datetime | None, end: datetime | None) -> float | None:
        """Mean 1-minute load of the samples taken between ``start`` and ``end``."""
        inside = [x for t, x in self.samples if start and end and start <= t <= end]
        return sum(inside) / len(inside) if inside else None

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        s = [x for _, x in self.samples]
        return f"min {min(s):.2f}, mean {sum(s) / len(s):.2f}, max {max(s):.2f} ({len(s)} samples)"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def code_state() -> str:
    commit = git("rev-parse", "--short", "HEAD")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout  # fmt: skip
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    if not dirty:
        return f"git {commit}, clean working tree"
    return f"git {commit} + uncommitted changes in {len(dirty)} paths ({', '.join(dirty[:12])}{', ...' if len(dirty) > 12 else ''})"  # fmt: skip


# =============================================================================================
# Running the CLI
# =============================================================================================
def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in OUTSIDE}


def crm(*args: str, what: str) -> float:
    """Run ``crm <args>`` (its output to stderr); its wall time in seconds. Exits on failure."""
    say(f"crm {' '.join(args)}")
    t0 = time.perf_counter()
    result = subprocess.run([str(BIN / "crm"), *args], env=child_env(), cwd=REPO, stdout=sys.stderr)  # fmt: skip
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{what} failed (crm {' '.join(args)}, exit code {result.returncode})")
    return wall


@dataclass
class Night:
    day: date
    wall: float = 0.0
    cpu: float = 0.0  # user + sys of crm run and its children
    started: datetime | None = None
    ended: datetime | None = None
    returncode: int = 0
    run_id: str | None = None
    state: str | None = None
    tis: list[tuple] = field(default_factory=list)  # (task_id, state, start, end, duration)
    load: float | None = None  # mean 1-minute load average during the night
    build_load: float | None = None  # ... during its dbt.build


def run_nights(nights: list[Night]) -> None:
    """``crm run --date <first> --days N``: one command, one Airflow process for every night.

    A night's wall time runs from the end of the one before (for the first, the
    start of the command) to the line ``crm run`` prints when it ends; CPU time
    is the command's, shared evenly.
    """
    first, days = nights[0].day, len(nights)
    say(f"nights {first} to {nights[-1].day}: crm run --date {first} --days {days}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ends = {n.day.isoformat(): n for n in nights}
    mark, mark_at = time.perf_counter(), datetime.now(UTC)
    proc = subprocess.Popen(
        [str(BIN / "crm"), "run", "--date", first.isoformat(), "--days", str(days)],
        env=child_env(), cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        sys.stderr.write(line)
        head = line.split(":", 1)[0]  # "night 2026-11-30" of "night 2026-11-30: success in ..."
        night = ends.get(head.removeprefix("night ").strip()) if ": " in line else None
        if night is None or night.wall:
            continue
        now, now_at = time.perf_counter(), datetime.now(UTC)
        night.wall, night.started, night.ended = now - mark, mark_at, now_at
        mark, mark_at = now, now_at
    returncode = proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for night in nights:
        night.cpu = cpu / days
        night.returncode = returncode if not night.wall or night is nights[-1] else 0


def read_tis(metadata_url: str, night: Night) -> None:
    import psycopg

    from include.airflow_env import logical_date_for

    with psycopg.connect(metadata_url) as conn:
        row = conn.execute(
            "select run_id, state from dag_run where dag_id = %s and logical_date = %s"
            " order by id desc limit 1",
            (DAG_ID, logical_date_for(night.day)),
        ).fetchone()
        if row is None:
            return
        night.run_id, night.state = row
        night.tis = conn.execute(
            "select task_id, state, start_date, end_date, duration from task_instance"
            " where dag_id = %s and run_id = %s order by start_date nulls last, task_id",
            (DAG_ID, night.run_id),
        ).fetchall()


def simulated_to(shop_url: str) -> date | None:
    import psycopg

    with psycopg.connect(shop_url) as conn:
        if conn.execute("select to_regclass('sim.state')").fetchone()[0] is None:
            return None
        return conn.execute("select max(last_day) from sim.state").fetchone()[0]


# =============================================================================================
# Breakdown
# =============================================================================================
def breakdown(night: Night) -> dict:
    """The parts of one night, in seconds (None where a task did not run)."""
    dur = {t: d for t, _, _, _, d in night.tis}

    def one(task_id: str) -> float | None:
        return dur.get(task_id)

    def total(task_ids) -> float:
        return sum(dur.get(t) or 0.0 for t in task_ids)

    status_ids = [t for t in dur if t.startswith("dbt.") and t != "dbt.build"]
    load_tis = [ti for ti in night.tis if ti[0] in LOADS and ti[2] and ti[3]]
    timed = [ti for ti in night.tis if ti[2] and ti[3]]
    first = min((ti[2] for ti in timed), default=None)
    last = max((ti[3] for ti in timed), default=None)
    loads = total(LOADS)
    parts = loads + total(("gate_raw", "dbt.build", "gate_marts", "publish_segments"))
    span = (last - first).total_seconds() if timed else None
    all_tis = total(dur)
    return {
        "loads": loads,
        "loads_span": (max(t[3] for t in load_tis) - min(t[2] for t in load_tis)).total_seconds()
        if load_tis
        else None,  # fmt: skip
        "n_loads": sum(t in dur for t in LOADS),
        "gate_raw": one("gate_raw"),
        "dbt_build": one("dbt.build"),
        "status": total(status_ids),
        "n_status": len(status_ids),
        "gate_marts": one("gate_marts"),
        "publish": one("publish_segments"),
        "parts": parts,
        "span": span,
        "gaps": span - all_tis if span is not None else None,
        "before": (first - night.started).total_seconds() if first else None,
        "after": (night.ended - last).total_seconds() if last else None,
        "wall": night.wall,
        "overhead": night.wall - parts,
        "ratio": night.wall / parts if parts else None,
        "cpu": night.cpu,
        "n_tis": len(night.tis),
        "states": sorted({s or "none" for _, s, _, _, _ in night.tis}),
    }


def fmt(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.1f}{unit}"


def pct(value: float | None, wall: float) -> str:
    return "" if value is None or not wall else f" ({100 * value / wall:.0f}%)"


def night_table(nights: list[Night]) -> str:
    rows = [(n, breakdown(n)) for n in nights]
    head = "| part (seconds; % of the night's wall) | " + " | ".join(f"night {n.day}" for n, _ in rows) + " |"  # fmt: skip
    out = [head, "|---|" + "---:|" * len(rows)]

    def line(label: str, key: str, with_pct: bool = True, bold: bool = False) -> None:
        cells = []
        for _, b in rows:
            cell = fmt(b[key]) + (pct(b[key], b["wall"]) if with_pct else "")
            cells.append(f"**{cell}**" if bold else cell)
        out.append(f"| {'**' + label + '**' if bold else label} | " + " | ".join(cells) + " |")

    b0 = rows[0][1]
    line(f"loads: extract_shop + 6 load_<source> ({b0['n_loads']} tasks, sum of durations)", "loads")  # fmt: skip
    line("loads: wall span (first start to last end)", "loads_span")
    line("gate_raw", "gate_raw")
    line("dbt build (dbt.build)", "dbt_build")
    line(f"dbt status tasks ({b0['n_status']} tasks, sum)", "status")
    line("gate_marts", "gate_marts")
    line("publish_segments", "publish")
    line("sum of parts (loads + gates + dbt build + publish)", "parts", bold=True)
    line("DAG run span (first task start to last task end)", "span")
    line("night wall (within one `crm run --date <first> --days N`)", "wall", bold=True)
    line("orchestration overhead (wall − sum of parts)", "overhead", bold=True)
    line("&nbsp;&nbsp;of which: before the first task (first night: crm and Airflow start-up)", "before")  # fmt: skip
    line("&nbsp;&nbsp;of which: dbt status tasks", "status")
    line("&nbsp;&nbsp;of which: between tasks (span − all task durations)", "gaps")
    line("&nbsp;&nbsp;of which: after the last task (to the night's end line)", "after")
    out.append("| wall / sum of parts | " + " | ".join(f"**{b['ratio']:.2f}**" if b["ratio"] else "–" for _, b in rows) + " |")  # fmt: skip
    out.append("| mean 1-min load average during the night / during its dbt.build | " + " | ".join(f"{fmt(n.load)} / {fmt(n.build_load)}" for n, _ in rows) + " |")  # fmt: skip
    line("CPU of `crm run` and its children per night (user + sys, shared evenly; excludes PostgreSQL)", "cpu", with_pct=False)  # fmt: skip
    out.append("| task instances (states) | " + " | ".join(f"{b['n_tis']} ({', '.join(b['states'])})" for _, b in rows) + " |")  # fmt: skip
    return "\n".join(out)


def slowest_table(night: Night, n: int = 8) -> str:
    timed = sorted((ti for ti in night.tis if ti[4] is not None), key=lambda ti: -ti[4])
    out = ["| task | seconds |", "|---|---:|"]
    out += [f"| {t} | {d:.1f} |" for t, _, _, _, d in timed[:n]]
    return "\n".join(out)


# =============================================================================================
# Standalone dbt build
# =============================================================================================
@dataclass
class Standalone:
    import_s: float
    build_s: float
    summary: str
    run_id: str
    started: datetime
    ended: datetime
    load: float | None = None


def standalone_build(day: date) -> Standalone:
    """The night's ``dbt build`` once more, in this process, outside Airflow."""
    t0 = time.perf_counter()
    import dbt.cli.main  # noqa: F401  (what a task process pays once, timed apart)

    from include.dbt_build import build

    imported = time.perf_counter()
    run_id = f"bench-standalone-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    say(f"standalone dbt build for {day} (dag_run_id {run_id}) ...")
    started = datetime.now(UTC)
    with contextlib.redirect_stdout(sys.stderr):  # dbt's console log: not in the report
        report = build(day, dag_run_id=run_id)
    done = time.perf_counter()
    return Standalone(imported - t0, done - imported, report.summary(), run_id, started, datetime.now(UTC))  # fmt: skip


def node_times(warehouse_url: str, run_ids: list[str]) -> dict[str, dict[str, tuple[str, float]]]:
    """dbt's own execution time per node of each build: run id -> unique_id -> (name, seconds)."""
    import psycopg

    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select dag_run_id, unique_id, name, coalesce(execution_time, 0) from ops.dbt_node_results"
            " where dag_run_id = any(%s) and attempt = 1",
            (run_ids,),
        ).fetchall()
    out: dict[str, dict[str, tuple[str, float]]] = {r: {} for r in run_ids}
    for run_id, uid, name, seconds in rows:
        out[run_id][uid] = (name, float(seconds))
    return out


def node_results(warehouse_url: str, nights: list[Night]) -> dict[str, list[tuple]]:
    """Every node of each night's dbt build (all attempts): run id -> (attempt, unique_id, status, seconds, message)."""
    import psycopg

    run_ids = [n.run_id for n in nights if n.run_id]
    out: dict[str, list[tuple]] = {r: [] for r in run_ids}
    with psycopg.connect(warehouse_url) as conn:
        for row in conn.execute(
            "select dag_run_id, attempt, unique_id, status, coalesce(execution_time, 0), message"
            " from ops.dbt_node_results where dag_run_id = any(%s) order by dag_run_id, attempt, unique_id",
            (run_ids,),
        ):
            out[row[0]].append(row[1:])
    return out


def nodes_report(night: Night, rows: list[tuple], n: int = 12) -> str:
    """What a scale run is for: every dbt node that did not pass, then the slowest nodes."""
    bad = [r for r in rows if r[2] not in ("success", "pass", "skipped", "no-op")]
    skipped = sum(r[2] == "skipped" for r in rows)
    out = [
        f"dbt nodes of the night of {night.day}: {len(rows)} results, {len(bad)} failed, erred or warned, {skipped} skipped\n"
    ]
    if bad:
        out += ["| attempt | node | status | message |", "|---:|---|---|---|"]
        out += [f"| {a} | {uid} | {st} | {(msg or '').splitlines()[0][:160] if msg else ''} |" for a, uid, st, _, msg in bad]  # fmt: skip
        out.append("")
    out += ["| slowest nodes | status | seconds |", "|---|---|---:|"]
    out += [f"| {uid} | {st} | {sec:.1f} |" for _, uid, st, sec, _ in sorted(rows, key=lambda r: -r[3])[:n]]  # fmt: skip
    return "\n".join(out)


def node_table(times: dict, in_airflow: str, alone: str, n: int = 6) -> str:
    """Sums of dbt's per-node execution times of the two builds, and the nodes that differ most."""
    a, b = times[in_airflow], times[alone]

    def total(nodes: dict, tests: bool) -> float:
        return sum(s for uid, (_, s) in nodes.items() if uid.startswith(("test.", "unit_test.")) == tests)  # fmt: skip

    out = ["| dbt's per-node execution time (s, summed over nodes; 2 threads overlap) | in Airflow | standalone |", "|---|---:|---:|"]  # fmt: skip
    out.append(f"| models, seeds, snapshots | {total(a, False):.1f} | {total(b, False):.1f} |")
    out.append(f"| tests (data and unit) | {total(a, True):.1f} | {total(b, True):.1f} |")
    out.append(f"| nodes with a result | {len(a)} | {len(b)} |")
    common = [uid for uid in a if uid in b]
    common.sort(key=lambda uid: -abs(b[uid][1] - a[uid][1]))
    for uid in common[:n]:
        out.append(f"| &nbsp;&nbsp;{a[uid][0]} | {a[uid][1]:.1f} | {b[uid][1]:.1f} |")
    return "\n".join(out)


# =============================================================================================
# Main
# =============================================================================================
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--stores", type=int, default=10)
    p.add_argument("--history-days", type=int, default=90, help="days simulated before the first night")  # fmt: skip
    p.add_argument("--nights", type=int, default=2, help="nightly runs: the last N complete Hong Kong days")  # fmt: skip
    p.add_argument("--threads", type=int, help="dbt threads (CRM_DBT_THREADS); default: the environment's, else the cores")  # fmt: skip
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--home", help="CRM_HOME to use (kept); default a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary CRM_HOME")
    args = p.parse_args()
    if args.nights < 1 or args.history_days < 1:
        raise SystemExit("--nights and --history-days must be at least 1")

    home = Path(args.home).resolve() if args.home else Path(tempfile.mkdtemp(prefix="crm-bench-nightly-"))  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    # Before any include module reads it: everything of this run lives in `home`.
    os.environ["CRM_HOME"] = str(home)
    for name in OUTSIDE:
        os.environ.pop(name, None)
    if args.threads is not None:
        os.environ["CRM_DBT_THREADS"] = str(args.threads)
    sys.path.insert(0, str(REPO))
    from include.airflow_env import airflow_env, check_business_dates, migrate
    from include.config import settings
    from include.dbt_build import dbt_threads
    from include.pipeline import last_complete_business_date
    from include.warehouse import EmbeddedWarehouse

    threads = dbt_threads()
    os.environ["CRM_DBT_THREADS"] = str(threads)  # the same for the DAG and the standalone build
    started = datetime.now(UTC)
    load_start, code = loadavg(), code_state()
    last_night = last_complete_business_date()
    first_night = last_night - timedelta(days=args.nights - 1)
    history_start = first_night - timedelta(days=args.history_days)
    check_business_dates(first_night, args.nights)
    say(f"CRM_HOME={home}; nights {first_night} to {last_night}; dbt threads {threads}")
    nights: list[Night] = []
    setup: dict[str, float] = {}
    wh = EmbeddedWarehouse(home)
    failed = None
    standalone = None
    dbt_nodes: dict[str, list[tuple]] = {}
    todo: list[Night] = []
    try:
        setup["warehouse start"] = crm("warehouse", "start", what="warehouse start")
        cfg = settings()
        scale = ["--customers", str(args.customers), "--stores", str(args.stores), "--seed", str(args.seed)]  # fmt: skip
        done_to = simulated_to(cfg.shop_url)
        # Every day, the nights' included, is simulated before the first night: simulating
        # a day after the previous night ran rewrites web files (by UTC hour) of the date
        # that night loaded, which the loader then refuses as changed.
        if done_to is None:
            days = args.history_days + args.nights
            setup[f"simulate history and nights ({days} days)"] = crm(
                "simulate", "--start", history_start.isoformat(), "--days", str(days),
                *scale, "--quiet", what="simulate",
            )  # fmt: skip
            done_to = history_start + timedelta(days=days - 1)
        else:
            say(f"{home} is already simulated to {done_to}: history not simulated again")
        if done_to < last_night:
            setup["simulate the missing days"] = crm("simulate", "--days", str((last_night - done_to).days), *scale, "--quiet", what="simulate")  # fmt: skip
        env = airflow_env()
        log = home / "logs" / "bench-airflow-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with log.open("a") as fh, contextlib.redirect_stdout(sys.stderr):
            migrate(env, log=fh)
        setup["airflow db migrate (once; else in the first night)"] = time.perf_counter() - t0
        metadata_url = wh.url("airflow")

        with LoadSampler() as sampler:
            todo = [Night(first_night + timedelta(days=i)) for i in range(args.nights)]
            run_nights(todo)
            for night in todo:
                read_tis(metadata_url, night)
                if not night.wall:
                    failed = failed or night
                    continue
                build_ti = next((ti for ti in night.tis if ti[0] == "dbt.build"), None)
                night.load = sampler.mean(night.started, night.ended)
                if build_ti:
                    night.build_load = sampler.mean(build_ti[2], build_ti[3])
                nights.append(night)
                say(f"night {night.day}: run {night.state}, {night.wall:.1f} s, load {loadavg()[0]:.2f}")  # fmt: skip
                if night.state != "success":
                    failed = failed or night
            if failed is None and todo[-1].returncode != 0:
                failed = todo[-1]
            load_nights = sampler.summary()
            dbt_nodes = node_results(cfg.warehouse_url, todo)
            if failed is None:
                standalone = standalone_build(last_night)
                standalone.load = sampler.mean(standalone.started, standalone.ended)
                times = node_times(cfg.warehouse_url, [nights[-1].run_id, standalone.run_id])
    finally:
        load_end = loadavg()
        with contextlib.suppress(Exception):
            say(wh.stop())
        if args.home or args.keep:
            say(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    m = machine()
    print(f"### Nightly run, {args.customers:,} customers, {args.stores} stores, {args.history_days} days of history, {args.nights} night(s); {started:%Y-%m-%d %H:%M} UTC\n")  # fmt: skip
    print(f"- Command: `.venv/bin/python bench/nightly.py --customers {args.customers} --stores {args.stores} --history-days {args.history_days} --nights {args.nights}" + (f" --threads {args.threads}" if args.threads else "") + "`")  # fmt: skip
    print(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']:.1f} GB RAM; Python {platform.python_version()}; embedded PostgreSQL on the same host")  # fmt: skip
    print(f"- Load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_start)} at start; 1-min during the nights: {load_nights}; {', '.join(f'{x:.2f}' for x in load_end)} at the end")  # fmt: skip
    print(f"- Code measured: {code}")
    print(f"- dbt threads: {threads} (CRM_DBT_THREADS); business dates {first_night} to {last_night}")  # fmt: skip
    print("- Set-up (not part of any night): " + "; ".join(f"{k} {v:.1f} s" for k, v in setup.items()))  # fmt: skip
    if nights:
        print("\n#### Where a night's time goes\n")
        print(night_table(nights))
        print(f"\nSlowest tasks of the night of {nights[-1].day}:\n")
        print(slowest_table(nights[-1]))
    for night in todo:
        if dbt_nodes.get(night.run_id):
            print("\n" + nodes_report(night, dbt_nodes[night.run_id]))
    if failed is not None:
        print(f"\n**The night of {failed.day} failed** (crm run exit code {failed.returncode}, DAG run {failed.state}); Airflow's log for it: {home / 'logs' / 'nightly' / f'{failed.day}.log'}" + (" (deleted with the temporary home; rerun with --keep)" if not (args.home or args.keep) else ""))  # fmt: skip
        failed_tis = [t for t, s, _, _, _ in failed.tis if s == "failed"]
        print(f"Failed tasks: {', '.join(failed_tis) or 'none recorded'}")
        raise SystemExit(1)
    if standalone is not None:
        in_af = breakdown(nights[-1])["dbt_build"]
        alone = standalone.import_s + standalone.build_s
        print(f"\n#### One dbt build of the night of {last_night}, inside and outside Airflow ({threads} threads)\n")  # fmt: skip
        print("| dbt build | seconds |\n|---|---:|")
        print(f"| in Airflow: dbt.build task duration (night {last_night}) | {fmt(in_af)} |")
        print(f"| standalone in this process: import dbt | {standalone.import_s:.1f} |")
        print(f"| standalone in this process: `include.dbt_build.build` (same night rebuilt) | {standalone.build_s:.1f} |")  # fmt: skip
        print(f"| standalone total | {alone:.1f} |")
        if in_af:
            print(f"| in Airflow / standalone total | {in_af / alone:.2f} |")
        print(f"| mean 1-min load average: in-Airflow build / standalone build | {fmt(nights[-1].build_load)} / {fmt(standalone.load)} |")  # fmt: skip
        print(f"\nStandalone: {standalone.summary}\n")
        print(node_table(times, nights[-1].run_id, standalone.run_id))


if __name__ == "__main__":
    main()
