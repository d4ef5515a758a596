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
