"""Policy tests over every DAG file: imports, structure, documentation, retries, import cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.alerts import log_failure

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "sklearn", "great_expectations", "psycopg", "psycopg2", "dbt.cli", "numpy")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_defines_a_dag(dagbag):
    defined = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert DAG_FILES and {p.name for p in DAG_FILES} <= defined, defined


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
        # START_DATE is 1970: with catchup a new scheduler would queue every night since.
        assert dag.catchup is False, (
            f"{dag_id}: catchup would schedule every night since {dag.start_date}"
        )
        assert dag.start_date.tzinfo is not None, f"{dag_id}: start_date must be timezone-aware"
        assert dag.max_active_runs == 1, f"{dag_id}: runs of one DAG must not overlap"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag_id}: no retries by default"
        assert log_failure in dag.default_args["on_failure_callback"], f"{dag_id}: no failure log"
        for task in dag.tasks:
            # dbt tasks are deliberately not retried (a model or data bug will not heal);
            # every extract, load, gate and publish task is.
            if not task.task_id.startswith("dbt."):
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_configured_alerts_reach_every_task_of_every_dag():
    """With both alert settings, every task's failure callbacks are the log line, the e-mail
    and the webhook (as a scheduler's workers parse the DAG files: in a fresh process)."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import sys;"
        "bag = DagBag(dag_folder=sys.argv[1]);"
        "print('CALLBACKS=' + repr(sorted({tuple(type(c).__name__ for c in t.on_failure_callback)"
        " for d in bag.dags.values() for t in d.tasks})))"
    )
    env = {
        **os.environ,
        "CRM_ALERT_EMAIL_TO": "oncall@example.com",
        "CRM_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts",
    }
    result = subprocess.run(
        [sys.executable, "-c", code, str(DAGS_DIR)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    marker = [line for line in result.stdout.splitlines() if line.startswith("CALLBACKS=")]
    assert marker[-1] == "CALLBACKS=[('function', 'FailureEmail', 'FailureWebhook')]", marker


def test_stages_run_in_order_and_gates_guard_publication(dagbag):
    dag = dagbag.dags["crm_nightly"]
    dag.topological_sort()  # raises on a cycle
    gate_raw = dag.get_task("gate_raw")
    loads = {t.task_id for t in dag.tasks if t.task_id.startswith(("load_", "extract_"))}
    assert loads and loads <= {t.task_id for t in gate_raw.get_flat_relatives(upstream=True)}
    after_marts = {t.task_id for t in dag.get_task("gate_marts").get_flat_relatives(upstream=False)}
    models = {t.task_id for t in dag.tasks if t.task_id.startswith("ml.")}
    assert models and models <= after_marts, models - after_marts
    ml_publish = {t.task_id for t in dag.get_task("ml.publish").get_flat_relatives(upstream=True)}
    assert models - {"ml.publish"} <= ml_publish
    publish = dag.get_task("publish_segments")
    upstream = {t.task_id for t in publish.get_flat_relatives(upstream=True)}
    assert {"gate_raw", "gate_marts", "extract_shop", "load_pos", "load_web"} <= upstream
    assert any(t.startswith("dbt.") for t in upstream)
    # dbt only starts after the raw gate, and a failed build stops the marts gate.
    build = dag.get_task("dbt.build")
    assert "gate_raw" in build.upstream_task_ids
    assert "gate_marts" in build.downstream_task_ids


# Trigger rules under which a task does not run (upstream_failed) when a parent failed.
PROPAGATES_FAILURE = {"all_success", "none_failed", "none_failed_min_one_success"}


@pytest.mark.parametrize("gate", ["gate_raw", "gate_marts", "dbt.build"])
def test_a_failed_gate_or_build_fails_the_run(dagbag, gate):
    """A run is failed only when a leaf task fails or is upstream_failed: from each gate
    some path to a leaf must carry the failure (a report that runs `all_done` as the
    only leaf would turn a failed night green)."""
    dag = dagbag.dags["crm_nightly"]

    def carries(task) -> bool:
        if not task.downstream_list:
            return True
        return any(
            getattr(child.trigger_rule, "value", child.trigger_rule) in PROPAGATES_FAILURE
            and carries(child)
            for child in task.downstream_list
        )

    assert carries(dag.get_task(gate))


def test_every_landing_source_has_its_load_task(dagbag):
    """The DAG names the sources without importing the loaders; this keeps the two in step."""
    from include.loaders import SOURCES

    dag = dagbag.dags["crm_nightly"]
    load_tasks = {
        t.task_id.removeprefix("load_") for t in dag.tasks if t.task_id.startswith("load_")
    }
    assert load_tasks == set(SOURCES)


def test_every_dbt_node_has_one_status_task_after_the_one_build(dagbag):
    """One `dbt build` task; every model, seed and snapshot of the manifest has exactly one
    status task holding it and its own tests; every test of the project is watched by
    exactly one status task; all of them follow the build and guard the marts gate."""
    import json

    manifest = json.loads((DAGS_DIR.parent / "dbt_project/target/manifest.json").read_text())
    dag = dagbag.dags["crm_nightly"]
    status = [t for t in dag.tasks if t.task_id.startswith("dbt.") and t.task_id != "dbt.build"]
    watched: dict[str, list[str]] = {}
    for task in status:
        for uid in task.unique_ids:
            watched.setdefault(uid, []).append(task.task_id)
    built = {
        uid
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] in ("model", "seed", "snapshot")
    }
    tests = {uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "test"}
    assert built | tests == set(watched), sorted((built | tests) ^ set(watched))[:10]
    twice = {uid: ts for uid, ts in watched.items() if len(ts) != 1}
    assert not twice, f"watched by several tasks: {list(twice.items())[:5]}"
    names = {manifest["nodes"][uid]["name"] for uid in built}
    assert {t.task_id.rsplit(".", 1)[1] for t in status} == names | {"cross_model_tests"}
    for task in status:
        assert task.upstream_task_ids == {"dbt.build"}, task.task_id
        assert task.trigger_rule == "one_done", task.task_id
        assert "gate_marts" in task.downstream_task_ids, task.task_id
        # They start and end in the triggerer: no worker slot per node on a scheduler.
        assert task.start_from_trigger and task.start_trigger_args, task.task_id
    assert dag.get_task("dbt.build").retries == 0
