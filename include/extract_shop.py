"""Extract the online shop's tables into ``raw`` incrementally.

Each table is read by ``updated_at`` (order items by their order's
``updated_at``, status history by ``changed_at``) in the window
``(watermark - overlap, interval_end]`` (overlap: ``CRM_SHOP_OVERLAP_MINUTES``,
default 10). The overlap re-reads rows whose
``updated_at`` committed a few seconds late; they are recognised by the raw
table's primary key (key + ``updated_at``) and counted as skipped, so every
version of a row lands once. The upper bound is the run's data interval end,
never ``now()``: a backfill reads what that night would have read.

Rows stream from the shop with ``COPY ... TO STDOUT`` into a temporary table
in the warehouse with ``COPY ... FROM STDIN``, then move into ``raw`` with one
``INSERT ... ON CONFLICT DO NOTHING``; the rows, the ledger entry and the new
watermark commit together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from include import contract
from include.config import CrmError, redact, shop_overlap, shop_reconcile_days
from include.ledger import Ledger, LoadOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShopTable:
    name: str
    columns: str
    cursor_column: str  # the column the window applies to
    select: str  # reads the rows of the window (%(lo)s, %(hi)s)
    select_all: str = ""  # every row, with its window value as _window (reconciliation)
    entity_key: tuple[str, ...] = ()  # names one row in the shop (empty: deletions not tracked)


def _table(spec: contract.ShopTable) -> ShopTable:
    columns = ", ".join(c.name for c in spec.columns)
    if "." in spec.window:  # a parent's column: order items by their order's updated_at
        parent, column = spec.window.split(".")
        keys = ", ".join(f"c.{c.name}" for c in spec.columns)
        select = (
            f"select {keys} from public.{spec.name} c join public.{parent} p using (order_id)"
            f" where p.{column} > %(lo)s and p.{column} <= %(hi)s"
        )
        every = (
            f"select {keys}, p.{column} as _window"
            f" from public.{spec.name} c join public.{parent} p using (order_id)"
        )
        return ShopTable(spec.name, columns, column, select, every, spec.entity_key)
    select = (
        f"select {columns} from public.{spec.name}"
        f" where {spec.window} > %(lo)s and {spec.window} <= %(hi)s"
    )
    every = f"select {columns}, {spec.window} as _window from public.{spec.name}"
    return ShopTable(spec.name, columns, spec.window, select, every, spec.entity_key)


#: The shop tables and columns the extract reads: contract/sources.yml ``shop``.
TABLES = tuple(_table(spec) for spec in contract.shop_tables().values())


class ShopSchemaMissing(CrmError):
    """The shop database lacks a table or column of the source contract: nothing was extracted."""


def check_shop_schema(shop: psycopg.Connection, shop_url: str) -> None:
    """Raise :class:`ShopSchemaMissing`, in one sentence, unless every table and column is there.

    Without this a shop database with no tables failed with psycopg's
    ``relation "public.customers" does not exist`` traceback, one table at a
    time. Only the columns the extract reads are required: a new column is fine.
    """
    # every window column is among the columns read (order items': orders.updated_at)
    needed = {table.name: [c.strip() for c in table.columns.split(",")] for table in TABLES}
    rows = shop.execute(
        "select table_name, column_name from information_schema.columns"
        " where table_schema = 'public' and table_name = any(%s)",
        (list(needed),),
    ).fetchall()
    shop.rollback()
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(table, set()).add(column)
    missing_tables = [f"public.{t}" for t in needed if t not in present]
    missing_columns = [
        f"public.{t}.{c}"
        for t, columns in needed.items()
        if t in present
        for c in columns
        if c not in present[t]
    ]
    if not missing_tables and not missing_columns:
        return
    parts = []
    if missing_tables:
        parts.append(f"no table(s) {', '.join(missing_tables)}")
    if missing_columns:
        parts.append(f"no column(s) {', '.join(missing_columns)}")
    raise ShopSchemaMissing(
        f"The shop database {redact(shop_url)} has {' and '.join(parts)} (or this user cannot "
        f"read them), which the shop extract reads (contract/sources.yml, shop): nothing was "
        f"extracted; if this retailer has no online shop, leave shop out of CRM_SOURCES."
    )


def extract_shop(
    *, shop_url: str, warehouse_url: str, business_date: date, interval_end: datetime
) -> list[LoadOutcome]:
    """Extract every shop table; :class:`ShopSchemaMissing` before anything if one is missing."""
    outcomes = []
    with psycopg.connect(shop_url) as shop:
        # Only reads, ever: the shop's server refuses a write from this session, and
        # the extract works as a role granted SELECT on the shop's tables and nothing else.
        shop.read_only = True
        check_shop_schema(shop, shop_url)
        with psycopg.connect(warehouse_url, autocommit=True) as wh:
            ledger = Ledger(wh)
            with ledger.source_lock("shop"):
                for table in TABLES:
                    outcomes.append(
                        _extract_table(shop, wh, ledger, table, business_date, interval_end)
                    )
                    log.info("%s", outcomes[-1].describe())
                    if outcomes[-1].rows_loaded:
                        # fresh planner statistics for the models that read it next
                        wh.execute(f"analyze raw.shop_{table.name}")
                if reconciliation_due(wh, business_date):
                    for table in TABLES:
                        outcomes.append(
                            _reconcile_table(shop, wh, ledger, table, business_date, interval_end)
                        )
                        log.info("%s", outcomes[-1].describe())
    return outcomes


def reconciliation_due(wh, business_date: date) -> bool:
    """True unless a reconciliation ran for a business date in the last
    ``CRM_SHOP_RECONCILE_DAYS`` days up to this one (a replay of an older night runs its own)."""
    days = shop_reconcile_days()
    (recent,) = wh.execute(
        "select count(*) from ops.load_ledger where source = 'shop' and status = 'loaded'"
        " and object like '%%:reconcile' and business_date > %s and business_date <= %s",
        (business_date - timedelta(days=days), business_date),
    ).fetchone()
    return recent == 0


def _reconcile_table(shop, wh, ledger: Ledger, table: ShopTable, business_date, interval_end):
    """Compare every key of the shop table with raw: versions the window missed (committed
    behind the watermark beyond the overlap) are extracted; keys raw has and the shop no
    longer has are recorded in raw.shop_deletions. Idempotent: a deletion already recorded
    after a key's latest version is not recorded again."""
    source = f"shop.{table.name}:reconcile"
    with wh.transaction():
        load_id = ledger.begin("shop", source, business_date, checksum=interval_end.isoformat())
        wh.execute(
            f"create temp table _all on commit drop as select {table.columns},"
            f" null::timestamptz as _window from raw.shop_{table.name} with no data"
        )
        with (
            shop.cursor().copy(f"copy ({table.select_all}) to stdout") as out,
            wh.cursor().copy(f"copy _all ({table.columns}, _window) from stdin") as into,
        ):
            for chunk in out:
                into.write(chunk)
        shop.rollback()
        (read,) = wh.execute(
            "select count(*) from _all where _window <= %s", (interval_end,)
        ).fetchone()
        missed = wh.execute(
            f"insert into raw.shop_{table.name} ({table.columns}, _load_id)"
            f" select {table.columns}, %s from _all where _window <= %s on conflict do nothing",
            (load_id, interval_end),
        ).rowcount
        deleted = 0
        if table.entity_key:
            key = "concat_ws('|', " + ", ".join(f"{{t}}.{c}::text" for c in table.entity_key) + ")"
            deleted = wh.execute(
                "insert into raw.shop_deletions (table_name, entity_key, detected_at, _load_id)"
                f" select %(table)s, r.k, clock_timestamp(), %(load_id)s from"
                f" (select {key.format(t='w')} as k, max(w._load_id) as last_load"
                f" from raw.shop_{table.name} w group by 1) r"
                f" where not exists (select from _all a where {key.format(t='a')} = r.k)"
                " and not exists (select from raw.shop_deletions d where d.table_name ="
                " %(table)s and d.entity_key = r.k and d._load_id > r.last_load)",
                {"table": table.name, "load_id": load_id},
            ).rowcount
        if missed or deleted:
            log.warning(
                "shop reconciliation of %s: %d version(s) the window had missed extracted, "
                "%d row(s) deleted in the shop recorded in raw.shop_deletions",
                table.name, missed, deleted,
            )  # fmt: skip
        return ledger.finish(
            load_id,
            rows_read=read,
            rows_loaded=missed,
            rows_quarantined=0,
            rows_skipped=read - missed,
        )


def _extract_table(shop, wh, ledger: Ledger, table: ShopTable, business_date, interval_end):
    source = f"shop.{table.name}"
    with wh.transaction():
        row = wh.execute(
            "select high_watermark from ops.watermarks where source = %s for update", (source,)
        ).fetchone()
        watermark = row[0] if row else None
        lo = watermark - shop_overlap() if watermark else datetime(1900, 1, 1).astimezone()
        hi = max(interval_end, watermark) if watermark else interval_end
        load_id = ledger.begin(
            "shop", source, business_date, checksum=f"{lo.isoformat()}..{hi.isoformat()}"
        )
        wh.execute(
            f"create temp table _batch on commit drop as"
            f" select {table.columns} from raw.shop_{table.name} with no data"
        )
        sql = psycopg.ClientCursor(shop).mogrify(table.select, {"lo": lo, "hi": hi})
        with (
            shop.cursor().copy(f"copy ({sql}) to stdout") as out,
            wh.cursor().copy(f"copy _batch ({table.columns}) from stdin") as into,
        ):
            for chunk in out:
                into.write(chunk)
        shop.rollback()  # end the read-only snapshot
        (read,) = wh.execute("select count(*) from _batch").fetchone()
        inserted = wh.execute(
            f"insert into raw.shop_{table.name} ({table.columns}, _load_id)"
            f" select {table.columns}, %s from _batch on conflict do nothing",
            (load_id,),
        ).rowcount
        wh.execute(
            "insert into ops.watermarks (source, high_watermark) values (%s, %s)"
            " on conflict (source) do update set high_watermark = excluded.high_watermark,"
            " updated_at = clock_timestamp()",
            (source, hi),
        )
        return ledger.finish(
            load_id,
            rows_read=read,
            rows_loaded=inserted,
            rows_quarantined=0,
            rows_skipped=read - inserted,
        )
