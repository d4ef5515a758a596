"""Load landing-zone files into ``raw``: every row loaded or quarantined, exactly once.

One transaction holds a file's rows, its quarantined rows and its ledger entry,
so a crash leaves either the whole file or nothing. Small files share a
transaction (``_load_batch``: a dozen round trips and a commit per file cost more
than the rows of an hourly web file), each with its own ledger entry, and end
exactly as they would alone; a file the batch cannot take loads alone. A file already in
the ledger with the same key and checksum is skipped. Conservation is checked
before commit: rows read = rows loaded + rows quarantined, or the file fails.

Two paths, one outcome. The fast path COPYs the file into a text staging table,
counts its records independently of COPY, checks every value against the
contract's field types in SQL and inserts them typed; if anything is off it
rolls back and the row-by-row path parses and types each row in Python with the
same field types (``FieldType``), so a row with a bad value goes to
``quarantine.rejected_rows`` with its record number, field and reason. A file
without a required column fails loudly and is recorded as failed; one file's
failure never stops the other files of its source.

Every listed file ends in the ledger: loaded, skipped as already loaded, or
failed with the reason -- a name off the contract, an impossible date in the
name, content changed after it was loaded, unreadable. A failed file fails its
source's load on every run until an operator resolves it (``crm ledger
resolve``). Names starting with ``.`` are files still being written.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper

from include import contract
from include.config import HK_TZ, late_days, late_sweep_days
from include.landing import Landing, LandingObject, LandingObjectChanged, sha256
from include.ledger import ConservationError, Ledger, LoadOutcome

log = logging.getLogger(__name__)


class FileRejected(Exception):
    """The whole file cannot be loaded (e.g. a required column is missing)."""


class BadValue(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# -- field types: one definition per type, for both load paths -----------------
#
# A value is text (a CSV field, a JSON string or integer). Each type accepts exactly
# what its regular expression (and, for dates, the calendar) allows, in both paths:
# ``parse`` in Python for the row-by-row path, ``sql_check`` / ``sql_value`` in the
# COPY fast path's INSERT from the text staging table. So PostgreSQL's own, wider
# input syntax (``now``, ``epoch``, ``infinity``, ``NaN``, ``1_000``, ``1e3``, offsets
# in a local time, ``24:00:00``, ``Y``/``yes``/``on`` for booleans) is never what
# decides a row's fate. Integers and amounts are range-checked against the raw
# column (int, bigint, numeric(12, 2)), so an overflow quarantines the row instead
# of failing the COPY or the file.

_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
#: Offsets PostgreSQL accepts (up to 15:59); Python would take up to 23:59.
_OFFSET = r"(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)"
INT4_RANGE = (-(2**31), 2**31 - 1)
INT8_RANGE = (-(2**63), 2**63 - 1)
#: numeric(12, 2): below 10^10 in absolute value after rounding to cents.
MONEY_LIMIT = Decimal(10) ** 10
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class FieldType:
    """How one kind of field is read: a Python parser and its SQL twin."""

    name: str
    pattern: str | None  # the whole value must match (None: any text)
    to_python: Callable[[str], Any]
    #: SQL cast of the text ``{v}`` to the raw column's type.
    sql_value: str = "{v}"
    #: SQL condition over ``{v}`` beyond the pattern (range, calendar).
    sql_extra: str = "true"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern) if self.pattern else None)

    def __call__(self, value: str) -> Any:
        """The typed value, or ValueError with the reason."""
        if "\x00" in value:
            raise ValueError("a NUL character")
        regex = self._regex  # type: ignore[attr-defined]
        if regex is not None and not regex.fullmatch(value):
            raise ValueError(f"not a {self.name}")
        return self.to_python(value)

    def check_sql(self, column: str) -> str:
        """SQL: the text in ``column`` is acceptable (the extra condition, which may cast,
        only sees values that matched the pattern)."""
        extra = self.sql_extra.replace("{v}", column)
        if self.pattern is None:
            return extra
        return f"case when {column} ~ '^{self.pattern}$' then {extra} else false end"

    def value_sql(self, column: str) -> str:
        return self.sql_value.replace("{v}", column)


def _text_value(v: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (not encodable as UTF-8)") from None
    return v


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        n = int(v)
        if not low <= n <= high:
            raise ValueError(f"out of range [{low}, {high}]")
        return n

    return parse


def _money_value(v: str) -> Decimal:
    d = Decimal(v)
    if abs(d) < MONEY_LIMIT:  # (beyond it, quantize would exceed the decimal context)
        d = d.quantize(_CENT, rounding=ROUND_HALF_UP)  # as PostgreSQL numeric rounds
    if abs(d) >= MONEY_LIMIT:
        raise ValueError(f"out of range (|amount| < {MONEY_LIMIT})")
    return d


def _utc_value(v: str) -> datetime:
    ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
    try:
        ts.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range (years 1 to 9999 in UTC)") from None
    return ts


_INT = r"[+-]?[0-9]{1,19}"
_MONEY = r"[+-]?[0-9]{1,30}(\.[0-9]{1,30})?"
_HEX = "[0-9a-fA-F]"
_UUID = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_UTC = rf"{_DAY}[T ]{_CLOCK}(\.[0-9]{{1,6}})?{_OFFSET}"


def _int_type(bounds: tuple[int, int], sql_type: str) -> FieldType:
    low, high = bounds
    return FieldType(
        f"whole number ({sql_type})",
        _INT,
        _integer(low, high),
        f"{{v}}::{sql_type}",
        f"{{v}}::numeric between {low} and {high}",
    )


TEXT = FieldType("text", None, _text_value)
INT = _int_type(INT4_RANGE, "int")
BIGINT = _int_type(INT8_RANGE, "bigint")
MONEY = FieldType(
    "decimal amount",
    _MONEY,
    _money_value,
    "{v}::numeric(12, 2)",
    f"abs(round({{v}}::numeric, 2)) < {MONEY_LIMIT}",
)
CALENDAR_DATE = FieldType(
    "date (YYYY-MM-DD)", _DAY, date.fromisoformat, "{v}::date", "pg_input_is_valid({v}, 'date')"
)
LOCAL_TS = FieldType(
    "local timestamp (YYYY-MM-DD HH:MM:SS)",
    f"{_DAY} {_CLOCK}",
    lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S"),
    "{v}::timestamp",
    "pg_input_is_valid({v}, 'timestamp')",
)
UTC_TS = FieldType(
    "UTC timestamp (ISO 8601 with an offset)",
    _UTC,
    _utc_value,
    "{v}::timestamptz",
    "case when pg_input_is_valid({v}, 'timestamptz') then ({v}::timestamptz at time zone 'UTC')"
    " between '0001-01-01' and '9999-12-31 23:59:59.999999' else false end",
)
UUID = FieldType("UUID", _UUID, lambda v: str(uuid.UUID(v)), "{v}::uuid")
YES_NO = FieldType("Y or N", "[YN]", lambda v: v == "Y", "{v} = 'Y'")

#: The contract's field types (contract/sources.yml ``type``), one parser and SQL check each.
FIELD_TYPES: dict[str, FieldType] = {
    "text": TEXT,
    "int": INT,
    "bigint": BIGINT,
    "money": MONEY,
    "date": CALENDAR_DATE,
    "local_ts": LOCAL_TS,
    "utc_ts": UTC_TS,
    "uuid": UUID,
    "yes_no": YES_NO,
}


@dataclass(frozen=True)
class Column:
    name: str  # column in the raw table
    parse: Callable[[str], Any] = TEXT
    required: bool = False  # a row without a value is quarantined
    source: str | None = None  # field name in the file, if different ("customer.email")

    @property
    def field(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Source:
    name: str
    prefix: str
    table: str
    fmt: str  # "csv" or "jsonl"
    columns: tuple[Column, ...]
    key_pattern: re.Pattern
    path_columns: Callable[[re.Match], dict[str, Any]] = lambda m: {}
    keep_extra: bool = False  # unknown JSON fields go to the `extra` jsonb column
    replaced_whole: bool = False  # the same key carries new versions (store master)
    dated_folders: bool = False  # one folder per day: list only the days that can hold new files
    path_date_group: str | None = "date"

    @property
    def one_file_per_day(self) -> bool:
        """A source that sends one file per day (loyalty, complaints, privacy), possibly
        empty, possibly corrected (``<date>_<seq>``)."""
        return not self.dated_folders and self.path_date_group is not None

    def business_date(self, match: re.Match) -> date | None:
        return date.fromisoformat(match[self.path_date_group]) if self.path_date_group else None

    def read_name(self, key: str) -> tuple[date | None, dict[str, Any]]:
        """The name's business date and lineage values; BadName says what is wrong
        (off the contract, an impossible date, a sequence number out of range)."""
        match = self.key_pattern.match(key)
        if not match:
            raise BadName(
                f"{key}: the name is off the {self.name} file name contract"
                f" ({self.key_pattern.pattern}); not loaded"
            )
        try:
            file_date = self.business_date(match)
            values = self.path_columns(match)
        except ValueError as exc:
            raise BadName(f"{key}: the name holds an impossible date ({exc}); not loaded") from None
        seq = match.groupdict().get("seq")
        if seq is not None and not 1 <= int(seq) <= INT4_RANGE[1]:
            raise BadName(f"{key}: sequence number {seq} out of range; not loaded")
        return file_date, values


class BadName(ValueError):
    """A landing file whose name the contract does not allow."""


def _name_columns(columns: tuple[contract.NameColumn, ...]) -> Callable[[re.Match], dict]:
    def read(match: re.Match) -> dict[str, Any]:
        return {c.name: FIELD_TYPES[c.type](match[c.group]) for c in columns}

    return read


def _from_contract(spec: contract.SourceContract) -> Source:
    return Source(
        name=spec.name,
        prefix=spec.prefix,
        table=spec.raw_table,
        fmt=spec.format,
        key_pattern=spec.name_pattern,
        path_columns=_name_columns(spec.name_columns),
        keep_extra=spec.keep_extra,
        replaced_whole=spec.replaced_whole,
        dated_folders=spec.dated_folders,
        path_date_group=spec.business_date_group,
        columns=tuple(
            Column(f.name, FIELD_TYPES[f.type], f.required, None if f.path == f.name else f.path)
            for f in spec.fields
        ),
    )


#: The landing sources, as contract/sources.yml states them (include/contract.py).
SOURCES: dict[str, Source] = {
    name: _from_contract(spec) for name, spec in contract.sources().items()
}


@dataclass
class Rejection:
    line_no: int
    field: str | None
    reason: str
    raw: str


@dataclass
class ParsedRow:
    line_no: int
    values: dict[str, Any] = field(default_factory=dict)


def _open_text(raw_stream, key: str) -> io.TextIOWrapper:
    stream = _byte_stream(raw_stream, key)
    # utf-8-sig drops the BOM some older tills write; newline="" lets csv see CRLF and
    # newlines inside quoted fields.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", errors="strict")


def _typed(source: Source, get: Callable[[str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in source.columns:
        value = get(col.field)
        if value is None or value == "":
            if col.required:
                raise BadValue(col.field, "required value is missing")
            out[col.name] = None
            continue
        try:
            out[col.name] = col.parse(value) if isinstance(value, str) else col.parse(str(value))
        except (ValueError, InvalidOperation) as exc:
            raise BadValue(col.field, f"cannot read {value!r}: {exc}") from None
    return out


def parse_csv(source: Source, text: io.TextIOBase) -> Iterator[ParsedRow | Rejection]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return  # an empty file is valid: no rows
    missing = [c.field for c in source.columns if c.field not in header]
    if missing:
        raise FileRejected(f"missing required column(s) {', '.join(missing)}; header is {header}")
    index = {name: i for i, name in enumerate(header)}
    # Rows are numbered by record (1 = first row after the header), as the COPY
    # fast path numbers them: a quoted field may span several physical lines.
    line_no = 0
    while True:
        line_no += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a NUL character: that record only
            yield Rejection(line_no, None, f"unreadable CSV record: {exc}", "")
            continue
        if len(record) != len(header):
            yield Rejection(
                line_no, None, f"{len(record)} fields, header has {len(header)}", _csv_line(record)
            )
            continue
        try:
            yield ParsedRow(line_no, _typed(source, lambda f, r=record: r[index[f]]))
        except BadValue as exc:
            yield Rejection(line_no, exc.field, exc.reason, _csv_line(record))


def _csv_line(record: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(record)
    return buf.getvalue().rstrip("\r\n")


def parse_jsonl(source: Source, text: io.TextIOBase) -> Iterator[ParsedRow | Rejection]:
    known_top = {c.field.split(".")[0] for c in source.columns}
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            yield Rejection(line_no, None, f"invalid JSON: {exc}", line.rstrip("\r\n"))
            continue

        def get(path: str, obj=obj):
            value: Any = obj
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        try:
            values = _typed(source, get)
        except BadValue as exc:
            yield Rejection(line_no, exc.field, exc.reason, line.rstrip("\r\n"))
            continue
        if source.keep_extra:
            extra = {k: v for k, v in obj.items() if k not in known_top}
            text = json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else ""
            if "\x00" in text or not _encodable(text):
                # PostgreSQL's jsonb takes neither \u0000 nor a lone surrogate.
                reason = "an unknown field holds a NUL character or a lone surrogate"
                yield Rejection(line_no, "extra", reason, line.rstrip("\r\n"))
                continue
            values["extra"] = json.dumps(extra, sort_keys=True) if extra else None
        yield ParsedRow(line_no, values)


def _storable(text: str) -> str:
    """The raw content as PostgreSQL text can hold it: NUL and lone surrogates escaped."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class SourceReport:
    source: str
    loaded: list[LoadOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[LoadOutcome] = field(default_factory=list)

    def add(self, outcomes: list[LoadOutcome]) -> None:
        """Record outcomes: a failed file or quarantined rows are logged each, the clean
        files of a batch in one line (the ledger keeps every file's figures)."""
        clean = []
        for outcome in outcomes:
            (self.loaded if outcome.status == "loaded" else self.failed).append(outcome)
            if outcome.status != "loaded":
                log.error("%s", outcome.describe())
            elif outcome.rows_quarantined:
                log.warning("%s", outcome.describe())
            else:
                clean.append(outcome)
        if len(clean) == 1:
            log.info("%s", clean[0].describe())
        elif clean:
            log.info(
                "%s: %d files loaded, %s to %s: read %d, loaded %d, quarantined 0",
                self.source,
                len(clean),
                clean[0].object,
                clean[-1].object,
                sum(o.rows_read for o in clean),
                sum(o.rows_loaded for o in clean),
            )

    def summary(self) -> str:
        rows = sum(o.rows_loaded for o in self.loaded)
        quarantined = sum(o.rows_quarantined for o in self.loaded)
        return (
            f"{self.source}: {len(self.loaded)} file(s) loaded ({rows} rows, {quarantined} quarantined), "
            f"{len(self.skipped)} already loaded, {len(self.failed)} failed"
        )


def load_source(
    source_name: str, *, warehouse_url: str, landing: Landing, business_date: date
) -> SourceReport:
    """Load every file of a source dated up to ``business_date`` that is not loaded yet.

    Files dated later are left for their own run, so a backfill reproduces
    history; late files for earlier dates are caught up by the next run.
    Raises after trying every file if any file failed.
    """
    source = SOURCES[source_name]
    report = SourceReport(source_name)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        ledger = Ledger(conn)
        batch: list[_Pending] = []
        batch_bytes = 0
        listing = _Listing(source, business_date)
        with ledger.source_lock(source_name):
            for listed in _candidates(conn, listing, landing):
                obj = listed
                if obj.key.rsplit("/", 1)[-1].startswith("."):
                    # The landing contract's temporary name: a file still being written.
                    log.info("%s: %s is still being written; not loaded", source_name, obj.key)
                    continue
                try:
                    file_date, path_values = source.read_name(obj.key)
                except BadName as exc:
                    outcome = _unresolved(ledger, landing, source_name, obj, None, str(exc))
                    if outcome is not None:
                        report.failed.append(outcome)
                    continue
                # The business date a load belongs to: the file's own date, or for an
                # undated file (the store master) the run that loaded it. Staging reads
                # it to build each night from what was known by then.
                file_date = file_date or business_date
                if file_date and file_date > business_date:
                    continue
                seen = ledger.loaded_checksums(source_name, obj.key)
                if seen and obj.checksum is None:
                    # A key loaded before: read it now to tell the same content (skip)
                    # from new content. A new key is hashed while it is loaded.
                    try:
                        obj = replace(obj, checksum=sha256(landing, obj.key))
                    except OSError as exc:
                        failure = f"{obj.key}: {type(exc).__name__}: {exc}"
                        report.failed.append(
                            ledger.record_failure(source_name, obj, file_date, failure)
                        )
                        continue
                current = (
                    # A key replaced whole may go back to an earlier version (A, B, A).
                    {ledger.latest_loaded_checksum(source_name, obj.key)}
                    if seen and source.replaced_whole
                    else seen
                )
                if obj.checksum in current:
                    log.debug("%s: %s already loaded; skipped", source_name, obj.key)
                    report.skipped.append(obj.key)
                    continue
                if seen and not source.replaced_whole:
                    # Landing files are written once: new content under a loaded key is
                    # an upstream error. Never reload or ignore it: it fails every run
                    # until an operator resolves it (``crm ledger resolve``).
                    failure = (
                        f"{obj.key} changed after it was loaded (checksum {obj.checksum},"
                        " loaded as " + ", ".join(sorted(seen)) + "): not reloaded;"
                        " the sender must re-send it under a new name"
                    )
                    outcome = _unresolved(ledger, landing, source_name, obj, file_date, failure)
                    if outcome is not None:
                        report.failed.append(outcome)
                    continue
                file = _Pending(obj, path_values, file_date, listed.checksum is None)
                if seen or obj.size is None or obj.size > SMALL_FILE_BYTES:
                    report.add([_load_file(conn, ledger, source, file, landing)])
                    continue
                batch.append(file)
                batch_bytes += obj.size
                if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    report.add(_load_batch(conn, ledger, source, batch, landing))
                    batch, batch_bytes = [], 0
            report.add(_load_batch(conn, ledger, source, batch, landing))
            _record_listing(conn, listing, report)
            record_gaps(conn, source, business_date)
    log.info(report.summary())
    if report.failed:
        raise FileRejected(
            f"{len(report.failed)} {source_name} file(s) failed: "
            + "; ".join(o.describe() for o in report.failed)
        )
    return report


@dataclass
class _Listing:
    """What ``_candidates`` listed: the files, and which of them a sweep found late."""

    source: Source
    business_date: date
    #: Keys of files dated before the nightly window that no earlier run listed.
    late: set[str] = field(default_factory=set)
    #: True when this run listed the source's whole landing history (``late_sweep_days``).
    swept: bool = False


def _candidates(conn, listing: _Listing, landing: Landing) -> Iterator[LandingObject]:
    """The files that may need loading, without listing a source's whole history each night.

    For sources with one folder per day, only the days from ``late_days()``
    before the business date are listed, extended back to the day after the
    last day that loaded anything (so a first run or a long outage catches up
    on the whole backlog). Every ``late_sweep_days()`` a run also lists the
    whole history once (a sweep): a file that came later than that window, or
    under a folder that is no date, is not in the ledger and is yielded too
    (recorded in ``listing.late``), so no object of the landing zone is left
    out of the ledger for long.
    """
    source, business_date = listing.source, listing.business_date
    if not source.dated_folders:
        yield from landing.list(source.prefix)
        return
    (last,) = conn.execute(
        "select max(business_date) from ops.load_ledger where source = %s and status = 'loaded'",
        (source.name,),
    ).fetchone()
    if last is None:
        listing.swept = True  # the whole history, listed: a sweep
        yield from landing.list(source.prefix)
        return
    first = min(business_date - timedelta(days=late_days()), last + timedelta(days=1))
    day = first
    while day <= business_date:
        yield from landing.list(f"{source.prefix}{day.isoformat()}")
        day += timedelta(days=1)
    if not _sweep_due(conn, source.name, business_date):
        return
    known = {
        key
        for (key,) in conn.execute(
            "select distinct object from ops.load_ledger where source = %s", (source.name,)
        )
    }
    listing.swept = True
    for obj in landing.list(source.prefix):
        if obj.key in known:
            continue
        folder = obj.key[len(source.prefix) :].split("/", 1)[0]
        try:
            folder_date = date.fromisoformat(folder) if _ISO_DATE.fullmatch(folder) else None
        except ValueError:
            folder_date = None  # not a date (the 30th of February): only a sweep lists it
        if folder_date is not None and folder_date >= first:
            continue  # listed tonight, or dated later (its own night lists it)
        listing.late.add(obj.key)
        log.warning(
            "%s: %s was never listed (later than the %d-day late window, or outside any"
            " date folder): found by the sweep",
            source.name,
            obj.key,
            late_days(),
        )
        yield obj


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _sweep_due(conn, source_name: str, business_date: date) -> bool:
    """True unless a sweep of the source ran for a business date in the last
    ``late_sweep_days()`` days up to this one."""
    (recent,) = conn.execute(
        "select count(*) from ops.landing_sweeps where source = %s"
        " and business_date > %s and business_date <= %s",
        (source_name, business_date - timedelta(days=late_sweep_days()), business_date),
    ).fetchone()
    return recent == 0


def _record_listing(conn, listing: _Listing, report: SourceReport) -> None:
    """After every listed file was dealt with: the sweep, and the late files it loaded."""
    if not listing.swept:
        return
    late = [o for o in report.loaded if o.object in listing.late and o.load_id is not None]
    for outcome in late:
        conn.execute(
            "insert into ops.late_files (load_id, source, object, found_for)"
            " values (%s, %s, %s, %s) on conflict do nothing",
            (outcome.load_id, listing.source.name, outcome.object, listing.business_date),
        )
    conn.execute(
        "insert into ops.landing_sweeps (source, business_date, files_found_late)"
        " values (%s, %s, %s) on conflict (source, business_date) do update"
        " set swept_at = clock_timestamp(), files_found_late = excluded.files_found_late",
        (listing.source.name, listing.business_date, len(listing.late)),
    )


def _unresolved(
    ledger: Ledger,
    landing: Landing,
    source_name: str,
    obj: LandingObject,
    file_date: date | None,
    failure: str,
) -> LoadOutcome | None:
    """A file the loader must not load: recorded in the ledger once (per content), and
    reported failed on every run until an operator resolves it; None once resolved."""
    if obj.checksum is None:
        try:
            obj = replace(obj, checksum=sha256(landing, obj.key))
        except OSError as exc:
            failure = f"{failure}; unreadable: {type(exc).__name__}: {exc}"
    previous = ledger.failure_of(source_name, obj)
    if previous is None:
        log.error("%s: %s", source_name, failure)
        return ledger.record_failure(source_name, obj, file_date, failure)
    if previous.resolved:
        log.info("%s: %s (resolved by an operator: %s)", source_name, failure, previous.message)
        return None
    return replace(
        previous.outcome,
        message=f"{previous.outcome.message} (unresolved since load {previous.outcome.load_id};"
        f" once dealt with: crm ledger resolve {previous.outcome.load_id} --note '...')",
    )


def record_gaps(conn, source: Source, business_date: date) -> None:
    """Record each file the source's schedule promised for ``business_date`` that has not
    come, and resolve the gaps of earlier days whose file has come since.

    A gap is a row in ``ops.load_gaps`` that the raw quality gate reports; it is
    resolved (not deleted) when a later run loads the file. What a source promises,
    and what counts as its file having come (a loaded ledger row ``l`` matching gap
    ``g``):

    - POS: one export per store open that day by the latest store master
      (``expected`` = the store code; any seq of that store and day).
    - web: one file per UTC hour of the Hong Kong day, 16:00 UTC the day before to
      15:00 UTC, possibly empty (docs/sources.md, web; ``expected`` = ``web/<date>/<HH>``).
    - loyalty, complaints, privacy: one file a day, possibly empty; the plain name
      or a correction of that day.
    """
    if source.name == "pos":
        expected = [
            code
            for (code,) in conn.execute(
                "select s.store_code from raw.stores s"
                " where s._load_id = (select max(_load_id) from raw.stores)"
                " and (s.opened_on is null or s.opened_on <= %(d)s)"
                " and (s.closed_on is null or s.closed_on >= %(d)s)",
                {"d": business_date},
            )
        ]
        came = "l.object like 'pos/' || g.business_date::text || '/' || g.expected || '\\_%%'"
    elif source.name == "web":
        day_start = datetime.combine(business_date, time(), ZoneInfo(HK_TZ)).astimezone(UTC)
        expected = [
            f"{source.prefix}{day_start + timedelta(hours=h):%Y-%m-%d/%H}" for h in range(24)
        ]
        came = "l.object like g.expected || '.%%'"
    elif source.one_file_per_day:
        expected = [f"{source.prefix}{business_date.isoformat()} (one file a day)"]
        came = "l.business_date = g.business_date"
    else:
        return  # the store master: replaced whole when it changes, on no schedule
    arrived = (
        "exists (select 1 from ops.load_ledger l"
        f" where l.source = g.source and l.status = 'loaded' and {came})"
    )
    conn.execute(
        "insert into ops.load_gaps (source, business_date, expected)"
        " select g.source, g.business_date, g.expected"
        " from (select %(source)s::text as source, %(d)s::date as business_date, e as expected"
        " from unnest(%(expected)s::text[]) as e) as g"
        f" where not {arrived}"
        " on conflict do nothing",
        {"source": source.name, "d": business_date, "expected": expected},
    )
    conn.execute(
        "update ops.load_gaps g set resolved_at = clock_timestamp()"
        f" where g.source = %(source)s and g.resolved_at is null and {arrived}",
        {"source": source.name},
    )


@dataclass(frozen=True)
class _Pending:
    """A listed file to load, with what its name says."""

    obj: LandingObject
    path_values: dict[str, Any]
    file_date: date
    #: The landing gave no checksum when listing: hash the bytes as they are loaded.
    hash_content: bool


#: Files up to this size are loaded many to a transaction (``_load_batch``): for a small
#: file, a dozen round trips and a commit cost more than its rows. Larger files one each.
SMALL_FILE_BYTES = 1 << 20
BATCH_FILES = 500
BATCH_BYTES = 16 << 20
#: Each file that breaks a batch's COPY costs a retry that reads the files before it again.
MAX_BATCH_ATTEMPTS = 8


#: What a file can raise while it is read and staged (besides ``_NotFast``): that file fails, the others go on.
_FILE_ERRORS = (
    FileRejected,
    UnicodeError,
    EOFError,
    gzip.BadGzipFile,
    csv.Error,
    OSError,
    psycopg.Error,
)


def _load_file(conn, ledger: Ledger, source: Source, pending: _Pending, landing) -> LoadOutcome:
    """Load one file in one transaction: the COPY fast path, else row by row.

    The fast path streams the file's bytes straight into COPY (CSV: the server
    parses and types them; JSON lines: parsed in Python, typed by the server);
    it applies when the file's columns are exactly the contract's. Any row COPY
    rejects (a bad value, a missing required field, a ragged row, bad encoding)
    rolls the fast path back to a savepoint and the file is loaded again row by
    row, which quarantines each bad row with its reason. Either way the rows,
    the quarantine and the ledger row commit together, or none of them.

    With ``hash_content`` (a landing that gives no checksum when listing), the
    ledger's checksum is the sha256 of the bytes read by the path that loaded
    the file, written to the ledger row before commit. If ``obj`` already has
    one (hashed up front), the bytes read must match it.
    """
    obj, path_values, file_date, hash_content = (
        pending.obj,
        pending.path_values,
        pending.file_date,
        pending.hash_content,
    )
    file = _LandingFile(landing, obj.key, hash_content)
    try:
        with conn.transaction():
            load_id = ledger.begin(source.name, obj, file_date)
            _prepare_session(conn)
            lineage = {**path_values, "_load_id": load_id, "_file": obj.key}
            fast = _copy_fast(conn, source, file, lineage)
            if fast is not None:
                read = loaded = fast
                quarantined = 0
            else:
                read, loaded, quarantined = _load_rows(conn, source, load_id, file, path_values)
            if hash_content and file.sha256 is None:
                raise RuntimeError(f"{obj.key}: loaded without computing its checksum")
            if obj.checksum is not None and file.sha256 not in (None, obj.checksum):
                raise LandingObjectChanged(
                    f"{obj.key} changed while it was loaded (sha256 {obj.checksum} before,"
                    f" {file.sha256} as read)"
                )
            return ledger.finish(
                load_id,
                rows_read=read,
                rows_loaded=loaded,
                rows_quarantined=quarantined,
                checksum=file.sha256,
            )
    except (*_FILE_ERRORS, ConservationError) as exc:  # psycopg.Error: this file only
        reason = f"{type(exc).__name__}: {exc}"
        if obj.checksum is None and hash_content:
            # As for a file listed with its checksum: the failed version is identified.
            with contextlib.suppress(OSError):
                obj = replace(obj, checksum=sha256(landing, obj.key))
        return ledger.record_failure(source.name, obj, file_date, f"{obj.key}: {reason}")


class _BrokeCopy(Exception):
    """A batch's transaction is aborted: by the file at ``index`` (its COPY failed), or
    by none in particular (None)."""

    def __init__(self, index: int | None):
        super().__init__(index)
        self.index = index


def _load_batch(
    conn, ledger: Ledger, source: Source, batch: list[_Pending], landing
) -> list[LoadOutcome]:
    """Load small files many to a transaction, with the outcome ``_load_file`` gives each.

    Each file is COPYed into the staging table (one round trip or two); then one
    query finds the files holding a value the contract refuses, one inserts a ledger
    row per file, one inserts the rows typed with each file's lineage. Files the fast
    path does not take as they are (a refused value, an unknown column, a changed
    checksum, ...) are left out of the batch and loaded one by one by ``_load_file``,
    which quarantines their bad rows. A file that breaks its COPY (malformed CSV)
    aborts the transaction: the batch is tried again without it. A kill loses the
    uncommitted batch whole, and the next run loads it again.
    """
    alone: list[_Pending] = []
    loaded: list[LoadOutcome] = []
    attempts = 0
    while len(batch) > 1 and attempts < MAX_BATCH_ATTEMPTS:
        attempts += 1
        try:
            loaded, left_out = _try_batch(conn, ledger, source, batch, landing)
        except _BrokeCopy as exc:
            if exc.index is None:
                break
            alone.append(batch[exc.index])
            batch = batch[: exc.index] + batch[exc.index + 1 :]
            continue
        alone += left_out
        batch = []
    alone += batch  # after too many broken files, every file of the batch alone
    if len(alone) > 1:
        log.info("%s: %d file(s) of a batch loaded one by one", source.name, len(alone))
    return loaded + [_load_file(conn, ledger, source, p, landing) for p in alone]


def _try_batch(
    conn, ledger: Ledger, source: Source, batch: list[_Pending], landing
) -> tuple[list[LoadOutcome], list[_Pending]]:
    """One attempt at ``_load_batch``: the outcomes committed, and the files left out."""
    left_out: list[_Pending] = []
    staged: list[tuple[_Pending, str | None, int, int]] = []  # file, checksum, rows, position
    starts: list[int] = []  # the first _seq of each file with staged rows
    next_seq = 1
    with conn.transaction():
        _prepare_session(conn)
        stage = _stage_table(conn, source)
        to_copy: list[tuple[int, list[list[Any]]]] = []  # JSON lines: (index, records)
        for index, pending in enumerate(batch):
            file = _LandingFile(landing, pending.obj.key, pending.hash_content)
            records = None
            try:
                with file.open() as raw_stream:
                    if source.fmt == "csv":  # the server parses it: one COPY per file
                        rows = _stage_file(conn, source, raw_stream, file.key, stage)
                    else:  # parsed here first: a line the fast path refuses leaves it out
                        stream = _byte_stream(raw_stream, file.key)
                        records = list(_jsonl_values(source, stream))
                        rows = len(records)
            except (_NotFast, *_FILE_ERRORS) as exc:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    raise _BrokeCopy(index) from exc
                if getattr(exc, "staged", 0):  # staged, not to insert: its records keep a place
                    starts.append(next_seq)
                    next_seq += exc.staged
                left_out.append(pending)
                continue
            if rows is None:
                left_out.append(pending)
                continue
            if rows and records is None:  # COPYed: its records have their place
                starts.append(next_seq)
                next_seq += rows
            expected = pending.obj.checksum
            if (pending.hash_content and file.sha256 is None) or (
                expected is not None and file.sha256 not in (None, expected)
            ):
                left_out.append(pending)  # _load_file records why
                continue
            if rows and records is not None:
                starts.append(next_seq)
                next_seq += rows
                to_copy.append((index, records))
            staged.append((pending, file.sha256 or expected, rows, len(starts) if rows else 0))
        if to_copy:
            _copy_jsonl_batch(conn, source, to_copy, stage)
        try:
            refused = _refused_files(conn, source, stage, starts) if starts else set()
            left_out += [s[0] for s in staged if s[3] in refused]
            staged = [s for s in staged if s[3] not in refused]
            if not staged:
                return [], left_out
            load_ids = ledger.record_loaded(
                source.name,
                [(p.obj, p.file_date, checksum, rows) for p, checksum, rows, _ in staged],
            )
            lineage = {
                pos: {**p.path_values, "_load_id": load_id, "_file": p.obj.key}
                for (p, _, rows, pos), load_id in zip(staged, load_ids, strict=True)
                if rows
            }
            inserted = _insert_staged(conn, source, stage, starts, lineage) if lineage else 0
        except psycopg.Error as exc:
            raise _BrokeCopy(None) from exc
        if inserted != sum(s[2] for s in staged):
            raise _BrokeCopy(None)  # never expected: every file then loads on its own
    return [
        LoadOutcome(load_id, source.name, p.obj.key, "loaded", rows, rows)
        for (p, _, rows, _), load_id in zip(staged, load_ids, strict=True)
    ], left_out


def _copy_jsonl_batch(
    conn, source: Source, files: list[tuple[int, list[list[Any]]]], stage: sql.Identifier
) -> None:
    """One COPY for the parsed records of a batch's JSON-lines files, in order; a value
    COPY cannot take as text raises ``_BrokeCopy`` naming its file's index."""
    current: int | None = None

    def records() -> Iterator[list[Any]]:
        nonlocal current
        for index, file_records in files:
            current = index
            yield from file_records

    try:
        _copy_jsonl(conn, source, records(), stage)
    except (_NotFast, UnicodeError) as exc:
        raise _BrokeCopy(None if getattr(exc, "staged", 0) else current) from exc
    except psycopg.Error as exc:
        raise _BrokeCopy(None) from exc


class _HashingReader(io.RawIOBase):
    """A raw stream that feeds every byte read from ``raw`` to a sha256."""

    def __init__(self, raw):
        self._raw = raw
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if hasattr(self._raw, "readinto"):
            n = self._raw.readinto(buffer)
        else:
            data = self._raw.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        if n:
            self._digest.update(memoryview(buffer)[:n])
        return n

    def hexdigest_of_all(self) -> str:
        """The checksum of the whole file: also hashes what the consumer left unread."""
        for chunk in iter(lambda: self._raw.read(1 << 20), b""):
            self._digest.update(chunk)
        return self._digest.hexdigest()


class _LandingFile:
    """One landing file to read, possibly twice (the fast path, then row by row).

    With ``hashed``, each read goes through a sha256 of the raw bytes, and
    ``sha256`` is the checksum of the last read that got to the end without
    an error: the read whose rows are loaded.
    """

    def __init__(self, landing: Landing, key: str, hashed: bool):
        self.landing, self.key, self.hashed = landing, key, hashed
        self.sha256: str | None = None

    def __repr__(self) -> str:
        return self.key

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        with self.landing.open(self.key) as raw:
            if not self.hashed:
                yield raw
                return
            hashing = _HashingReader(raw)
            with io.BufferedReader(hashing, buffer_size=1 << 20) as stream:
                yield stream
                self.sha256 = hashing.hexdigest_of_all()


def _prepare_session(conn) -> None:
    """Per-file transaction settings: UTC for timestamps, a fresh record counter.

    One round trip (a query without parameters may hold several statements):
    under CPU contention each round trip to the server costs milliseconds.
    """
    conn.execute(
        "set local timezone = 'UTC';"
        " create temp sequence if not exists crm_record_seq;"
        " alter sequence pg_temp.crm_record_seq restart with 1"
    )


def _byte_stream(raw_stream, key: str):
    return gzip.GzipFile(fileobj=raw_stream) if key.endswith(".gz") else raw_stream


class _NotFast(Exception):
    """The fast path cannot load this file as it is: load it row by row.

    ``staged``: rows of the file already COPYed into the staging table (the caller
    leaves them out)."""

    def __init__(self, message: str, staged: int = 0):
        super().__init__(message)
        self.staged = staged


def _copy_fast(conn, source: Source, file: _LandingFile, lineage: dict[str, Any]) -> int | None:
    """COPY the file into its text staging table, check every value against the
    contract's types in SQL, then insert it typed; the number of rows, or None to load
    it row by row (anything the row-by-row path would treat differently)."""
    try:
        with conn.transaction(), file.open() as raw_stream:
            stage = _stage_table(conn, source)
            rows = _stage_file(conn, source, raw_stream, file.key, stage)
            if rows:
                _insert_staged(conn, source, stage, [1], {1: lineage})
            return rows
    except (psycopg.Error, _NotFast, UnicodeEncodeError) as exc:
        log.info(
            "%s: the COPY fast path rejected the file (%s); loading row by row",
            file.key,
            str(exc).splitlines()[0],
        )
        return None


def _stage_file(conn, source: Source, raw_stream, key: str, stage) -> int | None:
    """COPY one file's records into the staging table as text, as they are read: their
    number, or None if the file's header is not the contract's (row by row)."""
    stream = _byte_stream(raw_stream, key)
    if source.fmt == "csv":
        return _copy_csv(conn, source, stream, stage)
    return _copy_jsonl(conn, source, _jsonl_values(source, stream), stage)


def _stage_columns(source: Source) -> list[str]:
    return [c.name for c in source.columns] + (["extra"] if source.keep_extra else [])


def _stage_table(conn, source: Source) -> sql.Identifier:
    """This session's text twin of the source's raw table, empty at every commit.

    Created once per session: no catalog change per file (``ALTER TABLE`` per file cost
    milliseconds and an exclusive lock). ``_seq`` numbers the staged records from 1 across
    the files of a transaction (each file's records are consecutive); ``_line`` is the
    record number in its file where the parser knows it (JSON lines), else derived from
    ``_seq`` (CSV: the file's first record is 1).
    """
    name = sql.Identifier(f"crm_stage_{source.name}")
    conn.execute(
        sql.SQL(
            "create temp table if not exists {} ({}, _line bigint,"
            " _seq bigint not null default nextval('pg_temp.crm_record_seq'))"
            " on commit delete rows"
        ).format(
            name,
            sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(c)) for c in _stage_columns(source)
            ),
        )
    )
    return name


def _insert_staged(
    conn, source: Source, stage: sql.Identifier, starts: list[int], files: dict[int, dict]
) -> int:
    """Insert staged files typed, each with its lineage, in one pass; the rows inserted.

    ``starts`` holds the first ``_seq`` of each file staged in this transaction, in
    order (``width_bucket`` tells a record's file from it); ``files`` maps the position
    (from 1) of each file to insert to its lineage values (other staged files are left
    out). Each value is checked against its field type (``FieldType.check_sql``) and
    cast, and a refused one raises (``ops.refuse_value``, naming the record and field).
    """
    line = "coalesce(s._line, s._seq - f._offset)"
    values = []
    for col in source.columns:
        ident = sql.Identifier(col.name).as_string(conn)
        field_type = col.parse if isinstance(col.parse, FieldType) else TEXT
        check = field_type.check_sql(ident)
        if check == "true" and not col.required:
            values.append(field_type.value_sql(ident))
            continue
        refused = field_type.value_sql(
            f"ops.refuse_value({line}, {sql.Literal(col.field).as_string(conn)})"
        )
        null = "null" if not col.required else refused
        values.append(
            f"case when {ident} is null then {null} when {check}"
            f" then {field_type.value_sql(ident)} else {refused} end"
        )
    if source.keep_extra:
        values.append("extra::jsonb")
    lineage = list(next(iter(files.values())))
    targets = [*_stage_columns(source), *lineage, "_line"]
    rows = sql.SQL(", ").join(
        sql.SQL("({})").format(
            sql.SQL(", ").join(
                [sql.Literal(pos), sql.Literal(starts[pos - 1] - 1)]
                + [sql.Literal(values_[c]) for c in lineage]
            )
        )
        for pos, values_ in files.items()
    )
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "insert into {} ({}) select {}, {}, {} from {} s join (values {}) as f (_idx,"
                " _offset, {}) on f._idx = width_bucket(s._seq, {})"
            ).format(
                sql.Identifier(*source.table.split(".")),
                sql.SQL(", ").join(map(sql.Identifier, targets)),
                sql.SQL(", ".join(values)),  # an argument: its braces (regexes) stay as they are
                sql.SQL(", ").join(sql.Identifier("f", c) for c in lineage),
                sql.SQL(line),
                stage,
                rows,
                sql.SQL(", ").join(map(sql.Identifier, lineage)),
                _bigint_array(starts),
            )
        )
        return cur.rowcount


def _bigint_array(values: list[int]) -> sql.Composable:
    return sql.SQL("array[{}]::bigint[]").format(sql.SQL(", ").join(map(sql.Literal, values)))


def _refused_files(conn, source: Source, stage: sql.Identifier, starts: list[int]) -> set[int]:
    """The positions (as in ``_insert_staged``) of the staged files holding a value the
    contract refuses or a required value missing: the row-by-row path quarantines them."""
    valid = []
    for col in source.columns:
        ident = sql.Identifier(col.name).as_string(conn)
        field_type = col.parse if isinstance(col.parse, FieldType) else TEXT
        check = field_type.check_sql(ident)
        if col.required:
            valid.append(f"({ident} is not null and {check})")
        elif check != "true":
            valid.append(f"({ident} is null or {check})")
    if not valid:
        return set()
    rows = conn.execute(
        sql.SQL("select distinct width_bucket(_seq, {}) from {} where ({}) is not true").format(
            _bigint_array(starts), stage, sql.SQL(" and ".join(valid))
        )
    ).fetchall()
    return {r[0] for r in rows}


class _RecordCounter:
    """Counts the CSV records of a byte stream as it is read (rows read, independent of
    what COPY reports): a newline ends a record unless it is inside quotes (an odd number
    of quote characters before it in the record; an escaped quote is two)."""

    def __init__(self) -> None:
        self.ended = 0
        self.in_quotes = False
        self.partial = False  # bytes since the last record's end

    def see(self, chunk: bytes) -> bytes:
        *complete, last = chunk.split(b"\n")
        for part in complete:
            if part.count(b'"') % 2:
                self.in_quotes = not self.in_quotes
            if self.in_quotes:
                self.partial = True
            else:
                self.ended += 1
                self.partial = False
        if last.count(b'"') % 2:
            self.in_quotes = not self.in_quotes
        self.partial = self.partial or bool(last)
        return chunk

    @property
    def records(self) -> int:
        return self.ended + self.partial


def _copy_csv(conn, source: Source, stream, stage: sql.Identifier) -> int | None:
    first = stream.readline()
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    if not first.strip():
        return 0 if not stream.read(1) else None  # empty file; or a blank first line: row by row
    header = next(csv.reader([first.decode("utf-8", errors="replace")]))
    known = {c.field: c.name for c in source.columns}
    missing = [c.field for c in source.columns if c.field not in header]
    if missing:
        raise FileRejected(f"missing required column(s) {', '.join(missing)}; header is {header}")
    if len(set(header)) != len(header) or set(header) - set(known):
        return None  # new or repeated columns: the row-by-row path keeps the known ones
    cols = sql.SQL(", ").join(sql.Identifier(known[h]) for h in header)
    counter = _RecordCounter()
    counter.see(first)
    with conn.cursor() as cur:
        with cur.copy(
            sql.SQL("copy {} ({}) from stdin (format csv, header true, force_null ({}))").format(
                stage, cols, cols
            )
        ) as copy:
            copy.write(first)
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                copy.write(counter.see(chunk))
        copied = cur.rowcount
    # Anything COPY did not read -- the rest of a file after a line holding only the
    # end-of-data marker \. (PostgreSQL stops there) -- sends the file row by row.
    if copied != counter.records - 1:
        raise _NotFast(
            f"COPY read {copied} of the file's {counter.records - 1} records", staged=copied
        )
    return copied


_JSON_SPACE = " \t\n\r"


class _NotPlainValue(Dumper):
    """COPY dumper for the JSON fast path: a bool, float, object or array value.

    json.loads gives str, int, None, bool, float, dict or list. The fast path
    sends the first three to COPY as text; this dumper, registered on its
    cursor for the other four, sends the file row by row instead (checking the
    type of every value in Python costs about 0.5 us a row, 4% of a web load).
    """

    def dump(self, obj: Any) -> bytes:
        raise _NotFast(f"a {type(obj).__name__} value is typed row by row")


def _jsonl_values(source: Source, stream) -> Iterator[list[Any]]:
    """Parse each line in Python into its contract fields (text, int or None), the
    unknown top-level fields folded into ``extra``, and its line number.

    Anything the row-by-row path would treat differently raises ``_NotFast``: a
    line that is not valid UTF-8 JSON or not an object, or a stray carriage return
    (which would number lines differently). A contract field that is not a string,
    an integer or null is refused when COPY dumps it (``_NotPlainValue``). Empty
    strings are NULL, as in the row-by-row path.
    """
    paths = [c.field.split(".") for c in source.columns]
    flat_fields = [p[0] for p in paths] if all(len(p) == 1 for p in paths) else None
    known_top = frozenset(p[0] for p in paths)
    raw_decode, loads, dumps = json.JSONDecoder().raw_decode, json.loads, json.dumps
    keep_extra = source.keep_extra
    lines = io.BufferedReader(stream, buffer_size=1 << 16)  # readline in C
    for line_no, line in enumerate(lines, start=1):
        if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if b"\r" in line and line.index(b"\r") < len(line) - 2:
            raise _NotFast(f"line {line_no}: a carriage return inside the line")
        try:
            text = line.decode()
            try:  # json.loads without its Python-level whitespace handling
                obj, end = raw_decode(text)
                if end != len(text) and text[end:].strip(_JSON_SPACE):
                    raise ValueError("extra data")
            except ValueError:
                if not text.strip():
                    continue  # a blank line: skipped, as row by row
                obj = loads(text)  # leading white space; or raises
        except ValueError as exc:  # also UnicodeDecodeError
            raise _NotFast(f"line {line_no}: {exc}") from None
        if type(obj) is not dict:
            raise _NotFast(f"line {line_no}: not a JSON object")
        if flat_fields is not None:
            values = list(map(obj.get, flat_fields))
        else:
            values = [_json_path(obj, p) for p in paths]
        if "" in values:
            values = [None if v == "" else v for v in values]
        if keep_extra:
            unknown = obj.keys() - known_top
            values.append(dumps({k: obj[k] for k in unknown}) if unknown else None)
        values.append(line_no)
        yield values


def _copy_jsonl(conn, source: Source, records, stage: sql.Identifier) -> int:
    """COPY parsed JSON lines (``_jsonl_values``) as text into the staging table;
    ``_insert_staged`` checks and types them."""
    written = 0
    with conn.cursor() as cur:
        for kind in (bool, float, dict, list):
            cur.adapters.register_dumper(kind, _NotPlainValue)
        columns = sql.SQL(", ").join(map(sql.Identifier, [*_stage_columns(source), "_line"]))
        with cur.copy(sql.SQL("copy {} ({}) from stdin").format(stage, columns)) as copy:
            write_row = copy.write_row
            for values in records:
                write_row(values)
                written += 1
        if cur.rowcount != written:
            raise _NotFast(f"COPY took {cur.rowcount} of {written} rows", staged=cur.rowcount)
    return written


def _json_path(obj: dict, path: list[str]) -> Any:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _load_rows(
    conn, source: Source, load_id: int, file: _LandingFile, path_values
) -> tuple[int, int, int]:
    """Parse and type each row in Python; bad rows go to quarantine with the reason."""
    key = file.key
    parse = parse_csv if source.fmt == "csv" else parse_jsonl
    base_cols = [c.name for c in source.columns] + (["extra"] if source.keep_extra else [])
    cols = base_cols + list(path_values) + ["_load_id", "_file", "_line"]
    read = loaded = 0
    rejections: list[Rejection] = []
    with file.open() as raw_stream, conn.cursor() as cur:
        text = _open_text(raw_stream, key)
        with cur.copy(f"copy {source.table} ({', '.join(cols)}) from stdin") as copy:
            for item in parse(source, text):
                read += 1
                if isinstance(item, Rejection):
                    rejections.append(item)
                    continue
                row = [item.values.get(c) for c in base_cols]
                copy.write_row([*row, *path_values.values(), load_id, key, item.line_no])
                loaded += 1
        if rejections:
            cur.executemany(
                "insert into quarantine.rejected_rows"
                " (load_id, source, object, line_no, field, reason, raw_content)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (load_id, source.name, key, r.line_no, r.field, r.reason, _storable(r.raw))
                    for r in rejections
                ],
            )
    return read, loaded, len(rejections)
