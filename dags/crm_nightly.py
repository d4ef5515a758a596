"""
# crm_nightly

The nightly CRM refresh for one Hong Kong business day (the run's data
interval, midnight to midnight Asia/Hong_Kong).

1. **Extract and load** (`extract_shop`, `load_<source>`): the shop database
   incrementally by `updated_at`, and every landing-zone file dated up to the
   business day that is not in `ops.load_ledger` yet (late files are caught up
   by the next run). Bad rows go to `quarantine.rejected_rows`.
2. **Raw gate** (`gate_raw`): Great Expectations on raw row counts and failed
   loads. A critical failure stops the run here.
3. **dbt** (`dbt` task group, Cosmos): staging, identity stitch,
   `marts.dim_customer`, `marts.fct_sales`, each model's tests right after it.
4. **Marts gate** (`gate_marts`): keys unique and not null, sales point at
   known customers.
5. **Publish** (`publish_segments`): RFM segments into
   `reporting.customer_segments` for the business day. Runs only when both
   gates passed, so a failed gate leaves yesterday's publication in place.

## Triage
- `load_*` failed: the log names each failed file and why (missing column,
  unreadable gzip, bad encoding); see `select * from ops.load_ledger where
  status = 'failed' order by load_id desc`. Fix or re-send the file (new name)
  and clear the task: loads are idempotent.
- `gate_*` failed: the log lists the critical expectations that failed and the
  path of the Data Docs page with details. Fix the data or the model, then
  clear the gate task.
- `dbt.*` failed: the task log holds dbt's output; reproduce with
  `crm run --date <business date>` or `dbt build --select <model>` from
  `dbt_project/`.
- Re-running any task or the whole run for the same date changes nothing.
- Backfill: `airflow backfill create --dag-id crm_nightly --from-date D1
  --to-date D2 --reprocess-behavior completed` (locally:
  `crm run --date D1 --days N`); end it at the latest night so the marts are
  current again.

Owner: data engineering. Schedule: daily at 00:00 Hong Kong time for the day
that just ended.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow.sdk import Asset, CronDataIntervalTimetable, chain, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior, TestIndirectSelection
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.dag_defaults import DEFAULT_ARGS, HK_TZ

REPO = Path(__file__).resolve().parent.parent
DBT_PROJECT = REPO / "dbt_project"
LANDING_SOURCES = ("pos", "stores", "loyalty", "web", "complaints", "privacy")

RAW = Asset("crm://warehouse/raw")
MARTS = Asset("crm://warehouse/marts")
SEGMENTS = Asset("crm://warehouse/reporting/customer_segments")

BUSINESS_DATE = "{{ data_interval_start.in_timezone('Asia/Hong_Kong').to_date_string() }}"


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=HK_TZ),
    start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo(HK_TZ)),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["crm", "nightly", "team:data-engineering"],
    doc_md=__doc__,
)
def crm_nightly():
    @task(outlets=[RAW])
    def extract_shop(data_interval_start=None, data_interval_end=None) -> dict:
        from include import pipeline

        return pipeline.extract_shop(data_interval_start, data_interval_end)

    @task(outlets=[RAW])
    def load_landing(source: str, data_interval_start=None) -> str:
        from include import pipeline

        return pipeline.load_landing(source, data_interval_start)

    @task
    def gate(name: str, data_interval_start=None) -> str:
        from include import pipeline

        return pipeline.quality_gate(name, data_interval_start)

    @task(outlets=[SEGMENTS])
    def publish_segments(data_interval_start=None) -> dict:
        from include import pipeline

        return pipeline.publish_segments(data_interval_start)

    loads = [extract_shop()] + [
        load_landing.override(task_id=f"load_{source}")(source) for source in LANDING_SOURCES
    ]
    gate_raw = gate.override(task_id="gate_raw")("raw")
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT,
            manifest_path=DBT_PROJECT / "target" / "manifest.json",
        ),
        profile_config=ProfileConfig(
            profile_name="crm",
            target_name="airflow",
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id="crm_warehouse", profile_args={"schema": "staging"}
            ),
        ),
        # Each model's own tests run right after it (cautious selection); a test
        # spanning two models (relationships) becomes its own task after both.
        execution_config=ExecutionConfig(
            invocation_mode=InvocationMode.DBT_RUNNER,
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={"install_deps": False, "vars": {"business_date": BUSINESS_DATE}},
        default_args={
            "retries": 0
        },  # dbt failures are data or code problems: retrying will not help
    )
    gate_marts = gate.override(task_id="gate_marts", outlets=[MARTS])("marts")
    chain(loads, gate_raw, dbt, gate_marts, publish_segments())


crm_nightly()
