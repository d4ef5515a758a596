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
  missing; this is where that stops the run.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe

from expectations.spec import CRITICAL, WARNING, TableValidation, severity
from include.config import declared_sources

RAW_TABLES_SUITE = "raw_tables"
OPTIONAL_RAW_TABLES_SUITE = "raw_tables_optional"
LOAD_LEDGER_SUITE = "ops_load_ledger"
LOAD_GAPS_SUITE = "ops_load_gaps"

SOURCE_TABLES = {
    "shop": ("shop_customers", "shop_products", "shop_orders", "shop_order_items"),
    "pos": ("pos_lines",),
    "stores": ("stores",),
    "loyalty": ("loyalty_members",),
    "web": ("web_events",),
    "complaints": ("complaint_tickets",),
    "privacy": (),
}
"""The raw tables of each source (include.config.SOURCES) that must have rows when it is declared."""

REQUIRED_TABLES = tuple(table for tables in SOURCE_TABLES.values() for table in tables)
"""Raw tables that must never be empty once the platform has run with every source."""

OPTIONAL_TABLES = ("privacy_requests",)
"""Raw tables that may be empty: checked, but only as a warning (privacy is always declared)."""


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
    """No expected file missing for ``business_date``: a warning, listed in the log and Data Docs.

    A store open that day without a POS export, or a day without the file of a
    source that sends one a day (loyalty, complaints, privacy), is recorded in
    ``ops.load_gaps`` by the loader; its rows are then missing, not zero. A warning rather than
    a stop: the file may still arrive late (the next run loads it and resolves
    the gap), and the rest of the business is still worth publishing.
    """
    date_filter = (
        ""
        if business_date is None
        else f" and gaps.business_date = date '{business_date.isoformat()}'"
    )
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "select gaps.source, gaps.business_date, gaps.expected"
                " from (select * from {batch}) as gaps"
                f" where gaps.resolved_at is null{date_filter}"
            ),
            description="Every expected source file arrived (open stores sent their POS export, daily sources their file)",
            **severity(WARNING),
        ),
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
            for table in OPTIONAL_TABLES
        ),
        TableValidation("ops", "load_ledger", LOAD_LEDGER_SUITE, load_ledger_suite(business_date)),
        TableValidation("ops", "load_gaps", LOAD_GAPS_SUITE, load_gaps_suite(business_date)),
    ]
