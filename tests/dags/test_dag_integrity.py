"""Policy tests over every DAG file: imports, structure, documentation, retries, import cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "sklearn", "great_expectations", "psycopg", "psycopg2", "dbt.cli", "numpy")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dag_files_exist():
    assert DAG_FILES, "no DAG files found"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_imports_without_errors(dagbag, path):
    errors = {Path(k).name: v for k, v in dagbag.import_errors.items()}
    assert path.name not in errors, errors.get(path.name)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_parse_time(path):
    """Parsing a DAG file must stay cheap: no pandas, sklearn, GX or database driver at import."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    marker = [line for line in result.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, result.stdout[-2000:]
    loaded = marker[-1].removeprefix("HEAVY=")
    assert loaded == "", f"{path.name} imports {loaded} at parse time"


def test_every_dag_is_documented_tagged_and_retried(dagbag):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "Triage" in dag.doc_md, (
            f"{dag_id}: doc_md must say how to triage a failure"
        )
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.catchup is False or dag.catchup is True
        assert dag.start_date.tzinfo is not None, f"{dag_id}: start_date must be timezone-aware"
        assert dag.max_active_runs == 1, f"{dag_id}: runs of one DAG must not overlap"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag_id}: no retries by default"
        assert dag.default_args.get("on_failure_callback"), f"{dag_id}: no failure alerting"
        for task in dag.tasks:
            # dbt tasks are deliberately not retried (a model or data bug will not heal);
            # every extract, load, gate and publish task is.
            if not task.task_id.startswith("dbt."):
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_no_cycles_and_gates_guard_publication(dagbag):
    dag = dagbag.dags["crm_nightly"]
    order = [t.task_id for t in dag.topological_sort()]  # raises on a cycle
    assert len(order) == len(set(order))
    publish = dag.get_task("publish_segments")
    upstream = {t.task_id for t in publish.get_flat_relatives(upstream=True)}
    assert {"gate_raw", "gate_marts", "extract_shop", "load_pos", "load_web"} <= upstream
    assert any(t.startswith("dbt.") for t in upstream)
    # dbt only starts after the raw gate.
    dbt_roots = [
        t
        for t in dag.tasks
        if t.task_id.startswith("dbt.")
        and not any(u.startswith("dbt.") for u in t.upstream_task_ids)
    ]
    assert dbt_roots and all("gate_raw" in t.upstream_task_ids for t in dbt_roots)


def test_every_landing_source_has_its_load_task(dagbag):
    """The DAG names the sources without importing the loaders; this keeps the two in step."""
    from include.loaders import SOURCES

    dag = dagbag.dags["crm_nightly"]
    load_tasks = {
        t.task_id.removeprefix("load_") for t in dag.tasks if t.task_id.startswith("load_")
    }
    assert load_tasks == set(SOURCES)


def test_every_dbt_node_is_built_once_in_its_domain_and_domains_run_in_order(dagbag):
    """Each model, seed and snapshot of the manifest is one `dbt build` task in exactly one
    domain group; a node's parents are built in its own group or an earlier one; tests
    spanning models run after every domain."""
    import json

    manifest = json.loads((DAGS_DIR.parent / "dbt_project/target/manifest.json").read_text())
    dag = dagbag.dags["crm_nightly"]
    # domain groups in the order they were created (= the order they are chained in)
    groups = dag.task_group.get_child_by_label("dbt").children
    order = [label.split(".")[1] for label, child in groups.items() if hasattr(child, "children")]
    assert order[0] == "staging" and len(order) >= 6, order
    built: dict[str, list[str]] = {}
    for task in dag.tasks:
        parts = task.task_id.split(".")
        if parts[0] == "dbt" and len(parts) == 3 and parts[2].endswith("_build"):
            name = parts[2].rsplit("_", 2)[0]
            built.setdefault(name, []).append(parts[1])
    nodes = {
        n["unique_id"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] in ("model", "seed", "snapshot") and n["package_name"] == "crm"
    }
    by_name = {n["name"]: n for n in nodes.values()}
    assert set(built) == set(by_name), (
        f"not built: {sorted(set(by_name) - set(built))}; unknown: {sorted(set(built) - set(by_name))}"
    )
    twice = {name: groups for name, groups in built.items() if len(groups) != 1}
    assert not twice, f"built in several domains: {twice}"
    for name, node in by_name.items():
        mine = order.index(built[name][0])
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent in nodes:
                theirs = order.index(built[nodes[parent]["name"]][0])
                assert theirs <= mine, (
                    f"{name} ({order[mine]}) needs {nodes[parent]['name']} ({order[theirs]}),"
                    " built in a later domain"
                )
    tests = dag.get_task("dbt.cross_model_tests")
    upstream = {t.task_id for t in tests.get_flat_relatives(upstream=True)}
    assert {f"dbt.{d}" for d in order} & {u.rsplit(".", 1)[0] for u in upstream} == {
        f"dbt.{d}" for d in order
    }
    assert "gate_marts" in tests.downstream_task_ids
