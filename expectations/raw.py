"""Suites for the raw layer: did the loads of the business day land anything, and did any fail?

Runs right after extract-and-load and before dbt, so a broken load stops the
night before it becomes a wrong mart. The DDL of these tables is
``include/sql/001_foundation.sql``.

Suites (GX validates one suite against one table at a time):

- ``raw_tables``: every raw table the marts are built from has rows, for the
  sources the retailer declared (``CRM_SOURCES``, include.config.declared_sources):
  a retailer without an online shop has empty shop tables, and that is fine.
  An empty table of a declared source means a load silently produced nothing
  (a source stopped sending, a path moved), which would otherwise show up
  weeks later as a sales dip.
- ``raw_tables_optional``: the same check as a warning, for tables that may
  legitimately be empty (no privacy request arrived yet).
- ``ops_load_ledger``: no load dated up to the business date failed without
  being loaded successfully since or resolved by an operator. The loaders record a failed file in the ledger
  and carry on with the others, so the load tasks can succeed while a file is
  missing; this is where that stops the run. The same suite judges the night's
  delivery (:func:`delivery_suite`): each source's volume against its recent
  days, and its quarantine rate.
- ``ops_load_gaps``: every file the sources' schedules promise arrived (POS per
  open store, web per hour, one file a day); overdue ones stop the night.
- ``ops_late_files``: no file tonight's loads found by the loader's sweep, later
  than the late window (``CRM_LATE_DAYS``) or outside any date folder: a warning,
  since the file is loaded (or rejected, which the ledger suite stops), but the
  published history of its date changed tonight.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe

from expectations.spec import CRITICAL, WARNING, TableValidation, severity
from include.config import declared_sources, gap_fail_days, late_days, quarantine_fail_rate

RAW_TABLES_SUITE = "raw_tables"
OPTIONAL_RAW_TABLES_SUITE = "raw_tables_optional"
LOAD_LEDGER_SUITE = "ops_load_ledger"
LOAD_GAPS_SUITE = "ops_load_gaps"
LATE_FILES_SUITE = "ops_late_files"

VOLUME_BAND = (0.25, 4.0)
"""Tonight's rows of a source, as a share of its median day: outside this band is a warning."""

VOLUME_HISTORY_DAYS = 28
"""The recent days the median day of a source is learned from."""

VOLUME_MIN_DAYS = 7
"""Fewer days with loads than this (a new install, a new source): no band yet."""

QUARANTINE_MIN_ROWS = 10
"""The quarantine rate stops the night only from this many quarantined rows (a tiny
source's one bad row is a warning, not a stop)."""

SOURCE_TABLES = {
    "shop": ("shop_customers", "shop_products", "shop_orders", "shop_order_items"),
    "pos": ("pos_lines",),
    "stores": ("stores",),
    "loyalty": ("loyalty_members",),
    "web": ("web_events",),
    # Event-driven: a small retailer can rightly go weeks without a complaint or a privacy
    # request. Their daily files are still checked by the delivery gaps.
    "complaints": (),
    "privacy": (),
}
"""The raw tables of each source (include.config.SOURCES) that must have rows when it is declared."""

REQUIRED_TABLES = tuple(table for tables in SOURCE_TABLES.values() for table in tables)
"""Raw tables that must never be empty once the platform has run with every source."""

OPTIONAL_SOURCE_TABLES = {"complaints": ("complaint_tickets",), "privacy": ("privacy_requests",)}
"""Raw tables of declared sources that may be empty: checked, but only as a warning."""


def optional_tables(sources: tuple[str, ...] | None = None) -> tuple[str, ...]:
    sources = declared_sources() if sources is None else sources
    return tuple(t for source in sources for t in OPTIONAL_SOURCE_TABLES.get(source, ()))


def required_tables(sources: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The raw tables that must have rows with these sources (default: the declared ones)."""
    sources = declared_sources() if sources is None else sources
    return tuple(table for source in sources for table in SOURCE_TABLES[source])


# One row per failed load that no operator resolved (crm ledger resolve) and no
# later load of the same source and object replaced. Kept in the batch's own columns so the Data Docs page shows which
# files to look at. `{batch}` is GX's placeholder for the ledger table and is
# already an aliased subquery, hence the extra `select * from` to name it.
_UNRESOLVED_FAILED_LOADS = """
select failed.load_id, failed.source, failed.object, failed.business_date, failed.message
from (select * from {batch}) as failed
where failed.status = 'failed'
  and failed.resolved_at is null{business_date_filter}
  and not exists (
    select 1
    from ops.load_ledger as retried
    where retried.source = failed.source
      and retried.object = failed.object
      and retried.status = 'loaded'
      and retried.load_id > failed.load_id
  )
"""


def raw_tables_suite() -> list[gxe.Expectation]:
    """Expectations for every required raw table: it has at least one row."""
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1,
            notes="An empty raw table means its load produced nothing; the marts would be wrong.",
            **severity(CRITICAL),
        ),
    ]


def optional_raw_tables_suite() -> list[gxe.Expectation]:
    """The same row-count check, as a warning, for tables that may be empty."""
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1,
            notes="May legitimately be empty (no request received yet): listed, never blocking.",
            **severity(WARNING),
        ),
    ]


def load_ledger_suite(business_date: date | None) -> list[gxe.Expectation]:
    """No failed load dated up to ``business_date`` (every date when None) is left unresolved.

    A failure keeps blocking every later night (a retry that skips the file, or
    the next night, does not clear it) until the same source and object (file
    or batch) is loaded successfully, or an operator resolves it with
    ``crm ledger resolve <load_id> --note ...`` (a file re-sent under a new
    name, or one to be given up). A failure dated after ``business_date`` does
    not block it: a backfill of an older night does not depend on that file.

    The date is written into the query as a literal rather than passed as a
    parameter so that the Data Docs page shows exactly the SQL that ran; it is
    a ``date`` object, never user text.
    """
    if business_date is None:
        date_filter = ""
        which = "any business date"
    else:
        date_filter = (
            "\n  and (failed.business_date is null"  # a name without a date: every night
            f" or failed.business_date <= date '{business_date.isoformat()}')"
        )
        which = f"business dates up to {business_date.isoformat()}"
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=_UNRESOLVED_FAILED_LOADS.replace(
                "{business_date_filter}", date_filter
            ),
            description=f"No load with status 'failed' for {which} (unless loaded again since or resolved)",
            **severity(CRITICAL),
        ),
    ]


def load_gaps_suite(business_date: date | None) -> list[gxe.Expectation]:
    """Every expected file arrived: a warning while it may still come, then a stop.

    A store open that day without a POS export, an hour without its web file, or a
    day without the file of a source that sends one a day (loyalty, complaints,
    privacy) is recorded in ``ops.load_gaps`` by the loader; its rows are then
    missing, not zero. While the gap is younger than ``CRM_GAP_FAIL_DAYS`` (default
    3) it is a warning: the file may still arrive late (the next run loads it and
    resolves the gap), and the rest of the business is worth publishing. Older, it
    fails every night (a source or a store stopped sending) until the file arrives
    or an operator resolves the gap (``crm ledger resolve-gap``). Gaps dated after
    ``business_date`` never block it (a backfill of an older night).
    """
    fail_days = gap_fail_days()
    if business_date is None:
        recent = ""
        overdue = f" and gaps.business_date <= current_date - {fail_days}"
        which = "any business date"
    else:
        day = f"date '{business_date.isoformat()}'"
        recent = f" and gaps.business_date between {day} - {fail_days - 1} and {day}"
        overdue = f" and gaps.business_date <= {day} - {fail_days}"
        which = f"business dates up to {business_date.isoformat()}"
    query = (
        "select gaps.source, gaps.business_date, gaps.expected, gaps.detected_at"
        " from (select * from {batch}) as gaps"
        " where gaps.resolved_at is null"
    )
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query + recent,
            description="Every expected source file arrived (open stores sent their POS export,"
            " the web tracker every hour, daily sources their file); missing ones may still come",
            **severity(WARNING),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query + overdue,
            description=f"No expected file is {fail_days} or more days late for {which}"
            " (a source or store stopped sending: send the file, or"
            " crm ledger resolve-gap <source> <date> <expected> --note ...)",
            **severity(CRITICAL),
        ),
    ]


def delivery_suite(business_date: date | None) -> list[gxe.Expectation]:
    """Judge the night's delivery from the load ledger: its volume and its quarantine.

    Tonight is the loads dated ``business_date`` (the newest dated load when None).
    A source whose rows fall outside ``VOLUME_BAND`` times its median over the last
    ``VOLUME_HISTORY_DAYS`` days is a warning (a promotion, a closure, or a feed that
    half stopped); a source that quarantined more than ``CRM_QUARANTINE_FAIL_RATE``
    of its rows (and at least ``QUARANTINE_MIN_ROWS``) stops the night, since its
    marts would be missing that share; any quarantined row is a warning. The store
    master is replaced whole, not delivered by day: it is left out.
    """
    day = (
        "(select max(business_date) from ops.load_ledger where source <> 'stores')"
        if business_date is None
        else f"date '{business_date.isoformat()}'"
    )
    low, high = VOLUME_BAND
    tonight = (
        "select ledger.source, sum(ledger.rows_read) as rows_read,"
        " sum(ledger.rows_quarantined) as rows_quarantined"
        " from (select * from {batch}) as ledger"
        f" where ledger.status = 'loaded' and ledger.source <> 'stores' and ledger.business_date = {day}"
        " group by ledger.source"
    )
    volume = f"""
with daily as (
    select ledger.source, ledger.business_date, sum(ledger.rows_read) as rows_read
    from (select * from {{batch}}) as ledger
    where ledger.status = 'loaded' and ledger.source <> 'stores'
      and ledger.business_date between {day} - {VOLUME_HISTORY_DAYS} and {day} - 1
    group by 1, 2
),
usual as (
    select daily.source, count(*) as days,
        percentile_cont(0.5) within group (order by daily.rows_read) as median_rows
    from daily group by 1
),
tonight as ({tonight})
select usual.source, coalesce(tonight.rows_read, 0) as rows_tonight, usual.median_rows, usual.days
from usual left join tonight on tonight.source = usual.source
where usual.days >= {VOLUME_MIN_DAYS}
  and (coalesce(tonight.rows_read, 0) < {low} * usual.median_rows
       or coalesce(tonight.rows_read, 0) > {high} * usual.median_rows)
"""
    quarantined = f"select * from ({tonight}) as tonight where tonight.rows_quarantined > 0"
    rate = quarantine_fail_rate()
    over_rate = (
        f"select * from ({tonight}) as tonight"
        f" where tonight.rows_quarantined >= {QUARANTINE_MIN_ROWS}"
        f" and tonight.rows_quarantined > {rate} * tonight.rows_read"
    )
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=volume,
            description=f"Every source's rows tonight are within {low}-{high} times its median"
            f" day of the last {VOLUME_HISTORY_DAYS} days",
            **severity(WARNING),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=quarantined,
            description="No row of tonight's loads was quarantined (see quarantine.rejected_rows)",
            **severity(WARNING),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=over_rate,
            description=f"No source quarantined more than {rate:.0%} of tonight's rows"
            " (quarantine.rejected_rows says which file, record, field and why)",
            **severity(CRITICAL),
        ),
    ]


def late_files_suite(business_date: date | None) -> list[gxe.Expectation]:
    """No file found tonight later than the late window (the newest night's when None)."""
    night = (
        "(select max(found_for) from ops.late_files)"
        if business_date is None
        else f"date '{business_date.isoformat()}'"
    )
    query = (
        "select late.source, late.object, ledger.business_date as file_date, late.found_for"
        " from (select * from {batch}) as late"
        " inner join ops.load_ledger as ledger on ledger.load_id = late.load_id"
        f" where late.found_for = {night}"
    )
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description=f"No file came more than {late_days()} days late (CRM_LATE_DAYS):"
            " one that did is loaded tonight, and its date's published figures changed",
            **severity(WARNING),
        )
    ]


def validations(
    business_date: date | None = None, sources: tuple[str, ...] | None = None
) -> list[TableValidation]:
    """Everything the raw gate validates, table by table.

    Row counts only for the tables of ``sources`` (default: the declared ones,
    ``CRM_SOURCES``); an undeclared source's table may be empty. The load
    ledger and the load gaps are checked whatever the sources.
    """
    return [
        *(
            TableValidation("raw", table, RAW_TABLES_SUITE, raw_tables_suite())
            for table in required_tables(sources)
        ),
        *(
            TableValidation("raw", table, OPTIONAL_RAW_TABLES_SUITE, optional_raw_tables_suite())
            for table in optional_tables(sources)
        ),
        TableValidation(
            "ops",
            "load_ledger",
            LOAD_LEDGER_SUITE,
            load_ledger_suite(business_date) + delivery_suite(business_date),
        ),
        TableValidation("ops", "load_gaps", LOAD_GAPS_SUITE, load_gaps_suite(business_date)),
        TableValidation("ops", "late_files", LATE_FILES_SUITE, late_files_suite(business_date)),
    ]
