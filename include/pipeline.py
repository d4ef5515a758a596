"""The nightly pipeline's steps as plain functions of the run's end of day.

DAG tasks call these with the run's ``data_interval_end`` (its logical date:
midnight in Hong Kong at the end of the business day); tests call them without
Airflow. The business date of a run is the Hong Kong day that ends there.
Each step connects as its pipeline role (include/roles.py), never as the admin.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from include import roles
from include.config import HK_TZ, SOURCES_VARIABLE, CrmError, declared_sources, settings

log = logging.getLogger(__name__)


class SourceNotDeclared(CrmError):
    """The retailer does not have this source (``CRM_SOURCES``): its task did nothing.

    Raised by :func:`extract_shop` and :func:`load_landing` before they connect
    to anything; the DAG's task wrapper turns it into a skipped task
    (``AirflowSkipException``) with this message.
    """

    def __init__(self, source: str, declared: tuple[str, ...]):
        self.source = source
        self.declared = declared
        super().__init__(
            f"Source {source} is not declared in {SOURCES_VARIABLE} "
            f"({', '.join(declared)}): its task does nothing (no connection, no load)."
        )


def check_declared(source: str) -> None:
    """Raise :class:`SourceNotDeclared` unless ``source`` is one of the declared sources."""
    declared = declared_sources()
    if source not in declared:
        raise SourceNotDeclared(source, declared)


def business_date_of(day_end: datetime) -> date:
    """The last Hong Kong day complete at ``day_end`` (a run's data_interval_end).

    A scheduled run's ``day_end`` is the midnight that ends the business day; a
    run triggered by hand at any time of day works on yesterday (Hong Kong).
    """
    return day_end.astimezone(ZoneInfo(HK_TZ)).date() - timedelta(days=1)


def end_of(business_date: date) -> datetime:
    """Midnight in Hong Kong at the end of the business day."""
    return datetime.combine(business_date + timedelta(days=1), time(0), ZoneInfo(HK_TZ))


def last_complete_business_date() -> date:
    """Yesterday in Hong Kong: the latest day whose data can be complete."""
    return datetime.now(ZoneInfo(HK_TZ)).date() - timedelta(days=1)


def check_runnable(business_date: date) -> None:
    """Refuse a night for a day that has not ended in Hong Kong.

    Its files are still arriving, and extracting the shop up to the end of that
    day would move the shop watermark past what can be complete.
    """
    if business_date > last_complete_business_date():
        raise CrmError(
            f"Business date {business_date} has not ended in Hong Kong yet (the latest "
            f"complete day is {last_complete_business_date()}): nothing was run."
        )


def extract_shop(day_end: datetime) -> dict:
    """Extract the shop database; :class:`SourceNotDeclared` (never connecting) without a shop."""
    from include.extract_shop import extract_shop as run

    business_date = business_date_of(day_end)
    check_runnable(business_date)
    check_declared("shop")
    cfg = settings()
    outcomes = run(
        shop_url=cfg.shop_reader_url,
        warehouse_url=cfg.url_as(roles.LOADER),
        business_date=business_date,
        # never past the end of the business day, whenever the run was triggered
        interval_end=end_of(business_date),
    )
    return {o.object: o.rows_loaded for o in outcomes}


def load_landing(source: str, day_end: datetime) -> str:
    """Load a landing source's new files; :class:`SourceNotDeclared` if the retailer has none."""
    from include.landing import landing_from_url
    from include.loaders import SOURCES, load_source

    check_runnable(business_date_of(day_end))
    if source not in SOURCES:
        raise ValueError(f"unknown landing source {source!r}: expected one of {', '.join(SOURCES)}")
    check_declared(source)
    cfg = settings()
    report = load_source(
        source,
        warehouse_url=cfg.url_as(roles.LOADER),
        landing=landing_from_url(cfg.landing_url),
        business_date=business_date_of(day_end),
    )
    if report.loaded:
        # Fresh planner statistics for the models that read the table next, rather
        # than waiting for autovacuum (a stale estimate once turned a 0.4 s mart
        # into a 150 s nested loop). A pipeline step, not part of loading a file.
        analyze(cfg.url_as(roles.LOADER), SOURCES[source].table)
    return report.summary()


def analyze(warehouse_url: str, table: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(*table.split("."))))


def quality_gate(gate: str, day_end: datetime, run_id: str | None = None) -> str:
    from expectations.gate import run_gate

    cfg = settings()
    result = run_gate(
        gate,
        warehouse_url=cfg.url_as(roles.PUBLISHER),
        gx_dir=cfg.gx_dir,
        business_date=business_date_of(day_end),
        dag_run_id=run_id,
    )
    for warning in result.warning_failures:
        log.warning("quality warning: %s", warning)
    return f"{gate} gate passed; Data Docs: {result.data_docs_index}"


def dbt_build(day_end: datetime, run_id: str) -> str:
    from include.dbt_build import build

    return build(business_date_of(day_end), dag_run_id=run_id).summary()


def source_freshness(day_end: datetime, run_id: str | None = None) -> str:
    """dbt source freshness of the declared sources (warnings only, see include.dbt_build)."""
    from include.dbt_build import source_freshness as run

    results = run(business_date_of(day_end), sources=list(declared_sources()), dag_run_id=run_id)
    for stale in (f for f in results if not f.fresh):
        log.warning("source freshness: %s", stale.sentence())
    fresh = sum(f.fresh for f in results)
    return f"{fresh} of {len(results)} source table(s) fresh at the end of the business day"


def erasure(day_end: datetime, run_id: str | None = None) -> str:
    """The night's erasure requests carried out (include/erasure.py)."""
    from include.erasure import execute

    added, actions = execute(
        settings().url_as(roles.TRANSFORMER), business_date_of(day_end), run_id=run_id
    )
    return f"erasure: {added} identity(ies) newly erased" + (
        "; " + "; ".join(a.sentence() for a in actions) if actions else "; nothing left to remove"
    )


def privacy_evidence(day_end: datetime) -> str:
    """The night's privacy evidence report (include/privacy_report.py); where it is."""
    from include.privacy_report import write

    cfg = settings()
    path = write(cfg.url_as(roles.PUBLISHER), business_date_of(day_end), evidence_folder(cfg.home))
    return f"privacy evidence: {path}"


def evidence_folder(home):
    """Where the nightly privacy evidence reports go (owner-only, like all of CRM_HOME)."""
    return home / "privacy" / "evidence"


def reports_folder(home):
    """Where the nightly reports go: ``<date>/index.html`` and one page per department."""
    return home / "reports"


def write_nightly_report(as_of: date):
    """Write the report of ``as_of`` (include/report.py); the full page's path."""
    import os

    from include.report import write

    cfg = settings()
    folder = reports_folder(cfg.home)
    page = folder / as_of.isoformat()
    links = {
        "GX Data Docs": cfg.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html",
        "Privacy evidence report": evidence_folder(cfg.home) / f"{as_of.isoformat()}.html",
    }
    return write(
        cfg.url_as(roles.PUBLISHER),
        as_of,
        folder,
        {label: os.path.relpath(target, page) for label, target in links.items()},
    )


def nightly_report(day_end: datetime) -> str:
    """The night's report for people; where it is."""
    return f"nightly report: {write_nightly_report(business_date_of(day_end))}"


def publish_segments(day_end: datetime) -> dict[str, int]:
    from ml.segmentation import publish_segments as run

    return run(warehouse_url=settings().url_as(roles.PUBLISHER), as_of=business_date_of(day_end))


def retention(day_end: datetime, run_id: str | None = None) -> str:
    """The night's retention purge (include/retention.py), tables and files: what it
    deleted or emptied."""
    from include.retention import purge_night

    steps = purge_night(
        settings().url_as(roles.TRANSFORMER), business_date_of(day_end), run_id=run_id
    )
    acted = [s.sentence() for s in steps if s.rows]
    for line in acted:
        log.info("retention: %s", line)
    return f"retention: {len(steps)} dataset(s) checked, {len(acted)} purged" + (
        ": " + "; ".join(acted) if acted else " (nothing past its retention)"
    )
