"""The load ledger (``ops.load_ledger``): one row per file or batch loaded.

The ledger row of a load is written in the same transaction as its rows, so a
crash leaves neither. Failed loads are recorded in their own transaction after
the rollback, so they stay visible to operators and to the quality gate.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from include.landing import LandingObject


class ConservationError(Exception):
    """Rows read != rows loaded + skipped + quarantined: never commit that."""


@dataclass
class LoadOutcome:
    load_id: int | None
    source: str
    object: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_skipped: int = 0
    rows_quarantined: int = 0
    message: str | None = None

    def describe(self) -> str:
        if self.status == "failed":
            return f"FAILED {self.object}: {self.message}"
        return (
            f"{self.object}: read {self.rows_read}, loaded {self.rows_loaded}, "
            f"skipped {self.rows_skipped}, quarantined {self.rows_quarantined}"
        )


@dataclass
class RecordedFailure:
    outcome: LoadOutcome
    resolved: bool
    #: The operator's note when resolved.
    message: str | None


class Ledger:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    @contextlib.contextmanager
    def source_lock(self, source: str):
        """Session advisory lock: two runs of one source never interleave."""
        self.conn.execute("select pg_advisory_lock(hashtext('crm.load.' || %s))", (source,))
        try:
            yield
        finally:
            self.conn.execute("select pg_advisory_unlock(hashtext('crm.load.' || %s))", (source,))

    def loaded_checksums(self, source: str, key: str) -> set[str]:
        """Checksums of the versions of ``key`` already loaded (empty: never loaded)."""
        rows = self.conn.execute(
            "select checksum from ops.load_ledger where source = %s and object = %s"
            " and status = 'loaded'",
            (source, key),
        ).fetchall()
        return {r[0] for r in rows}

    def latest_loaded_checksum(self, source: str, key: str) -> str | None:
        """The checksum of the version of ``key`` loaded last (a key replaced whole)."""
        row = self.conn.execute(
            "select checksum from ops.load_ledger where source = %s and object = %s"
            " and status = 'loaded' order by load_id desc limit 1",
            (source, key),
        ).fetchone()
        return row[0] if row else None

    def failure_of(self, source: str, obj: LandingObject) -> RecordedFailure | None:
        """The failure recorded for this exact content of ``obj`` (the latest), if any."""
        row = self.conn.execute(
            "select load_id, business_date, message, resolved_at is not null, resolution"
            " from ops.load_ledger where source = %s and object = %s"
            " and checksum is not distinct from %s and status = 'failed'"
            " order by load_id desc limit 1",
            (source, obj.key, obj.checksum),
        ).fetchone()
        if row is None:
            return None
        load_id, _, message, resolved, resolution = row
        outcome = LoadOutcome(load_id, source, obj.key, "failed", message=message)
        return RecordedFailure(outcome, resolved, resolution)

    def resolve(self, load_id: int, note: str) -> LoadOutcome:
        """Mark a failed load as dealt with by an operator (``crm ledger resolve``)."""
        if not note.strip():
            raise ValueError("say how it was resolved (--note)")
        row = self.conn.execute(
            "update ops.load_ledger set resolved_at = clock_timestamp(), resolution = %s"
            " where load_id = %s and status = 'failed'"
            " returning load_id, source, object, message",
            (note, load_id),
        ).fetchone()
        if row is None:
            raise ValueError(f"load {load_id} is not a failed load in ops.load_ledger")
        return LoadOutcome(row[0], row[1], row[2], "failed", message=row[3])

    def unresolved_gaps(self) -> list[tuple[str, date, str, datetime]]:
        """Expected files not yet arrived nor resolved: (source, business_date, expected, detected_at)."""
        return self.conn.execute(
            "select source, business_date, expected, detected_at from ops.load_gaps"
            " where resolved_at is null order by business_date, source, expected"
        ).fetchall()

    def resolve_gap(self, source: str, business_date: date, expected: str, note: str) -> None:
        """Mark an expected file that will never come as dealt with (``crm ledger resolve-gap``):
        a store closed that day, a tracker outage accepted as lost."""
        if not note.strip():
            raise ValueError("say how it was resolved (--note)")
        row = self.conn.execute(
            "update ops.load_gaps set resolved_at = clock_timestamp(), resolution = %s"
            " where source = %s and business_date = %s and expected = %s and resolved_at is null"
            " returning 1",
            (note, source, business_date, expected),
        ).fetchone()
        if row is None:
            raise ValueError(
                f"no unresolved gap {source} {business_date} {expected!r} in ops.load_gaps"
                " (see crm ledger gaps)"
            )

    def begin(
        self,
        source: str,
        obj: LandingObject | str,
        business_date: date | None,
        checksum: str | None = None,
    ) -> int:
        (load_id,) = self.conn.execute(
            "insert into ops.load_ledger (source, object, object_size, checksum, business_date, status)"
            " values (%s, %s, %s, %s, %s, 'running') returning load_id",
            (source, *_describe(obj, checksum), business_date),
        ).fetchone()
        return load_id

    def record_loaded(
        self, source: str, files: list[tuple[LandingObject, date | None, str | None, int]]
    ) -> list[int]:
        """Ledger rows for files loaded whole in this transaction, in one statement:
        (object, business date, checksum, rows); their load ids, in order."""
        rows = self.conn.execute(
            "insert into ops.load_ledger (source, object, object_size, checksum, business_date,"
            " rows_read, rows_loaded, status, finished_at)"
            " select %s, o, s, c, d, n, n, 'loaded', clock_timestamp()"
            " from unnest(%s::text[], %s::bigint[], %s::text[], %s::date[], %s::bigint[])"
            " with ordinality as f (o, s, c, d, n, i) order by i returning load_id, object",
            (
                source,
                [obj.key for obj, *_ in files],
                [obj.size for obj, *_ in files],
                [checksum for _, _, checksum, _ in files],
                [day for _, day, _, _ in files],
                [n for *_, n in files],
            ),
        ).fetchall()
        ids = {obj: load_id for load_id, obj in rows}
        return [ids[obj.key] for obj, *_ in files]

    def finish(
        self,
        load_id: int,
        *,
        rows_read: int,
        rows_loaded: int,
        rows_quarantined: int,
        rows_skipped: int = 0,
        checksum: str | None = None,
    ) -> LoadOutcome:
        """Mark a load as loaded, in the load's own transaction. ``checksum``, if given, is
        the content checksum computed while the file was read (``begin`` had none)."""
        if rows_read != rows_loaded + rows_skipped + rows_quarantined:
            raise ConservationError(
                f"load {load_id}: read {rows_read} != loaded {rows_loaded} + skipped {rows_skipped}"
                f" + quarantined {rows_quarantined}"
            )
        source, obj = self.conn.execute(
            "update ops.load_ledger set status = 'loaded', rows_read = %s, rows_loaded = %s,"
            " rows_skipped = %s, rows_quarantined = %s, checksum = coalesce(%s, checksum),"
            " finished_at = clock_timestamp() where load_id = %s returning source, object",
            (rows_read, rows_loaded, rows_skipped, rows_quarantined, checksum, load_id),
        ).fetchone()
        return LoadOutcome(
            load_id, source, obj, "loaded", rows_read, rows_loaded, rows_skipped, rows_quarantined
        )

    def record_failure(
        self, source: str, obj: LandingObject | str, business_date: date | None, message: str
    ) -> LoadOutcome:
        key, size, checksum = _describe(obj, None)
        (load_id,) = self.conn.execute(
            "insert into ops.load_ledger (source, object, object_size, checksum, business_date,"
            " status, message, finished_at)"
            " values (%s, %s, %s, %s, %s, 'failed', %s, clock_timestamp()) returning load_id",
            (source, key, size, checksum, business_date, message),
        ).fetchone()
        return LoadOutcome(load_id, source, key, "failed", message=message)


def _describe(obj: LandingObject | str, checksum: str | None) -> tuple[str, int | None, str | None]:
    """(object key, size, checksum) of a landing file, or of a named batch such as a shop table."""
    if isinstance(obj, LandingObject):
        return obj.key, obj.size, obj.checksum
    return obj, None, checksum
