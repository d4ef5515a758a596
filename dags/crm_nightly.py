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
3. **dbt** (`dbt` task group, Cosmos): one group per domain, in order:
   `staging` (and seeds), `identity` (graph, person map, pii), `core` (sales,
   orders, web sessions, ROPO, dim_customer and its history), `service`
   (complaints), `marketing` (RFM, segments, churn, cross-sell, customer_360),
   `management` (KPIs, online vs stores, stores). Each node is one `dbt build`
   (its tests right after it); `cross_model_tests` (relationships, singular
   tests) runs once every domain is built.
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
- `dbt.<domain>.<node>_..._build` failed: the model or one of its tests
  failed; the task log holds dbt's output (the failing test's name and
  compiled SQL path). Reproduce from `dbt_project/` with
  `dbt build --select <model> --vars '{business_date: <D>}'`, fix, clear the
  task (downstream tasks follow). `dbt.cross_model_tests` failed: a
  relationships or singular test; `dbt test --select <test>` shows the rows.
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

from airflow.sdk import Asset, CronDataIntervalTimetable, TaskGroup, chain, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior, TestIndirectSelection
from cosmos.operators.local import DbtTestLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.dag_defaults import DEFAULT_ARGS, HK_TZ

REPO = Path(__file__).resolve().parent.parent
DBT_PROJECT = REPO / "dbt_project"
LANDING_SOURCES = ("pos", "stores", "loyalty", "web", "complaints", "privacy")

RAW = Asset("crm://warehouse/raw")
MARTS = Asset("crm://warehouse/marts")
SEGMENTS = Asset("crm://warehouse/reporting/customer_segments")

# dbt domains in build order: (task group, selected paths or models, excluded).
# Every model, seed and snapshot belongs to exactly one (tests/dags checks it).
DBT_DOMAINS = (
    ("staging", ["path:models/staging", "path:seeds"], []),
    (
        "identity",
        ["path:models/intermediate/identity", "path:models/pii", "path:snapshots/identity"],
        [],
    ),
    (
        "core",
        [
            "path:models/intermediate/sales",
            "path:models/intermediate/web",
            "path:models/intermediate/customers",
            "path:models/marts/core",
            "path:snapshots/customers",
        ],
        ["customer_360"],
    ),
    ("service", ["path:models/intermediate/service", "path:models/marts/service"], []),
    (
        "marketing",
        [
            "path:models/marts/marketing",
            "customer_360",
        ],
        [],
    ),
    ("management", ["path:models/marts/management"], []),
)
DBT_PROJECT_CONFIG = ProjectConfig(
    dbt_project_path=DBT_PROJECT,
    manifest_path=DBT_PROJECT / "target" / "manifest.json",
)
DBT_PROFILE = ProfileConfig(
    profile_name="crm",
    target_name="airflow",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id="crm_warehouse", profile_args={"schema": "staging"}
    ),
)
DBT_EXECUTION = ExecutionConfig(
    invocation_mode=InvocationMode.DBT_RUNNER,
    test_indirect_selection=TestIndirectSelection.CAUTIOUS,
)

BUSINESS_DATE = "{{ data_interval_start.in_timezone('Asia/Hong_Kong').to_date_string() }}"
DBT_OPERATOR_ARGS = {"install_deps": False, "vars": {"business_date": BUSINESS_DATE}}


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
    # One Cosmos task group per domain, in dependency order; each renders its
    # part of the manifest (no dbt call at parse time) and runs `dbt build` per
    # node: a model's own tests run in the same invocation, right after it.
    # Tests spanning models (relationships, singular tests) run once all
    # domains are built: inside a domain's task they would run before their
    # other parent, which may belong to a later domain.
    with TaskGroup(group_id="dbt") as dbt:
        domains = [
            DbtTaskGroup(
                group_id=domain,
                project_config=DBT_PROJECT_CONFIG,
                profile_config=DBT_PROFILE,
                execution_config=DBT_EXECUTION,
                render_config=RenderConfig(
                    load_method=LoadMode.DBT_MANIFEST,
                    select=select,
                    exclude=exclude,
                    test_behavior=TestBehavior.BUILD,
                ),
                operator_args=DBT_OPERATOR_ARGS,
                # dbt failures are data or code problems: retrying will not help
                default_args={"retries": 0},
            )
            for domain, select, exclude in DBT_DOMAINS
        ]
        cross_model_tests = DbtTestLocalOperator(
            task_id="cross_model_tests",
            project_dir=DBT_PROJECT,
            profile_config=DBT_PROFILE,
            invocation_mode=InvocationMode.DBT_RUNNER,
            select="test_name:relationships test_type:singular",
            retries=0,
            **DBT_OPERATOR_ARGS,
        )
        chain(*domains, cross_model_tests)
    gate_marts = gate.override(task_id="gate_marts", outlets=[MARTS])("marts")
    chain(loads, gate_raw, dbt, gate_marts, publish_segments())


crm_nightly()
