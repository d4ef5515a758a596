"""Load benchmark: our loader against the usual ways of putting files into PostgreSQL.

    .venv/bin/python bench/load.py --pos-lines 1000000 --web-events 1000000
    .venv/bin/python bench/load.py --quick          # a small run that checks the script works

It starts its own embedded PostgreSQL (include.warehouse) in a temporary
CRM_HOME, creates a fresh database with the warehouse schema, writes seeded
POS CSV and web JSONL.gz files as SOURCES.md (2a, 2d) describes them, and
loads the same files into the same raw table with each method, one method per
subprocess so that each method's peak RSS is its own (VmHWM of that child and
of its children, e.g. ``gzip`` under ``psql``; see ``Bench._spawn``).
The table is truncated and the server checkpointed between runs. Every
run's result is checked: row count and content fingerprints (sums and
non-null counts) must equal what the generator wrote, or the run fails.

The fast methods (ours, the bare COPY variants, psql) run ``--repeat`` times
each (default 3), interleaved round by round, and the table reports the median
rows/s with the range; one run of them varies by 20-35% on a small shared VM.
pandas and Airflow run once. ``--fast-only`` skips them (for a quick look).

The loader is being rewritten while this benchmark exists, so ``include/`` is
copied once at start (working tree, and ``HEAD`` when they differ): every
"ours" child of one run measures the same code, which the report names.

Units: MB = 2**20 bytes, for input sizes and for RSS alike.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from include import contract

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20

# The two sources' raw columns, as contract/sources.yml states them.
_POS, _WEB = contract.sources()["pos"], contract.sources()["web"]
_LINEAGE = [c["name"] for c in contract.lineage()]
POS_COLS = [f.name for f in _POS.fields]
POS_LINEAGE = [c.name for c in _POS.name_columns] + _LINEAGE
WEB_COLS = [f.name for f in _WEB.fields]
WEB_LINEAGE = _LINEAGE
TABLE = {"pos": _POS.raw_table, "web": _WEB.raw_table}
LINE_SEQ = "public.bench_line_seq"  # the bare COPY methods' record counter (see _defaults_sql)

# Store codes and till habits as the simulator has them (include/simulator/reference.py):
# older tills write a BOM, CRLF and quote every field; some upload gzipped exports.
STORES = [
    "TST01", "MK01", "CWB01", "ST01", "CEN01", "KT01", "TW01", "YL01", "TKO01", "NP01",
    "SSP01", "TM01", "TP01", "KLC01", "WTS01", "ABD01", "KWC01", "SS01", "TC01",
]  # fmt: skip
LEGACY_TILLS = {1, 6, 11, 16}
GZIP_TILLS = {2, 7, 12, 17}
PAYMENTS = ["cash", "octopus", "visa", "mastercard", "unionpay", "alipayhk", "wechatpay", "fps"]
PAY_WEIGHTS = [0.14, 0.24, 0.2, 0.12, 0.05, 0.1, 0.07, 0.08]
SKUS = [f"{p}-{n}" for p in ("SKC", "MKP", "HAR", "BAB", "HLT", "FRG") for n in range(1001, 1043)]
UNKNOWN_SKUS = ["GWP-TOTE", "LEGACY-4471", "MISC-ITEM"]
SITE = "https://www.harbourbeauty.hk"
EVENT_TYPES = [
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start",
    "purchase", "login", "signup",
]  # fmt: skip
EVENT_WEIGHTS = [0.34, 0.3, 0.08, 0.1, 0.03, 0.05, 0.03, 0.05, 0.02]
DEVICES = ["desktop", "mobile", "tablet"]
AGENTS = {
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
}
REFERRERS = ["", "", "https://www.google.com.hk/", "https://www.google.com/", "https://www.openrice.com/"]  # fmt: skip
CAMPAIGNS = [
    ("facebook", "paid_social", "https://www.facebook.com/"),
    ("instagram", "paid_social", "https://www.instagram.com/"),
    ("google", "cpc", "https://www.google.com.hk/"),
    ("newsletter", "email", ""),
]
SEARCH_TERMS = ["sunscreen", "serum", "vitamin c", "lip tint", "shampoo", "fish oil", "hand cream"]


# =============================================================================================
# Input files
# =============================================================================================
@dataclass
class InputFile:
    key: str  # landing key, e.g. pos/2026-11-20/TST01_1.csv
    path: str
    rows: int
    raw_bytes: int  # uncompressed
    disk_bytes: int
    meta: dict  # path-derived values: business_date, store_code, seq (POS)
    fingerprint: dict  # what the loaded rows must add up to


class _Counter(io.RawIOBase):
    """A binary sink that counts bytes on their way to the real file (or to gzip)."""

    def __init__(self, sink):
        self.sink, self.n = sink, 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += len(b)
        self.sink.write(b)
        return len(b)


def _open_out(path: Path, gz: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("wb")
    inner = (
        gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0, filename="") if gz else fh
    )
    return fh, inner, _Counter(inner)


def write_pos_file(
    root: Path, rng: random.Random, lines: int, day: date, store_idx: int
) -> InputFile:
    """One store's till export for a day: receipts of 1-5 lines, SALE/RETURN/VOID."""
    store = STORES[store_idx]
    legacy, gz = store_idx in LEGACY_TILLS, store_idx in GZIP_TILLS
    key = f"pos/{day.isoformat()}/{store}_1.csv" + (".gz" if gz else "")
    fh, inner, counter = _open_out(root / key, gz)
    text = io.TextIOWrapper(counter, encoding="utf-8-sig" if legacy else "utf-8", newline="")
    writer = csv.writer(
        text,
        lineterminator="\r\n" if legacy else "\n",
        quoting=csv.QUOTE_ALL if legacy else csv.QUOTE_MINIMAL,
    )
    writer.writerow(POS_COLS)
    staff = [f"E{rng.randrange(10000, 100000):05d}" for _ in range(6)]
    opening = datetime.combine(day, datetime.min.time()) + timedelta(hours=10)
    step = 13 * 3600 / max(1, lines / 2.2)  # receipts spread over 10:00-23:00
    fp = {"rows": 0, "quantity": 0, "unit_price_cents": 0, "cards": 0}
    receipt, t, written = 0, 0.0, 0
    while written < lines:
        receipt += 1
        t += rng.expovariate(1 / step)
        ts = (opening + timedelta(seconds=min(t, 13 * 3600 - 1))).strftime("%Y-%m-%d %H:%M:%S")
        number = f"{store}-{day:%Y%m%d}-{receipt:06d}"
        is_return = rng.random() < 0.03
        n_lines = 1 if is_return else min(rng.choice((1, 1, 2, 2, 3, 4, 5)), lines - written)
        r = rng.random()
        card = (
            "" if r < 0.45 else ("0000000000" if r > 0.997 else f"{rng.randrange(10**9, 10**10)}")
        )
        pay = rng.choices(PAYMENTS, PAY_WEIGHTS)[0]
        cashier = staff[rng.randrange(6)]
        for line_no in range(1, n_lines + 1):
            kind = "RETURN" if is_return else ("VOID" if rng.random() < 0.02 else "SALE")
            sku = rng.choice(SKUS) if rng.random() > 0.002 else rng.choice(UNKNOWN_SKUS)
            qty = -rng.randint(1, 2) if is_return else rng.choice((1, 1, 1, 1, 2, 2, 3))
            cents = rng.randrange(10, 1200) * 100 - (10 if rng.random() < 0.6 else 0)
            disc = (
                0 if kind != "SALE" or rng.random() < 0.8 else round(qty * cents * 0.1 / 100) * 100
            )
            writer.writerow(
                [number, store, ts, kind, line_no, sku, qty, f"{cents / 100:.2f}",
                 f"{disc / 100:.2f}", pay, card, cashier]
            )  # fmt: skip
            fp["rows"] += 1
            fp["quantity"] += qty
            fp["unit_price_cents"] += cents
            fp["cards"] += card != ""
            written += 1
    text.flush()
    text.detach()
    if gz:
        inner.close()
    fh.close()
    path = root / key
    meta = {"business_date": day.isoformat(), "store_code": store, "seq": 1}
    return InputFile(key, str(path), fp["rows"], counter.n, path.stat().st_size, meta, fp)


def _uuid(rng: random.Random) -> str:
    h = f"{(rng.getrandbits(128) & ~(0xF << 76) | (0x4 << 76)) & ~(0x3 << 62) | (0x2 << 62):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_web_file(
    root: Path, rng: random.Random, events: int, hour_start: datetime, upgraded: bool
) -> InputFile:
    """One UTC hour of tracker events, in sessions; the upgraded tracker adds `consent_mode`."""
    key = f"web/{hour_start:%Y-%m-%d}/{hour_start:%H}.jsonl.gz"
    fh, inner, counter = _open_out(root / key, True)
    fp = {"rows": 0, "customers": 0, "customer_id_sum": 0, "orders": 0, "extra": 0}
    buf: list[str] = []
    written = 0
    while written < events:
        anon, session = _uuid(rng), f"{rng.getrandbits(64):016x}"
        device = rng.choices(DEVICES, (0.3, 0.6, 0.1))[0]
        ip = f"{rng.choice((1, 14, 42, 58, 112, 203))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        customer = 1_000_000 + rng.randrange(200_000) if rng.random() < 0.4 else None
        utm = (None, None, None)
        referrer = rng.choice(REFERRERS)
        if rng.random() < 0.3:
            src, medium, referrer = rng.choice(CAMPAIGNS)
            utm = (src, medium, f"{hour_start:%Y%m}-promo")
        t = hour_start + timedelta(seconds=rng.uniform(0, 3000))
        for i in range(min(rng.randint(1, 15), events - written)):
            kind = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0] if i else "page_view"
            sku = query = order = None
            url = f"{SITE}/"
            if kind in ("product_view", "add_to_cart", "remove_from_cart"):
                sku = rng.choice(SKUS)
                url = f"{SITE}/p/{sku}"
            elif kind == "search":
                query = rng.choice(SEARCH_TERMS)
                url = f"{SITE}/search?q={query.replace(' ', '+')}"
            elif kind == "purchase":
                order = 50_000_000 + rng.randrange(10_000_000)
                url = f"{SITE}/checkout/done"
            elif kind in ("checkout_start", "login", "signup"):
                url = f"{SITE}/{kind.replace('_', '/')}"
            if kind in ("login", "signup") and customer is None:
                customer = 1_000_000 + rng.randrange(200_000)
            t += timedelta(milliseconds=rng.randrange(2000, 90000))
            doc = {
                "event_id": _uuid(rng),
                "event_ts": min(t, hour_start + timedelta(seconds=3599.999)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%f"
                )[:-3]
                + "Z",
                "event_type": kind,
                "anonymous_id": anon,
                "customer_id": customer,
                "session_id": session,
                "page_url": url,
                "referrer": referrer,
                "sku": sku,
                "search_query": query,
                "order_id": order,
                "utm_source": utm[0] if i == 0 else None,
                "utm_medium": utm[1] if i == 0 else None,
                "utm_campaign": utm[2] if i == 0 else None,
                "device_type": device,
                "ip": ip,
                "user_agent": AGENTS[device],
            }
            if upgraded:
                doc["consent_mode"] = "granted" if rng.random() < 0.9 else "denied"
            buf.append(json.dumps(doc, separators=(",", ":")))
            referrer = url
            fp["rows"] += 1
            fp["customers"] += customer is not None
            fp["customer_id_sum"] += customer or 0
            fp["orders"] += order is not None
            fp["extra"] += upgraded
            written += 1
        if len(buf) >= 5000:
            counter.write(("\n".join(buf) + "\n").encode())
            buf.clear()
    if buf:
        counter.write(("\n".join(buf) + "\n").encode())
    inner.close()
    fh.close()
    path = root / key
    return InputFile(key, str(path), fp["rows"], counter.n, path.stat().st_size, {}, fp)


def _split(total: int, per_file: int, min_files: int) -> list[int]:
    n = max(min_files, math.ceil(total / per_file))
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def generate_pos(root: Path, lines: int, seed: int, first_day: date) -> list[InputFile]:
    files = []
    for k, n in enumerate(_split(lines, 100_000, 4)):
        rng = random.Random(f"pos-{seed}-{k}")
        day = first_day + timedelta(days=k // len(STORES))
        files.append(write_pos_file(root, rng, n, day, k % len(STORES)))
    return files


def generate_web(root: Path, events: int, seed: int, first_day: date) -> list[InputFile]:
    sizes = _split(events, 50_000, 4)
    files = []
    for k, n in enumerate(sizes):
        rng = random.Random(f"web-{seed}-{k}")
        hour = datetime.combine(first_day, datetime.min.time()) + timedelta(hours=k)
        files.append(write_web_file(root, rng, n, hour, upgraded=k >= len(sizes) // 2))
    return files


# =============================================================================================
# Methods: each runs in its own child process (``load.py --child SPEC``)
# =============================================================================================
def _lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _defaults_sql(f: dict, load_id: int) -> str:
    """Give the NOT NULL path and lineage columns per-file defaults (inside the file's transaction)."""
    m = f["meta"]
    values = {
        "_business_date": _lit(m["business_date"]),
        "_file_store_code": _lit(m["store_code"]),
        "_file_seq": str(m["seq"]),
        "_load_id": str(load_id),
        "_file": _lit(f["key"]),
        "_line": f"nextval('{LINE_SEQ}')",
    }
    sets = ", ".join(f"alter column {c} set default {v}" for c, v in values.items())
    return f"alter table raw.pos_lines {sets}; select setval('{LINE_SEQ}', 1, false)"


def _restore_sql(saved: dict[str, str | None]) -> str:
    """Put the table's own column defaults back before the file's transaction commits."""
    parts = [
        f"alter column {c} set default {d}" if d else f"alter column {c} drop default"
        for c, d in saved.items()
    ]
    return f"alter table raw.pos_lines {', '.join(parts)}"


PSQL_LABEL = "psql \\copy (gz via `from program 'gzip -dc'`)"
POS_COPY = (
    f"copy raw.pos_lines ({', '.join(POS_COLS)}) from {{src}}"
    f" (format csv, header true, force_null ({', '.join(POS_COLS)}))"
)


class Run:
    """Child side: the files, the sampling rule and the clock."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.files = spec["files"]
        self.rows = self.files_done = 0
        self.sampled = False
        self.t0 = time.perf_counter()

    def done(self, n: int) -> bool:
        """Count a finished file; True when the method is too slow to finish (sample it)."""
        self.rows += n
        self.files_done += 1
        elapsed = time.perf_counter() - self.t0
        left = self.files_done < len(self.files)
        if left and self.rows >= self.spec["sample_rows"]:
            projected = elapsed * self.spec["total_rows"] / self.rows
            if projected > self.spec["max_seconds"]:
                self.sampled = True
                return True
        return False

    def result(self, **extra) -> dict:
        return {
            "rows": self.rows,
            "files_done": self.files_done,
            "seconds": time.perf_counter() - self.t0,
            "sampled": self.sampled,
            **extra,
        }


def _open_bytes(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def m_ours(spec: dict) -> dict:
    import include
    from include.landing import LocalLanding
    from include.loaders import load_source

    run = Run(spec)
    report = load_source(
        spec["dataset"],
        warehouse_url=spec["url"],
        landing=LocalLanding(Path(spec["landing"])),
        business_date=date.fromisoformat(spec["business_date"]),
    )
    result = run.result()
    loaded = sum(o.rows_loaded for o in report.loaded)
    quarantined = sum(o.rows_quarantined for o in report.loaded)
    if report.failed or quarantined or len(report.loaded) != len(spec["files"]):
        raise SystemExit(f"ours: {report.summary()}")
    result.update(rows=loaded, files_done=len(report.loaded), include=include.__file__)
    return result


def m_bare_pos(spec: dict) -> dict:
    """psycopg COPY ... FROM STDIN of the file's bytes (gunzip in Python, BOM stripped)."""
    import psycopg

    run = Run(spec)
    with psycopg.connect(spec["url"], autocommit=True) as conn:
        for i, f in enumerate(run.files, start=1):
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_defaults_sql(f, i))
                with cur.copy(POS_COPY.format(src="stdin")) as copy, _open_bytes(f["path"]) as fh:
                    first = fh.read(1 << 20)
                    copy.write(first[3:] if first.startswith(b"\xef\xbb\xbf") else first)
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        copy.write(chunk)
                n = cur.rowcount
                cur.execute(_restore_sql(spec["saved_defaults"]))
            if run.done(n):
                break
    return run.result()


WEB_EXTRA_SQL = "nullif(t.doc - array[{known}]::text[], '{{}}'::jsonb)"


def m_bare_web_server(spec: dict) -> dict:
    """COPY each JSON line whole into a temp jsonb column, then one INSERT ... SELECT
    jsonb_populate_record(...) into raw.web_events (the server parses and types the JSON)."""
    import psycopg

    known = ", ".join(_lit(c) for c in WEB_COLS)
    cols = ", ".join(WEB_COLS)
    select = ", ".join(f"r.{c}" for c in WEB_COLS)
    insert = (
        f"insert into raw.web_events ({cols}, extra, _load_id, _file, _line)"
        f" select {select}, {WEB_EXTRA_SQL.format(known=known)}, %s, %s, t.n"
        " from bench_lines t cross join lateral jsonb_populate_record(null::raw.web_events, t.doc) r"
        " where t.doc is not null"
    )
    run = Run(spec)
    with psycopg.connect(spec["url"], autocommit=True) as conn:
        conn.execute(
            "create temp table bench_lines (doc jsonb, n bigint generated always as identity)"
        )
        for i, f in enumerate(run.files, start=1):
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("truncate bench_lines restart identity")
                # 0x1e/0x1f never occur unescaped in JSON: each line is one CSV field.
                sql = "copy bench_lines (doc) from stdin (format csv, delimiter e'\\x1f', quote e'\\x1e')"
                with cur.copy(sql) as copy, _open_bytes(f["path"]) as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        copy.write(chunk)
                cur.execute(insert, (i, f["key"]))
                n = cur.rowcount
            if run.done(n):
                break
    return run.result()


def _web_rows(f: dict, load_id: int):
    """Rows of a web file as Python values: contract fields, `extra` JSON, lineage."""
    known = set(WEB_COLS)
    with _open_bytes(f["path"]) as fh:
        for n, line in enumerate(fh, start=1):
            obj = json.loads(line)
            extra = {k: v for k, v in obj.items() if k not in known}
            yield [
                *(obj.get(c) for c in WEB_COLS),
                json.dumps(extra) if extra else None,
                load_id,
                f["key"],
                n,
            ]


def m_bare_web_python(spec: dict) -> dict:
    """json.loads each line in Python, psycopg COPY ... FROM STDIN with copy.write_row()."""
    import psycopg

    cols = ", ".join([*WEB_COLS, "extra", *WEB_LINEAGE])
    run = Run(spec)
    with psycopg.connect(spec["url"], autocommit=True) as conn:
        for i, f in enumerate(run.files, start=1):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"copy raw.web_events ({cols}) from stdin") as copy:
                    for row in _web_rows(f, i):
                        copy.write_row(row)
                n = cur.rowcount
            if run.done(n):
                break
    return run.result()


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _to_sql(df, engine, table: str, how: str, dtype: dict | None = None) -> None:
    schema, name = table.split(".")
    kwargs = {"method": "multi", "chunksize": 1000} if how == "multi" else {}
    df.to_sql(name, engine, schema=schema, if_exists="append", index=False, dtype=dtype, **kwargs)


def m_pandas_pos(spec: dict) -> dict:
    """pd.read_csv (code columns as str, txn_ts parsed) + lineage columns + DataFrame.to_sql."""
    import pandas as pd

    engine = _engine(spec["url"])
    text_cols = ["receipt_no", "store_code", "txn_type", "sku", "payment_method", "loyalty_card_no", "staff_id"]  # fmt: skip
    run = Run(spec)
    for i, f in enumerate(run.files, start=1):
        df = pd.read_csv(f["path"], dtype=dict.fromkeys(text_cols, str), parse_dates=["txn_ts"])
        m = f["meta"]
        df["_business_date"] = date.fromisoformat(m["business_date"])
        df["_file_store_code"] = m["store_code"]
        df["_file_seq"] = m["seq"]
        df["_load_id"] = i
        df["_file"] = f["key"]
        df["_line"] = range(1, len(df) + 1)
        _to_sql(df, engine, "raw.pos_lines", spec["how"])
        if run.done(len(df)):
            break
    engine.dispose()
    return run.result()


def m_pandas_web(spec: dict) -> dict:
    """pd.read_json(lines=True) + unknown fields folded into `extra` + lineage + to_sql.

    ``dtype=`` names the uuid, timestamptz and jsonb columns: SQLAlchemy's psycopg
    dialect casts string parameters to VARCHAR, which PostgreSQL will not assign to them.
    """
    import pandas as pd
    from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

    engine = _engine(spec["url"])
    dtype = {
        "event_id": UUID(as_uuid=False),
        "event_ts": TIMESTAMP(timezone=True),
        "extra": JSONB(none_as_null=True),
    }
    run = Run(spec)
    for i, f in enumerate(run.files, start=1):
        df = pd.read_json(f["path"], lines=True)
        extras = [c for c in df.columns if c not in WEB_COLS]
        if extras:
            df["extra"] = [dict(zip(extras, v, strict=True)) for v in df[extras].itertuples(index=False)]  # fmt: skip
            df = df.drop(columns=extras)
        else:
            df["extra"] = None
        df["_load_id"] = i
        df["_file"] = f["key"]
        df["_line"] = range(1, len(df) + 1)
        _to_sql(df, engine, "raw.web_events", spec["how"], dtype)
        if run.done(len(df)):
            break
    engine.dispose()
    return run.result()


def m_airflow(spec: dict) -> dict:
    """PostgresHook(postgres_conn_id="bench").insert_rows(table, rows, fields, commit_every)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id="bench")
    run = Run(spec)
    for i, f in enumerate(run.files, start=1):
        if spec["dataset"] == "pos":
            fields, rows = [*POS_COLS, *POS_LINEAGE], list(_pos_rows(f, i))
        else:
            fields, rows = [*WEB_COLS, "extra", *WEB_LINEAGE], list(_web_rows(f, i))
        hook.insert_rows(
            TABLE[spec["dataset"]], rows, target_fields=fields, commit_every=spec["commit_every"]
        )
        if run.done(len(rows)):
            break
    return run.result()


def _pos_rows(f: dict, load_id: int):
    m = f["meta"]
    path_values = [m["business_date"], m["store_code"], m["seq"], load_id, f["key"]]
    with _open_bytes(f["path"]) as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""))
        header = next(reader)
        order = [header.index(c) for c in POS_COLS]
        for n, rec in enumerate(reader, start=1):
            yield [rec[j] or None for j in order] + path_values + [n]


def m_noop(spec: dict) -> dict:
    """Interpreter + psycopg + include.loaders imported, nothing loaded: the RSS floor."""
    import psycopg  # noqa: F401

    import include.loaders  # noqa: F401

    return Run(spec).result()


CHILD_METHODS = {
    "ours": m_ours,
    "bare_pos": m_bare_pos,
    "bare_web_server": m_bare_web_server,
    "bare_web_python": m_bare_web_python,
    "pandas_pos": m_pandas_pos,
    "pandas_web": m_pandas_web,
    "airflow": m_airflow,
    "noop": m_noop,
}


def _hwm_kb(pid: int | str = "self") -> int:
    """Peak resident set of a live process (VmHWM), in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        p = pids[i]
        try:
            pids += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = CHILD_METHODS[spec["method"]](spec)
    result["hwm_kb"] = _hwm_kb()
    Path(spec["result"]).write_text(json.dumps(result))


# =============================================================================================
# Parent: warehouse, runs, checks, report
# =============================================================================================
@dataclass
class Result:
    dataset: str
    label: str
    rows: int
    seconds: float
    mb: float  # uncompressed input MB of the files loaded
    rss_mb: float
    sampled: bool = False
    total_rows: int = 0
    baseline: bool = False  # the "bare COPY" row the % column divides by
    to_sql_default: bool = False
    runs: list[float] = field(default_factory=list)  # rows/s of each run, in round order

    @property
    def rows_s(self) -> float:
        """The median over the runs of a repeated (fast) method; else the one run's."""
        return statistics.median(self.runs) if self.runs else self.rows / self.seconds

    @property
    def mb_s(self) -> float:
        return self.mb * self.rows_s / self.rows


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path):
        self.args, self.tmp = args, tmp
        self.results: list[Result] = []
        self.n_runs = 0  # names the children's spec, result and log files
        self.mem: list[tuple[str, int, float, float, float]] = []
        self.mem_files: dict[int, list[InputFile]] = {}
        self.log_dir = tmp / "logs"
        self.log_dir.mkdir()
        self.airflow_home = tmp / "airflow"
        self.airflow_home.mkdir()

    # -- snapshots of the code under test ----------------------------------------------------
    def snapshot(self) -> None:
        """Copy include/ once (working tree; HEAD too if they differ) so every child runs the same code."""
        git = ["git", "-C", str(REPO)]
        self.commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "include"], capture_output=True, text=True, check=True).stdout  # fmt: skip
        self.dirty_files = [line[3:] for line in dirty.splitlines()]
        self.snap = {"wt": self.tmp / "snap-wt"}
        shutil.copytree(REPO / "include", self.snap["wt"] / "include", ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        if self.dirty_files and not self.args.no_head:
            self.snap["head"] = self.tmp / "snap-head"
            self.snap["head"].mkdir()
            tar = subprocess.run([*git, "archive", "--format=tar", "HEAD", "include"], capture_output=True, check=True).stdout  # fmt: skip
            with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                t.extractall(self.snap["head"], filter="data")
        blob = subprocess.run([*git, "hash-object", str(self.snap["wt"] / "include" / "loaders.py")], capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        self.loaders_blob = blob[:12]

    def ours_label(self, which: str) -> str:
        if which == "head":
            return f"ours: load_source @ {self.commit} (HEAD, committed)"
        if self.dirty_files:
            return f"ours: load_source @ {self.commit} + uncommitted edits (loaders.py blob {self.loaders_blob})"
        return f"ours: load_source @ {self.commit}"

    # -- warehouse ----------------------------------------------------------------------------
    def start_warehouse(self) -> None:
        sys.path.insert(0, str(self.snap["wt"]))
        from include.warehouse import EmbeddedWarehouse, apply_schema, find_bin_dir

        self.wh = EmbeddedWarehouse(self.tmp / "home")
        print(f"# starting PostgreSQL in {self.wh.home}", file=sys.stderr)
        self.wh.start()
        self.psql = find_bin_dir() / "psql"
        self.urls = {}
        import psycopg

        with psycopg.connect(self.wh.url("postgres"), autocommit=True) as conn:
            for which in self.snap:
                db = "bench" if which == "wt" else "bench_head"
                conn.execute(f"drop database if exists {db} with (force)")
                conn.execute(f"create database {db}")
                self.urls[which] = self.wh.url(db)
        apply_schema(self.urls["wt"])
        if "head" in self.snap:  # HEAD's own schema, applied by HEAD's code
            env = os.environ | {"PYTHONPATH": str(self.snap["head"])}
            code = (
                "import sys; from include.warehouse import apply_schema; apply_schema(sys.argv[1])"
            )
            subprocess.run([sys.executable, "-c", code, self.urls["head"]], env=env, cwd=self.tmp, check=True)  # fmt: skip
        with psycopg.connect(self.urls["wt"], autocommit=True) as conn:
            conn.execute(f"create sequence {LINE_SEQ}")
            self.pg_version = conn.execute("show server_version").fetchone()[0]
            self.saved_defaults = {
                c: d
                for c, d in conn.execute(
                    "select a.attname, pg_get_expr(d.adbin, d.adrelid) from pg_attribute a"
                    " left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
                    " where a.attrelid = 'raw.pos_lines'::regclass and a.attname = any(%s)",
                    (POS_LINEAGE,),
                )
            }

    def reset(self, which: str, dataset: str) -> None:
        import psycopg

        with psycopg.connect(self.urls[which], autocommit=True) as conn:
            tables = [TABLE[dataset], "ops.load_ledger", "quarantine.rejected_rows"]
            if conn.execute("select to_regclass('ops.load_gaps')").fetchone()[0]:
                tables.append("ops.load_gaps")
            conn.execute(f"truncate {', '.join(tables)}")
            conn.execute("checkpoint")

    def verify(self, which: str, dataset: str, files: list[InputFile], label: str) -> None:
        """Fail loudly unless the table holds exactly the files' rows."""
        import psycopg

        want: dict = {}
        for f in files:
            for k, v in f.fingerprint.items():
                want[k] = want.get(k, 0) + v
        if dataset == "pos":
            sql = "select count(*), coalesce(sum(quantity), 0), coalesce(sum(unit_price), 0), count(loyalty_card_no) from raw.pos_lines"  # fmt: skip
            expect = (want["rows"], want["quantity"], Decimal(want["unit_price_cents"]).scaleb(-2), want["cards"])  # fmt: skip
        else:
            sql = "select count(*), count(customer_id), coalesce(sum(customer_id), 0), count(order_id), count(extra) from raw.web_events"  # fmt: skip
            expect = (want["rows"], want["customers"], want["customer_id_sum"], want["orders"], want["extra"])  # fmt: skip
        with psycopg.connect(self.urls[which]) as conn:
            got = tuple(conn.execute(sql).fetchone())
        if got != expect:
            raise SystemExit(
                f"VERIFY FAILED for {label} ({dataset}): table has {got}, files have {expect}\n  ({sql})"
            )

    # -- running one method -------------------------------------------------------------------
    def _spawn(self, cmd: list[str], env: dict, name: str) -> tuple[int, float, float]:
        """Run a child; (exit code, wall seconds, peak RSS MB of its process tree).

        Peak RSS is VmHWM from /proc, polled every 20 ms and summed over the live
        processes of the tree (psql + gzip). Not ru_maxrss: on Linux a child's
        ru_maxrss starts at the forking parent's RSS (exec keeps the old high-water
        mark), so it would report this parent's size for a small child such as psql.
        """
        log = (self.log_dir / f"{name}.log").open("w")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        peaks: dict[int, int] = {}
        peak = 0
        while proc.poll() is None:
            for pid in _tree(proc.pid):
                peaks[pid] = max(peaks.get(pid, 0), _hwm_kb(pid))
            live = [p for p in peaks if Path(f"/proc/{p}").exists()]
            peak = max(peak, sum(peaks[p] for p in live))
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        log.close()
        return proc.returncode, wall, peak / 1024

    def child(self, name: str, spec: dict, which: str = "wt") -> tuple[dict, float]:
        spec = {**spec, "url": self.urls[which], "result": str(self.tmp / f"{name}.result.json")}
        spec_path = self.tmp / f"{name}.spec.json"
        spec_path.write_text(json.dumps(spec))
        env = os.environ | {
            "PYTHONPATH": str(self.snap[which]),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW_CONN_BENCH": self.urls[which],
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "DO_NOT_TRACK": "1",
            "SCARF_ANALYTICS": "false",
        }
        code, _, rss = self._spawn([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)], env, name)  # fmt: skip
        if code != 0:
            tail = (self.log_dir / f"{name}.log").read_text()[-3000:]
            raise SystemExit(f"{name} failed (exit {code}); its log ends:\n{tail}")
        result = json.loads(Path(spec["result"]).read_text())
        rss = max(rss, result["hwm_kb"] / 1024)  # exact, from the child itself
        if "include" in result and not result["include"].startswith(str(self.snap[which])):
            raise SystemExit(f"{name} imported {result['include']}, not the snapshot")
        return result, rss

    def run(self, dataset: str, label: str, files: list[InputFile], spec: dict, which: str = "wt") -> tuple[dict, float]:  # fmt: skip
        """One run of a method in its child process, on an emptied table; checked. (result, RSS MB)."""
        self.n_runs += 1
        name = f"{dataset}-{self.n_runs:02d}"
        print(f"# {dataset}: {label} ...", file=sys.stderr, flush=True)
        self.reset(which, dataset)
        spec = {
            "dataset": dataset,
            "files": [asdict(f) for f in files],
            "total_rows": sum(f.rows for f in files),
            "sample_rows": self.args.sample_rows,
            "max_seconds": self.args.max_method_seconds,
            "saved_defaults": self.saved_defaults,
            **spec,
        }
        result, rss = self.child(name, spec, which)
        self.check(which, dataset, label, files, result, rss)
        return result, rss

    def check(self, which, dataset, label, files, result, rss) -> None:
        done = files[: result["files_done"]]
        self.verify(which, dataset, done, label)
        if result["rows"] != sum(f.rows for f in done):
            raise SystemExit(f"{label}: reported {result['rows']} rows, files have {sum(f.rows for f in done)}")  # fmt: skip
        print(f"#   {result['rows']:,} rows in {result['seconds']:.1f} s = {result['rows'] / result['seconds']:,.0f} rows/s, peak RSS {rss:.0f} MB" + (" (sampled)" if result["sampled"] else ""), file=sys.stderr)  # fmt: skip

    def measure(self, dataset: str, label: str, files: list[InputFile], spec: dict, which: str = "wt", **flags) -> None:  # fmt: skip
        """A slow method: one run."""
        result, rss = self.run(dataset, label, files, spec, which)
        self.record(dataset, label, files, [(result, rss)], **flags)

    def measure_fast(self, dataset: str, files: list[InputFile], methods: list[tuple]) -> None:
        """The fast methods, ``--repeat`` runs each, interleaved (a, b, c, a, b, c, ...).

        ``methods`` holds (label, run, flags), ``run()`` doing one checked run. Each
        method is reported with the median of its runs' rows/s: on a small shared VM
        one run of a fast method varies by 20-35%, and interleaving spreads slow
        phases of the machine over all methods alike.
        """
        samples: dict[str, list] = {label: [] for label, _, _ in methods}
        for round_no in range(1, self.args.repeat + 1):
            print(f"# {dataset}: round {round_no} of {self.args.repeat}", file=sys.stderr, flush=True)  # fmt: skip
            for label, run, _ in methods:
                samples[label].append(run())
        for label, _, flags in methods:
            self.record(dataset, label, files, samples[label], **flags)

    def record(self, dataset, label, files, samples: list[tuple[dict, float]], **flags) -> None:
        results = [result for result, _ in samples]
        if len({(r["rows"], r["files_done"]) for r in results}) != 1:
            raise SystemExit(f"{label}: runs loaded different rows: {results}")
        first = results[0]
        done = files[: first["files_done"]]
        r = Result(
            dataset, label, first["rows"], statistics.median(r["seconds"] for r in results),
            sum(f.raw_bytes for f in done) / MB, max(rss for _, rss in samples), first["sampled"],
            sum(f.rows for f in files), **flags,
            runs=[r["rows"] / r["seconds"] for r in results] if len(results) > 1 else [],
        )  # fmt: skip
        self.results.append(r)
        if r.runs:
            print(f"#   {label}: median {r.rows_s:,.0f} rows/s of {len(r.runs)} runs", file=sys.stderr)  # fmt: skip

    def run_psql(self, files: list[InputFile]) -> tuple[dict, float]:
        """psql \\copy per file; gz files through `gzip -dc` (\\copy ... from program), timed."""
        print(f"# pos: {PSQL_LABEL} ...", file=sys.stderr, flush=True)
        self.reset("wt", "pos")
        lines = ["\\set ON_ERROR_STOP on"]
        for i, f in enumerate(files, start=1):
            src = f"program 'gzip -dc {f.path}'" if f.path.endswith(".gz") else _lit(f.path)
            copy = POS_COPY.format(src=src).replace("copy ", "\\copy ", 1)
            lines += ["begin;", _defaults_sql(asdict(f), i) + " \\g /dev/null", copy]
            lines += [_restore_sql(self.saved_defaults) + ";", "commit;"]
        script = self.tmp / "psql-copy.sql"
        script.write_text("\n".join(lines) + "\n")
        cmd = [str(self.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.urls["wt"], "-f", str(script)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        code, wall, rss = self._spawn(cmd, env, "pos-psql")
        if code != 0:
            raise SystemExit(f"psql failed: {(self.log_dir / 'pos-psql.log').read_text()[-3000:]}")
        result = {"rows": sum(f.rows for f in files), "files_done": len(files), "seconds": wall, "sampled": False}  # fmt: skip
        self.check("wt", "pos", PSQL_LABEL, files, result, rss)
        return result, rss

    def memory_check(self, sizes: list[int], first_day: date) -> None:
        """Ours on one POS file of each size: peak RSS should not grow with the file."""
        for which in self.snap:
            for n in sizes:
                root = self.tmp / f"mem-{n}"
                if n not in self.mem_files:
                    self.mem_files[n] = [write_pos_file(root, random.Random(f"mem-{n}"), n, first_day, 0)]  # fmt: skip
                files = self.mem_files[n]
                self.reset(which, "pos")
                spec = {"method": "ours", "dataset": "pos", "files": [asdict(f) for f in files], "landing": str(root), "business_date": first_day.isoformat()}  # fmt: skip
                print(f"# memory: ours ({which}) on one {n:,}-line POS file ...", file=sys.stderr, flush=True)  # fmt: skip
                result, rss = self.child(f"mem-{which}-{n}", spec, which)
                self.verify(which, "pos", files, "memory check")
                self.mem.append((self.ours_label(which), n, files[0].raw_bytes / MB, rss, result["seconds"]))  # fmt: skip
        result, rss = self.child("noop", {"method": "noop", "files": [], "sample_rows": 0, "total_rows": 0, "max_seconds": 0})  # fmt: skip
        self.floor_rss = rss

    # -- report -------------------------------------------------------------------------------
    def table(self, dataset: str) -> str:
        rows = [r for r in self.results if r.dataset == dataset]
        base = next(r for r in rows if r.baseline)
        to_sql = next((r for r in rows if r.to_sql_default), None)
        out = [
            "| method | runs | rows | seconds | rows/s | MB/s | peak RSS MB | % of bare COPY throughput | x to_sql(default) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            label = r.label + (f" (sampled {r.rows:,} rows)" if r.sampled else "")
            seconds = f"{r.seconds:.1f}"
            if r.sampled:
                seconds += f" (≈{r.total_rows / r.rows_s:,.0f} for {r.total_rows:,})"
            label += " **[baseline]**" if r.baseline else ""
            runs = f"median of {len(r.runs)} ({min(r.runs):,.0f}–{max(r.runs):,.0f} rows/s)" if r.runs else "1"  # fmt: skip
            x_to_sql = f"{r.rows_s / to_sql.rows_s:.1f}" if to_sql else "–"
            out.append(
                f"| {label} | {runs} | {r.rows:,} | {seconds} | {r.rows_s:,.0f} | {r.mb_s:.1f} | {r.rss_mb:.0f}"
                f" | {100 * r.rows_s / base.rows_s:.0f}% | {x_to_sql} |"
            )
        for r in rows:
            if r.label.startswith("ours") and r.runs and len(r.runs) == len(base.runs):
                paired = ", ".join(f"{100 * a / b:.0f}%" for a, b in zip(r.runs, base.runs, strict=True))  # fmt: skip
                out.append(f"\n{r.label}, run by run against the baseline's run of the same round: {paired}.")  # fmt: skip
        return "\n".join(out)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))  # fmt: skip
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem_kb / 1024 / 1024}


def size_line(name: str, files: list[InputFile]) -> str:
    raw, disk = sum(f.raw_bytes for f in files) / MB, sum(f.disk_bytes for f in files) / MB
    gz = sum(f.path.endswith(".gz") for f in files)
    return f"- {name}: {len(files)} files ({gz} gzipped), {sum(f.rows for f in files):,} rows, {raw:.1f} MB uncompressed, {disk:.1f} MB on disk"  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pos-lines", type=int, default=1_000_000)
    p.add_argument("--web-events", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="50k rows each: check the script works")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sample-rows", type=int, default=100_000, help="rows a slow method loads before it is sampled")  # fmt: skip
    p.add_argument("--max-method-seconds", type=float, default=120, help="a method projected to take longer than this at full size is stopped after --sample-rows and extrapolated")  # fmt: skip
    p.add_argument("--commit-every", type=int, default=1000, help="PostgresHook.insert_rows commit_every")  # fmt: skip
    p.add_argument("--mem-sizes", default="100000,1000000", help="POS file sizes for the memory check")  # fmt: skip
    p.add_argument("--repeat", type=int, default=3, help="runs of each fast method (ours, bare COPY, psql), interleaved; the median is reported")  # fmt: skip
    p.add_argument("--fast-only", action="store_true", help="skip pandas and Airflow")
    p.add_argument("--no-head", action="store_true", help="measure only the working tree's loader")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child_main(args.child)
    if args.quick:
        args.pos_lines = args.web_events = 50_000
        args.sample_rows, args.max_method_seconds = 12_500, 5
        args.mem_sizes = "10000,100000"
    mem_sizes = [int(x) for x in args.mem_sizes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    bench = Bench(args, tmp)
    started = datetime.now(UTC)
    try:
        bench.snapshot()
        bench.start_warehouse()
        first_day = date(2026, 11, 20)
        landing = tmp / "landing"
        t0 = time.perf_counter()
        pos = generate_pos(landing, args.pos_lines, args.seed, first_day)
        web = generate_web(landing, args.web_events, args.seed, first_day)
        print(f"# generated input in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        common = {"landing": str(landing), "commit_every": args.commit_every}
        pos_day = max(f.meta["business_date"] for f in pos)
        web_day = max(f.key.split("/")[1] for f in web)
        whiches = list(bench.snap)[::-1]  # HEAD first, then the working tree

        def fast(dataset: str, files: list[InputFile], label: str, spec: dict, which: str = "wt", **flags) -> tuple:  # fmt: skip
            return (
                label,
                lambda: bench.run(dataset, label, files, {**common, **spec}, which),
                flags,
            )

        pos_fast = [fast("pos", pos, bench.ours_label(w), {"method": "ours", "business_date": pos_day}, w) for w in whiches]  # fmt: skip
        pos_fast.append(fast("pos", pos, "bare psycopg COPY (csv bytes streamed, per-file column defaults)", {"method": "bare_pos"}, baseline=True))  # fmt: skip
        pos_fast.append((PSQL_LABEL, lambda: bench.run_psql(pos), {}))
        bench.measure_fast("pos", pos, pos_fast)
        if not args.fast_only:
            bench.measure("pos", "pandas read_csv + to_sql (default)", pos, {**common, "method": "pandas_pos", "how": "default"}, to_sql_default=True)  # fmt: skip
            bench.measure("pos", "pandas read_csv + to_sql (method='multi', chunksize=1000)", pos, {**common, "method": "pandas_pos", "how": "multi"})  # fmt: skip
            bench.measure("pos", f"Airflow PostgresHook.insert_rows (commit_every={args.commit_every})", pos, {**common, "method": "airflow"})  # fmt: skip

        web_fast = [fast("web", web, bench.ours_label(w), {"method": "ours", "business_date": web_day}, w) for w in whiches]  # fmt: skip
        web_fast.append(fast("web", web, "bare psycopg COPY, server-side JSON (lines COPY'd to a temp jsonb table + INSERT ... SELECT jsonb_populate_record)", {"method": "bare_web_server"}))  # fmt: skip
        web_fast.append(fast("web", web, "bare psycopg COPY, Python json.loads + copy.write_row", {"method": "bare_web_python"}))  # fmt: skip
        bench.measure_fast("web", web, web_fast)
        if not args.fast_only:
            bench.measure("web", "pandas read_json(lines=True) + to_sql (default)", web, {**common, "method": "pandas_web", "how": "default"}, to_sql_default=True)  # fmt: skip
            bench.measure("web", "pandas read_json(lines=True) + to_sql (method='multi', chunksize=1000)", web, {**common, "method": "pandas_web", "how": "multi"})  # fmt: skip
            bench.measure("web", f"Airflow PostgresHook.insert_rows (commit_every={args.commit_every})", web, {**common, "method": "airflow"})  # fmt: skip
        # The web baseline is the faster of the two bare variants.
        bare_web = [r for r in bench.results if r.dataset == "web" and r.label.startswith("bare")]
        max(bare_web, key=lambda r: r.rows_s).baseline = True

        bench.memory_check(mem_sizes, first_day)
    finally:
        if hasattr(bench, "wh"):
            bench.wh.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"# kept {tmp}", file=sys.stderr)

    m = machine()
    print(f"## Load benchmark, {started:%Y-%m-%d %H:%M} UTC\n")
    print(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']:.1f} GB RAM; PostgreSQL {bench.pg_version} (embedded, default settings, same host); Python {platform.python_version()}")  # fmt: skip
    state = "clean" if not bench.dirty_files else "uncommitted changes in " + ", ".join(bench.dirty_files)  # fmt: skip
    print(f"- Code measured: git {bench.commit}; include/ working tree: {state}")
    print(size_line("POS input", pos))
    print(size_line("Web input", web))
    print(f"- Runs: the fast methods (ours, bare COPY, psql) {args.repeat} times each, interleaved, reporting the median rows/s; pandas and Airflow once" + (" (skipped: --fast-only)" if args.fast_only else ""))  # fmt: skip
    print(f"- Slow methods: stopped after >= {args.sample_rows:,} rows when projected over {args.max_method_seconds:.0f} s at full size; rows/s extrapolated")  # fmt: skip
    for dataset, title in (
        ("pos", "POS lines -> raw.pos_lines"),
        ("web", "Web events -> raw.web_events"),
    ):
        print(f"\n### {title}\n")
        print(bench.table(dataset))
    print("\n### Peak memory against file size (ours, one plain POS CSV)\n")
    print("| loader | file rows | file MB | seconds | peak RSS MB |\n|---|---:|---:|---:|---:|")
    for label, n, mb, rss, secs in bench.mem:
        print(f"| {label} | {n:,} | {mb:.1f} | {secs:.1f} | {rss:.0f} |")
    print(f"\nFloor: a child that only imports psycopg and include.loaders peaks at {bench.floor_rss:.0f} MB.")  # fmt: skip


if __name__ == "__main__":
    main()
