"""
# crm_nightly

The nightly CRM refresh for one Hong Kong business day (the run's data
interval, midnight to midnight Asia/Hong_Kong).

1. **Extract and load** (`extract_shop`, `load_<source>`): the shop database
   incrementally by `updated_at` (and, every `CRM_SHOP_RECONCILE_DAYS`, a
   reconciliation of every key: missed versions extracted, hard deletions
   recorded in `raw.shop_deletions`), and every landing-zone file dated up to the
   business day that is not in `ops.load_ledger` yet (late files are caught up
   by the next run, up to `CRM_LATE_DAYS` late; every `CRM_LATE_SWEEP_DAYS` the
   whole landing history is listed for later ones). Bad rows go to `quarantine.rejected_rows`. A source the
   retailer does not have (not in `CRM_SOURCES`, README "Only some sources")
   is skipped with the reason in its log; the raw gate runs when no load failed.
2. **Raw gate** (`gate_raw`): Great Expectations on tonight's delivery: raw
   tables of declared sources not empty, no unresolved failed load, every
   expected file (POS per open store, web per hour, daily files) arrived or is
   less than `CRM_GAP_FAIL_DAYS` late, quarantine under
   `CRM_QUARANTINE_FAIL_RATE`, volumes within a band of recent days and no
   file later than `CRM_LATE_DAYS` (`ops.late_files`; warnings).
   A critical failure stops the run here. Beside it, `source_freshness` runs
   `dbt source freshness` on the declared sources and records each raw table's
   age at the end of the business day in `ops.quality_results` (gate
   `source_freshness`; thresholds: `warn_after` in contract/sources.yml). A
   stale source is a warning in its log, never a failed night.
   `retention` then purges what contract/privacy.yml keeps no longer (deletes
   or empties its personal columns, in batches; `ops.retention_actions`), so
   the night's dbt build never reads it, and the files past theirs (landing
   files once loaded, logs, GX results, model artefacts: the policy's
   `files`), and `erasure` carries out the erasure
   requests the last build matched: their people go on the suppression list
   `pii.erased_identities` and their rows are deleted or their keys emptied in
   raw and downstream (`ops.erasure_actions`; contract/privacy.yml `erasure`).
3. **dbt** (`dbt` task group): `dbt.build` runs one `dbt build` of the whole
   project (`CRM_DBT_THREADS` threads, default the machine's cores). Then one
   status task per model, seed and snapshot (`dbt.<domain>.<name>`) shows
   what dbt did with it and its tests (their statuses are the task's XCom):
   failed if the model or a test failed, skipped if dbt skipped it because of
   a failure upstream. `dbt.cross_model_tests`: relationships, singular and
   source tests. The status tasks run in the triggerer (no worker slot).
4. **Marts gate** (`gate_marts`): keys unique and not null, sales point at
   known customers; daily lines and net sales per channel and store equal
   staging's, staging holds every raw row of the POS files it keeps, no
   person over-merged. Every verdict of both gates is in `ops.quality_results`.
   Then, whatever the gate decided, `privacy_evidence` writes the night's
   privacy evidence report (`CRM_HOME/privacy/evidence/<date>.html`: data map,
   retention, purge and erasure log, requests, privacy checks).
5. **Publish** (`publish_segments`): RFM segments into
   `reporting.customer_segments` for the business day. Runs only when both
   gates passed, so a failed gate leaves yesterday's publication in place.
6. **Models** (`ml` task group, after the marts gate; `ml/nightly.py`):
   `ml.segments` (k-means behavioural segments), `ml.churn` (churn risk),
   `ml.customer_forecast` (purchases and spend per customer),
   `ml.sales_forecast` (daily sales by channel, store, category). Each trains
   on its cadence (or loads the stored model), validates against its
   baselines when trained (`reporting.model_validation`), scores the day and
   stages its rows; `ml.publish` checks them (coverage, ranges, no personal
   data) and publishes them to `reporting.*` in one transaction. A model
   whose history is too short is skipped, saying why.
7. **Report** (`nightly_report`, after publication; none on a failed night): the
   night's page for people, `CRM_HOME/reports/<date>/index.html` (sales by
   channel, segments and moves, churn and win-back, forecast against actual,
   service, cross-sell, the gates' and privacy verdicts) and one page per
   department with only what its role may read (`include/report.py`).

## Triage
- `load_*` failed: the log names each failed file and why (missing column,
  unreadable gzip, bad encoding); see `select * from ops.load_ledger where
  status = 'failed' order by load_id desc`. Fix or re-send the file (new name)
  and clear the task: loads are idempotent.
- `extract_shop` failed with "The shop database ... has no table(s) ...": the
  shop database lacks tables or columns of the contract; if the retailer has
  no online shop, leave shop out of `CRM_SOURCES`.
- `gate_*` failed: the log lists the critical expectations that failed and the
  path of the Data Docs page with details (history: `select * from
  ops.quality_results where not success order by result_id desc`). Fix the
  data or the model, then clear the gate task. A file that will never come
  (a store closed that day): `crm ledger gaps`, then `crm ledger resolve-gap
  <source> <date> <expected> --note '...'`.
- `retention` failed: its log names the dataset; what committed is in
  `ops.retention_actions` (a batch is all or nothing). Clearing the task goes
  on from there; `crm privacy purge --dry-run --date D` shows what it would do.
- `erasure` failed: its log names the table; what committed is in
  `ops.erasure_actions` (a table is all or nothing), the people in
  `pii.erased_identities`. Clearing the task goes on from there.
- `nightly_report` failed: its log says which query or file; the data and
  the publication are not affected. Fix and clear it (`crm report --date D`
  writes the same page by hand).
- `privacy_evidence` failed: the report could not be written (its log says why:
  a full disk, a missing table); the night's data is not affected. Clear it.
- `dbt.build` failed: its log ends with every node that failed and dbt's
  message; the red status task (`dbt.<domain>.<name>`) is the node (its log
  names the failing test), the skipped ones are what dbt did not build. History:
  `select * from ops.dbt_node_results where status not in ('success', 'pass')
  order by recorded_at desc`. Reproduce from `dbt_project/` with
  `dbt build --select <model> --vars '{business_date: <D>}'` (a model keyed
  by customer_key needs `PGOPTIONS='-c crm.customer_key_secret=<secret>'`:
  the secret is a session setting, never in the SQL). After the fix,
  clear `dbt.build` with its downstream tasks: the new attempt builds only
  what failed or was skipped, then the status tasks, gates and publication
  follow. Clearing one red status task re-runs that node alone.
- `ml.<model>` failed: `select * from ops.model_runs where status = 'failed'
  order by run_id desc` gives the step and the error. Clearing the task
  re-runs it (the stored model is reused). `ml.publish` failed: its log lists
  each check that failed (e.g. customers without a churn score); nothing of
  that night was published, the previous publication stands.
- Re-running any task or the whole run for the same date changes nothing.
- Backfill: `crm backfill --from D1 --to D2` (one night at a time, in date
  order: a backfill's own `max_active_runs` ignores the DAG's; the README has
  the `airflow backfill create` form, logical date of day D = D+1 00:00 HK;
  without a scheduler: `crm run --date D1 --days N`); end it at the latest
  night so the marts are current again.
- A run for a day that has not ended in Hong Kong fails at its first task
  with one sentence; `crm run` refuses it, and dates before the DAG's start.

Owner: data engineering. Schedule: daily at 00:00 Hong Kong time for the day
that just ended.
"""

from __future__ import annotations

from airflow.sdk import Asset, CronTriggerTimetable, TaskGroup, chain, dag, task

from include.dag_defaults import DEFAULT_ARGS, HK_TZ, START_DATE
from include.dbt_tasks import dbt_status_tasks

LANDING_SOURCES = ("pos", "stores", "loyalty", "web", "complaints", "privacy")

RAW = Asset("crm://warehouse/raw")
MARTS = Asset("crm://warehouse/marts")
SEGMENTS = Asset("crm://warehouse/reporting/customer_segments")
MODELS = Asset("crm://warehouse/reporting/models")
# The ml task group's models (ml.nightly.STEPS), trained on their cadence and scored nightly.
ML_MODELS = ("segments", "churn", "customer_forecast", "sales_forecast")


@dag(
    # Triggered at 00:00 Hong Kong for the day that just ended. The run's logical
    # date (= its data_interval_end) is that midnight, for scheduled runs, manual
    # runs, `dags test` and backfills alike, so one business day is one logical
    # date. (A one-day interval would give scheduled and backfill runs the day's
    # start as logical date but manual runs its end: a backfill over nights run
    # by hand then re-ran the wrong night.) Tasks derive the business date from
    # data_interval_end: include.pipeline.business_date_of.
    schedule=CronTriggerTimetable("0 0 * * *", timezone=HK_TZ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["crm", "nightly", "team:data-engineering"],
    doc_md=__doc__,
)
def crm_nightly():
    @task(outlets=[RAW])
    def extract_shop(data_interval_end=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include import pipeline

        try:
            return pipeline.extract_shop(data_interval_end)
        except pipeline.SourceNotDeclared as exc:  # no online shop (CRM_SOURCES)
            raise AirflowSkipException(str(exc)) from None

    @task(outlets=[RAW])
    def load_landing(source: str, data_interval_end=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from include import pipeline

        try:
            return pipeline.load_landing(source, data_interval_end)
        except pipeline.SourceNotDeclared as exc:  # not a source of this retailer
            raise AirflowSkipException(str(exc)) from None

    @task
    def gate(name: str, data_interval_end=None, run_id=None) -> str:
        from include import pipeline

        return pipeline.quality_gate(name, data_interval_end, run_id)

    # Warnings only: the raw gate judges delivery; this records each source's age.
    @task(trigger_rule="none_failed_min_one_success")
    def source_freshness(data_interval_end=None, run_id=None) -> str:
        from include import pipeline

        return pipeline.source_freshness(data_interval_end, run_id)

    @task
    def retention(data_interval_end=None, run_id=None) -> str:
        from include import pipeline

        return pipeline.retention(data_interval_end, run_id)

    # After the marts gate whatever it decided: a failed night has its evidence too.
    @task(trigger_rule="all_done")
    def privacy_evidence(data_interval_end=None) -> str:
        from include import pipeline

        return pipeline.privacy_evidence(data_interval_end)

    # After publication. Not all_done: as a leaf that succeeds it would turn a
    # failed night's run green. A failed night leaves the last page standing.
    @task(trigger_rule="none_failed")
    def nightly_report(data_interval_end=None) -> str:
        from include import pipeline

        return pipeline.nightly_report(data_interval_end)

    @task
    def erasure(data_interval_end=None, run_id=None) -> str:
        from include import pipeline

        return pipeline.erasure(data_interval_end, run_id)

    # dbt failures are data or code problems: retrying will not help.
    @task(task_id="build", retries=0)
    def dbt_build(data_interval_end=None, run_id=None) -> str:
        from include import pipeline

        return pipeline.dbt_build(data_interval_end, run_id)

    @task(outlets=[SEGMENTS])
    def publish_segments(data_interval_end=None) -> dict:
        from include import pipeline

        return pipeline.publish_segments(data_interval_end)

    @task
    def model_step(name: str, data_interval_end=None, run_id=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include import pipeline
        from ml import nightly

        try:
            return nightly.run(
                name, business_date=pipeline.business_date_of(data_interval_end), dag_run_id=run_id
            )
        except nightly.NotEnoughHistory as exc:
            raise AirflowSkipException(str(exc)) from None

    # Runs when no model failed: a model skipped for lack of history publishes nothing.
    @task(task_id="publish", outlets=[MODELS], trigger_rule="none_failed")
    def publish_models(data_interval_end=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include import pipeline
        from ml import nightly

        try:
            return nightly.publish_night(pipeline.business_date_of(data_interval_end))
        except nightly.NotEnoughHistory as exc:
            raise AirflowSkipException(str(exc)) from None

    loads = [extract_shop()] + [
        load_landing.override(task_id=f"load_{source}")(source) for source in LANDING_SOURCES
    ]
    # Undeclared sources' loads are skipped; a failed load still stops the night here.
    gate_raw = gate.override(task_id="gate_raw", trigger_rule="none_failed_min_one_success")("raw")
    with TaskGroup(group_id="dbt") as dbt:
        build = dbt_build()
        dbt_status_tasks(build, retries=0)
    gate_marts = gate.override(task_id="gate_marts", outlets=[MARTS])("marts")
    with TaskGroup(group_id="ml") as ml:
        steps = [model_step.override(task_id=name)(name) for name in ML_MODELS]
        steps >> publish_models()
    segments = publish_segments()
    chain(loads, gate_raw, dbt, gate_marts, [segments, ml])
    loads >> source_freshness()
    evidence = privacy_evidence()
    gate_marts >> evidence
    [segments, ml, evidence] >> nightly_report()
    # A failed build stops the marts gate at once, whatever the status tasks say.
    build >> gate_marts
    # Past its retention before dbt reads it: tonight's marts never hold it.
    # Erased people out of raw and of the incremental tables before dbt reads them.
    gate_raw >> retention() >> erasure() >> build


crm_nightly()
