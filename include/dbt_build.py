"""One `dbt build` per night, and what each node of it did.

The nightly DAG runs dbt once for the whole project (``CRM_DBT_THREADS``
threads, default the machine's cores) rather than one dbt process per model:
a night then costs dbt's own work, not 78 dbt start-ups. dbt's run results are
recorded node by node in ``ops.dbt_node_results``; the DAG's per-node tasks
(:mod:`include.dbt_tasks`) read them, so every model, seed, snapshot and its
tests still has its own status in the Airflow UI.

A second attempt of the same night (a cleared task) builds only what did not
succeed in the attempts before it: the failed and skipped nodes, and the
models whose tests failed, with their tests.

dbt's unit tests check the SQL against fixed inputs, not the night's data, so
the night leaves them out (``--exclude-resource-type unit_test``: they would
sit in front of their models on the critical path); ``make test`` runs them.

After dbt, whatever it did, the department grants of contract/privacy.yml are
applied again (:func:`include.access.apply`): a rebuilt table has none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from include.config import (
    REPO_ROOT,
    CrmError,
    late_days,
    settings,
)
from include.roles import TRANSFORMER

log = logging.getLogger(__name__)

DBT_PROJECT = REPO_ROOT / "dbt_project"
MANIFEST = DBT_PROJECT / "target" / "manifest.json"
BUILT_TYPES = ("model", "seed", "snapshot")
# dbt statuses of a node that did its job ("warn": a test of severity warn found
# rows; "no-op": nothing to run, e.g. an ephemeral model).
OK_STATUSES = frozenset({"success", "pass", "warn", "no-op"})
NIGHT_EXCLUDES = ("--exclude-resource-type", "unit_test")


def dbt_threads() -> int:
    """dbt's thread count: ``CRM_DBT_THREADS``, default the machine's cores."""
    value = os.environ.get("CRM_DBT_THREADS") or str(os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise CrmError(f"CRM_DBT_THREADS must be a whole number of at least 1 (got {value!r}).")
    return int(value)


@dataclass(frozen=True)
class Node:
    """A model, seed or snapshot, the tests that hang on it alone, and where it sits."""

    unique_id: str
    name: str
    resource_type: str
    group: str
    parents: tuple[str, ...]
    tests: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    # Tests of several built nodes (relationships, singular tests over two models)
    # or of sources only, with the built nodes they read.
    cross_tests: dict[str, tuple[str, ...]]
    # unique_id -> name of every data test (the night runs no unit test).
    test_names: dict[str, str]

    @property
    def names(self) -> dict[str, str]:
        """unique_id -> name of every node and test."""
        return {**{u: n.name for u, n in self.nodes.items()}, **self.test_names}


def _group(node: dict) -> str:
    """The UI group of a node: its domain folder (staging, identity, core, ...)."""
    parts = Path(node["original_file_path"]).parts
    if parts[0] == "seeds":
        return "seeds"
    if parts[0] == "models" and parts[1] in ("staging", "pii"):
        return parts[1]
    return parts[2] if len(parts) > 3 else parts[1]


@cache
def project_graph(manifest_path: Path = MANIFEST) -> Graph:
    """The buildable nodes of the dbt project, from its manifest (no dbt call)."""
    if not manifest_path.exists():
        raise CrmError(f"{manifest_path} is missing: run 'make setup' (it runs dbt parse).")
    manifest = json.loads(manifest_path.read_text())
    built = {
        uid: n
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] in BUILT_TYPES and n["config"].get("enabled", True)
    }
    tests = {
        uid: n
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "test" and n["config"].get("enabled", True)
    }
    per_node: dict[str, list[str]] = {uid: [] for uid in built}
    cross: dict[str, tuple[str, ...]] = {}
    for uid, test in sorted(tests.items()):
        parents = sorted({p for p in test["depends_on"]["nodes"] if p in built})
        if len(parents) == 1:
            per_node[parents[0]].append(uid)
        else:  # several nodes, or only sources
            cross[uid] = tuple(parents)
    nodes = {
        uid: Node(
            unique_id=uid,
            name=n["name"],
            resource_type=n["resource_type"],
            group=_group(n),
            parents=tuple(
                sorted({p for p in n.get("depends_on", {}).get("nodes", []) if p in built})
            ),
            tests=tuple(per_node[uid]),
        )
        for uid, n in sorted(built.items())
    }
    return Graph(
        nodes=nodes,
        cross_tests=cross,
        test_names={uid: t["name"] for uid, t in tests.items()},
    )


SECRET_SETTING = "crm.customer_key_secret"
"""The session setting macros/pseudonymise.sql keys customer_key with."""


def dbt_env(warehouse_url: str, customer_key_secret: str | None = None) -> dict[str, str]:
    """The variables ``dbt_project/profiles.yml`` reads, from the warehouse URL, and the
    customer-key secret as a setting of every session dbt opens (libpq's ``PGOPTIONS``),
    so that no compiled SQL, log or artefact ever holds it."""
    url = urlsplit(warehouse_url)
    env = {
        "CRM_PG_HOST": url.hostname or "127.0.0.1",
        "CRM_PG_PORT": str(url.port or 5432),
        "CRM_PG_USER": unquote(url.username or ""),
        "CRM_PG_PASSWORD": unquote(url.password or ""),
        "CRM_PG_DATABASE": url.path.lstrip("/"),
    }
    # the URL's own options (the pipeline role, include/roles.py) reach dbt's sessions
    options = [o for o in [dict(parse_qsl(url.query)).get("options", "")] if o]
    if customer_key_secret is not None:
        escaped = customer_key_secret.replace("\\", "\\\\").replace(" ", "\\ ")
        options.append(f"-c {SECRET_SETTING}={escaped}")
    if options:
        env["PGOPTIONS"] = " ".join(options)
    return env


@dataclass
class NodeOutcome:
    """The latest recorded result of some dbt nodes in one DAG run."""

    statuses: dict[str, tuple[str, str | None]]  # unique_id -> (status, message)
    missing: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and all(s in OK_STATUSES for s, _ in self.statuses.values())

    @property
    def skipped(self) -> bool:
        """dbt skipped some of them (a parent failed) and none failed."""
        found = {s for s, _ in self.statuses.values()}
        return not self.missing and "skipped" in found and found <= OK_STATUSES | {"skipped"}

    def by_name(self, names: dict[str, str]) -> dict[str, str]:
        return {names.get(uid, uid): status for uid, (status, _) in sorted(self.statuses.items())}

    def summary(self, names: dict[str, str] | None = None) -> str:
        names = names or {}
        lines = []
        for uid, (status, message) in sorted(self.statuses.items()):
            lines.append(f"{names.get(uid, uid)}: {status}" + (f" ({message})" if message else ""))
        for uid in self.missing:
            lines.append(
                f"{names.get(uid, uid)}: dbt reported no result (the build stopped before it "
                "or did not select it; see the dbt.build log)"
            )
        return "\n".join(lines)


def latest_results(conn, dag_run_id: str, unique_ids: list[str] | None = None) -> dict:
    """unique_id -> (status, message) of the latest attempt that built it in this run."""
    rows = conn.execute(
        "select distinct on (unique_id) unique_id, status, message from ops.dbt_node_results"
        " where dag_run_id = %s and (%s::text[] is null or unique_id = any(%s))"
        " order by unique_id, attempt desc",
        (dag_run_id, unique_ids, unique_ids),
    ).fetchall()
    return {uid: (status, message) for uid, status, message in rows}


def node_outcome(warehouse_url: str, dag_run_id: str, unique_ids: list[str]) -> NodeOutcome:
    import psycopg

    with psycopg.connect(warehouse_url) as conn:
        statuses = latest_results(conn, dag_run_id, unique_ids)
    return NodeOutcome(statuses=statuses, missing=[u for u in unique_ids if u not in statuses])


@dataclass
class BuildReport:
    attempt: int
    selected: list[str] | None  # None: the whole project
    counts: dict[str, int]
    failures: list[str]
    run_results: Path | None

    def summary(self) -> str:
        scope = "whole project" if self.selected is None else " ".join(self.selected)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return f"dbt build attempt {self.attempt} ({scope}): {counts or 'nothing ran'}"


def _retry_selection(conn, dag_run_id: str, graph: Graph) -> list[str] | None:
    """What an attempt after the first must build: what did not succeed before it.

    None (everything) when no earlier attempt recorded a result or all succeeded.
    """
    latest = latest_results(conn, dag_run_id)
    failed = [uid for uid, (status, _) in latest.items() if status not in OK_STATUSES]
    if not failed:
        return None
    owner = {t: uid for uid, node in graph.nodes.items() for t in node.tests}
    select = set()
    for uid in failed:
        if uid in graph.nodes:
            select.add(graph.nodes[uid].name)
        elif uid in owner:
            select.add(graph.nodes[owner[uid]].name)
        elif uid in graph.test_names:
            select.add(graph.test_names[uid])
    return sorted(select)


def build(
    business_date: date,
    *,
    dag_run_id: str,
    select: list[str] | None = None,
    warehouse_url: str | None = None,
) -> BuildReport:
    """Run one ``dbt build`` for the night and record every node's result.

    ``select`` limits the build (a per-node task re-running its node); without
    it the whole project is built, or, on a later attempt of the same run, only
    what did not succeed before. Raises :class:`CrmError` naming every node
    that failed; the results are recorded first.
    """
    import psycopg
    from dbt.cli.main import dbtRunner

    from include import access

    cfg = settings()
    warehouse_url = warehouse_url or cfg.url_as(TRANSFORMER)  # include/roles.py
    graph = project_graph()
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        (attempt,) = conn.execute(
            "select coalesce(max(attempt), 0) + 1 from ops.dbt_node_results where dag_run_id = %s",
            (dag_run_id,),
        ).fetchone()
        if select is None and attempt > 1:
            select = _retry_selection(conn, dag_run_id, graph)
    work = cfg.home / "dbt"
    target = work / "target"
    args = [
        "build",
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(target),
        "--log-path",
        str(cfg.home / "logs" / "dbt"),
        "--threads",
        str(dbt_threads()),
        "--vars",
        json.dumps(
            {
                "business_date": business_date.isoformat(),
                "incremental_lookback_days": late_days(),
            }
        ),
        *NIGHT_EXCLUDES,
    ]
    if select:
        args += ["--select", *select]
    # cfg.customer_key_secret refuses, before anything is built, the public default
    # for a real warehouse; the secret leaves this process's environment after dbt
    previous_options = os.environ.get("PGOPTIONS")
    os.environ.update(dbt_env(warehouse_url, cfg.customer_key_secret))
    log.info("dbt %s", " ".join(args))
    try:
        result = dbtRunner().invoke(args)
    finally:
        if previous_options is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = previous_options
    # dbt replaced tables with new ones holding no grants: until this runs they
    # are closed to every department, never open (the marts gate checks it).
    access.apply(warehouse_url)
    results = list(getattr(result.result, "results", None) or [])
    rows = [
        (
            dag_run_id,
            attempt,
            r.node.unique_id,
            str(r.node.resource_type),
            r.node.name,
            str(r.status),
            r.message,
            r.failures,
            r.execution_time,
            business_date,
        )
        for r in results
    ]
    if rows:
        with psycopg.connect(warehouse_url) as conn:
            conn.cursor().executemany(
                "insert into ops.dbt_node_results (dag_run_id, attempt, unique_id, resource_type,"
                " name, status, message, failures, execution_time, business_date)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (dag_run_id, attempt, unique_id) do nothing",
                rows,
            )
    kept = _keep_run_results(target, run_dir(dag_run_id, cfg.home) / str(attempt))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[5]] = counts.get(row[5], 0) + 1
    failures = [
        f"{r.node.name} ({r.node.resource_type}): {r.status}"
        + (f": {r.message}" if r.message and str(r.status) != "skipped" else "")
        for r in results
        if str(r.status) not in OK_STATUSES
    ]
    report = BuildReport(
        attempt=attempt, selected=select, counts=counts, failures=failures, run_results=kept
    )
    log.info("%s", report.summary())
    if result.exception is not None:
        raise CrmError(f"dbt build could not run: {result.exception}") from result.exception
    if failures or not result.success:
        shown = "\n  ".join(failures[:40]) or "(no node reported a failure; see dbt's output above)"
        raise CrmError(
            f"dbt build failed for business date {business_date} ({report.summary()}):\n  {shown}"
        )
    if not rows:
        raise CrmError(f"dbt build ran no node for business date {business_date}: nothing built.")
    return report


def run_dir(dag_run_id: str, home: Path) -> Path:
    """Where each attempt of a DAG run's build keeps dbt's run_results.json."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dag_run_id)
    return home / "dbt" / "runs" / safe


def _keep_run_results(target: Path, keep_dir: Path) -> Path | None:
    """Copy dbt's run_results.json of this attempt beside the others of the run."""
    source = target / "run_results.json"
    if not source.exists():
        return None
    keep_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(source, keep_dir / "run_results.json"))


@dataclass(frozen=True)
class Freshness:
    """One source table's freshness at the end of the night's business day."""

    table: str  # raw.<identifier>
    newest: str | None  # the newest loaded_at_field value dbt found (ISO), None: no row
    age_hours: float | None  # from that value to the end of the business day
    warn_after_hours: float | None
    dbt_status: str  # dbt's own verdict, against the clock of the run

    @property
    def fresh(self) -> bool:
        return (
            self.age_hours is not None
            and self.warn_after_hours is not None
            and self.age_hours <= self.warn_after_hours
        )

    def sentence(self) -> str:
        if self.newest is None:
            return f"{self.table}: no row to judge its freshness by (dbt: {self.dbt_status})"
        verdict = "fresh" if self.fresh else "stale"
        return (
            f"{self.table}: {verdict}, newest record {self.newest}, {self.age_hours:.1f} h before "
            f"the end of the business day (warn after {self.warn_after_hours:g} h; dbt, "
            f"against the run's clock: {self.dbt_status})"
        )


_PERIOD_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}


def source_freshness(
    business_date: date,
    *,
    sources: list[str],
    dag_run_id: str | None = None,
    warehouse_url: str | None = None,
) -> list[Freshness]:
    """``dbt source freshness`` of the declared sources, judged at the business day's end.

    dbt measures a source's age against the clock of the run; a night run later (a
    backfill, a replay of a past date) would then call every source stale. The age
    here is from the newest record to midnight Hong Kong ending ``business_date``;
    dbt's own status is kept beside it. The thresholds are the sources' ``warn_after``
    (contract/sources.yml): a stale source is a warning, recorded in
    ``ops.quality_results`` (gate ``source_freshness``), never a failed night; the raw
    gate judges delivery. Raises :class:`CrmError` only if dbt could not run.
    """
    import psycopg
    from dbt.cli.main import dbtRunner

    from include.pipeline import end_of

    cfg = settings()
    warehouse_url = warehouse_url or cfg.url_as(TRANSFORMER)  # include/roles.py
    args = [
        "source",
        "freshness",
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(cfg.home / "dbt" / "target-freshness"),
        "--log-path",
        str(cfg.home / "logs" / "dbt"),
        "--threads",
        str(dbt_threads()),
        "--select",
        *[f"source:{name}" for name in sources],
    ]
    os.environ.update(dbt_env(warehouse_url))
    result = dbtRunner().invoke(args)
    if result.exception is not None:
        raise CrmError(f"dbt source freshness could not run: {result.exception}")
    day_end = end_of(business_date)
    out = []
    for r in getattr(result.result, "results", None) or []:
        node = r.node
        warn = node.freshness.warn_after if node.freshness else None
        warn_hours = warn.count * _PERIOD_HOURS[str(warn.period)] if warn and warn.count else None
        newest = getattr(r, "max_loaded_at", None)
        age = (day_end - newest).total_seconds() / 3600 if newest else None
        out.append(
            Freshness(
                table=f"{node.schema}.{node.identifier}",
                newest=newest.isoformat() if newest else None,
                age_hours=age,
                warn_after_hours=warn_hours,
                dbt_status=str(r.status),
            )
        )
    with psycopg.connect(warehouse_url) as conn:
        conn.cursor().executemany(
            "insert into ops.quality_results (gate, business_date, dag_run_id, table_name, suite,"
            " expectation, severity, success, observed, detail)"
            " values ('source_freshness', %s, %s, %s, 'dbt source freshness',"
            " 'source_is_fresh', 'warning', %s, %s, %s)",
            [
                (
                    business_date,
                    dag_run_id,
                    f.table,
                    f.fresh,
                    None if f.age_hours is None else f"{f.age_hours:.1f} h",
                    f.sentence(),
                )
                for f in out
            ],
        )
    return out
