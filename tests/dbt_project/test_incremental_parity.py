"""Incremental parity: the incremental core facts, built night after night, equal a full refresh.

A small simulated world (400 people, 3 stores) runs five nights the way the
nightly DAG does: simulate the day, extract the shop and load the landing
files for the business date, then `dbt run` the incremental models for that
date. Along the way the world gets what a plain date window would miss:

- an order placed three weeks earlier is cancelled, another one returned
  (new versions of old orders in raw.shop_orders);
- a POS re-export for a trading day three days back arrives late and drops a
  receipt (lines disappear);
- an hourly web file is delivered five days late (events of old sessions).

After the last night the incremental tables are copied aside, the same
models are rebuilt with --full-refresh for the same business date, and the
two must be equal row for row. Then a backfill of an earlier night (a
business date before what the tables hold) must equal a full refresh as of
that date too. Dropping the look-back (var incremental_lookback_days: 0) or
reprocessing by sale date instead of by touched unit makes this test fail.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import subprocess
import sys
import time as clock
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from include.dbt_build import dbt_env
from include.warehouse import apply_schema

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
HK = ZoneInfo("Asia/Hong_Kong")

START = date(2026, 10, 1)
FIRST_NIGHT = date(2026, 10, 24)  # the history up to here is built by the first (full) run
NIGHTS = [FIRST_NIGHT + timedelta(days=n) for n in range(1, 5)]  # 10-25 .. 10-28
CANCEL_NIGHT, LATE_FILES_NIGHT = NIGHTS[1], NIGHTS[2]
HELD_BACK_WEB = f"web/{(FIRST_NIGHT - timedelta(days=2)).isoformat()}/10.jsonl.gz"
LATE_POS_DAY = LATE_FILES_NIGHT - timedelta(days=3)

INCREMENTAL_TABLES = (
    "int_sales__lines",
    "int_sales__orders",
    "int_web__sessions",
    "int_web__product_views",
)
SELECT = ["--select", *(f"+{t}" for t in INCREMENTAL_TABLES)]
LANDING_SOURCES = ("pos", "stores", "loyalty", "web", "complaints", "privacy")


@pytest.fixture
def world(test_server, tmp_path, monkeypatch):
    """Fresh warehouse and shop databases, and a CRM_HOME of our own."""
    admin = test_server.url("postgres")
    suffix = uuid.uuid4().hex[:10]
    names = {"warehouse": f"parity_wh_{suffix}", "shop": f"parity_shop_{suffix}"}
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'create database "{name}"')
    urls = {role: test_server.url(name) for role, name in names.items()}
    apply_schema(urls["warehouse"])
    home = tmp_path / "crm_home"
    home.mkdir()
    env = {"CRM_HOME": str(home), "WAREHOUSE_URL": urls["warehouse"], "SHOP_DB_URL": urls["shop"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LANDING_URL", raising=False)
    yield {"home": home, "landing": home / "landing", "work": tmp_path, **urls}
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'drop database if exists "{name}" with (force)')


def _log(what: str, since: float) -> None:
    print(f"[parity] {what}: {clock.monotonic() - since:.1f}s", flush=True)


def simulate(*args: str) -> None:
    t0 = clock.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "include.cli", "simulate", *args, "--customers", "400"]
        + ["--stores", "3", "--quiet"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    _log(f"simulate {args}", t0)
    assert result.returncode == 0, (
        f"simulate failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )


def load_night(day: date) -> None:
    """What the DAG's extract and load tasks do for business date ``day``."""
    from include.pipeline import end_of, extract_shop, load_landing

    t0 = clock.monotonic()
    day_end = end_of(day)  # the run's data_interval_end
    extract_shop(day_end)
    for source in LANDING_SOURCES:
        load_landing(source, day_end)
    _log(f"load {day}", t0)


class Dbt:
    """dbt in this process, on a manifest parsed once.

    Every night passes a different business_date var, which makes the dbt CLI
    parse the whole project again (about 15 s each); the models' configs do
    not depend on it, so one parse serves every night and each run takes a
    second or two.
    """

    def __init__(self, world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
        from dbt.cli.main import dbtRunner

        for key, value in {
            **dbt_env(world["warehouse"], "pytest-parity-secret"),
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }.items():
            monkeypatch.setenv(key, value)
        work = world["work"]
        self.common = ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)]
        self.common += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
        self.common += ["--quiet"]
        parsed = dbtRunner().invoke(["parse", *self.common])
        assert parsed.success, f"dbt parse failed: {parsed.exception}"
        self.runner = dbtRunner(manifest=parsed.result)
        self.log = work / "logs" / "dbt.log"

    def __call__(self, *args: str) -> None:
        t0 = clock.monotonic()
        res = self.runner.invoke([*args, *self.common])
        _log(f"dbt {args[:2]}", t0)
        failed = [
            f"{r.node.name}: {r.status} {r.message}"
            for r in (res.result or [])
            if str(r.status) in ("error", "fail", "runtime error")
        ]
        assert res.success, f"dbt {' '.join(args)} failed: {res.exception or ''}\n" + "\n".join(
            failed
        )


def night_vars(day: date) -> list[str]:
    return ["--vars", f'{{"business_date": "{day.isoformat()}"}}']


def cancel_and_return_old_orders(shop_url: str, night: date) -> tuple[str, str]:
    """Cancel one order and return another, both placed about three weeks before ``night``."""
    changed_at = datetime.combine(night, time(12), tzinfo=HK)
    with psycopg.connect(shop_url, autocommit=True) as conn:
        old = conn.execute(
            "select order_id from public.orders where status = 'delivered'"
            " and order_ts < %s order by order_ts limit 2",
            (changed_at - timedelta(days=20),),
        ).fetchall()
        assert len(old) == 2, "the simulated history has no old delivered orders"
        for (order_id,), status in zip(old, ("cancelled", "returned"), strict=True):
            conn.execute(
                "update public.orders set status = %s, updated_at = %s where order_id = %s",
                (status, changed_at, order_id),
            )
            conn.execute(
                "insert into public.order_status_history (order_id, status, changed_at)"
                " values (%s, %s, %s)",
                (order_id, status, changed_at),
            )
    return str(old[0][0]), str(old[1][0])


def late_pos_reexport(landing: Path, day: date) -> tuple[str, str]:
    """Re-export the busiest store of ``day`` under the next seq, without its last receipt."""
    folder = landing / "pos" / day.isoformat()
    latest: dict[str, tuple[int, Path]] = {}
    for path in folder.iterdir():
        store, seq = path.name.split(".")[0].split("_")
        if int(seq) > latest.get(store, (0, path))[0]:
            latest[store] = (int(seq), path)
    exports = {}
    for store, (seq, path) in latest.items():
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("utf-8-sig")
        exports[store] = (seq, list(csv.reader(io.StringIO(text, newline=""))))
    store, (seq, rows) = max(exports.items(), key=lambda item: len(item[1][1]))
    header, lines = rows[0], rows[1:]
    dropped = lines[-1][header.index("receipt_no")]
    kept = [r for r in lines if r[header.index("receipt_no")] != dropped]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows([header, *kept])
    (folder / f"{store}_{seq + 1}.csv").write_text(out.getvalue(), encoding="utf-8")
    return f"pos/{day.isoformat()}/{store}_{seq + 1}.csv", dropped


def table_rows(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def differences(conn: psycopg.Connection, left: str, right: str) -> int:
    """Rows of either table missing from the other, counted as multisets."""
    return conn.execute(
        f"select (select count(*) from (select * from {left} except all select * from {right}) a)"
        f" + (select count(*) from (select * from {right} except all select * from {left}) b)"
    ).fetchone()[0]


def snapshot(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(f"drop schema if exists {schema} cascade")
    conn.execute(f"create schema {schema}")
    for table in INCREMENTAL_TABLES:
        conn.execute(f"create table {schema}.{table} as select * from intermediate.{table}")


def assert_equal_to_full_refresh(world: dict, dbt: Dbt, day: date, incremental_schema: str) -> None:
    dbt("run", "--full-refresh", *SELECT, *night_vars(day))
    with psycopg.connect(world["warehouse"], autocommit=True) as conn:
        for table in INCREMENTAL_TABLES:
            full = f"intermediate.{table}"
            incremental = f"{incremental_schema}.{table}"
            assert table_rows(conn, full) > 0, f"{full} is empty"
            diff = differences(conn, incremental, full)
            assert diff == 0, (
                f"{table} as of {day}: {diff} rows differ between the incremental nights"
                f" ({table_rows(conn, incremental)} rows) and a full refresh"
                f" ({table_rows(conn, full)} rows)"
            )


def test_incremental_nights_equal_a_full_refresh(world, monkeypatch):
    landing = world["landing"]
    dbt = Dbt(world, monkeypatch)
    simulate("--start", START.isoformat(), "--days", str((FIRST_NIGHT - START).days + 1))
    # one hourly web file is held back and delivered days late
    held_back = world["work"] / "held_back.jsonl.gz"
    shutil.move(landing / HELD_BACK_WEB, held_back)

    load_night(FIRST_NIGHT)
    dbt("run", *SELECT, *night_vars(FIRST_NIGHT))  # the first night creates the tables

    for night in NIGHTS:
        simulate("--days", "1")
        if night == CANCEL_NIGHT:
            cancelled, returned = cancel_and_return_old_orders(world["shop"], night)
        if night == LATE_FILES_NIGHT:
            reexport, dropped_receipt = late_pos_reexport(landing, LATE_POS_DAY)
            shutil.move(held_back, landing / HELD_BACK_WEB)
        load_night(night)
        if night == NIGHTS[-1]:  # the last night also runs the models' tests
            dbt("build", *SELECT, "--indirect-selection", "cautious", *night_vars(night))
        else:
            dbt("run", *SELECT, *night_vars(night))

    last = NIGHTS[-1]
    with psycopg.connect(world["warehouse"], autocommit=True) as conn:
        # the late arrivals really were late: loaded on LATE_FILES_NIGHT, dated days before
        late = dict(
            conn.execute(
                "select object, business_date from ops.load_ledger where status = 'loaded'"
                " and object in (%s, %s) and load_id > (select min(load_id)"
                " from ops.load_ledger where source = 'shop' and business_date = %s)",
                (HELD_BACK_WEB, reexport, LATE_FILES_NIGHT),
            ).fetchall()
        )
        assert late == {HELD_BACK_WEB: FIRST_NIGHT - timedelta(days=2), reexport: LATE_POS_DAY}
        # ... and the incremental nights took them in
        statuses = dict(
            conn.execute(
                "select order_ref, max(order_status) from intermediate.int_sales__lines"
                " where order_ref in (%s, %s) group by order_ref",
                (cancelled, returned),
            ).fetchall()
        )
        assert statuses == {cancelled: "cancelled", returned: "returned"}
        assert conn.execute(
            "select bool_and(is_cancelled and net_amount = 0) from intermediate.int_sales__lines"
            " where order_ref = %s",
            (cancelled,),
        ).fetchone()[0]
        assert table_rows(conn, "intermediate.int_sales__lines") > 1000
        gone = conn.execute(
            "select count(*) from intermediate.int_sales__orders where order_ref = %s",
            (dropped_receipt,),
        ).fetchone()[0]
        assert gone == 0, "the receipt dropped by the late re-export is still there"
        snapshot(conn, "parity_nightly")

    assert_equal_to_full_refresh(world, dbt, last, "parity_nightly")

    # A backfill of an earlier night after later ones (a rewind) equals a full refresh too:
    # incremental from the state of the last night, then full refresh, both as of that date.
    # The tables now hold the state of the last night (equal to it, as just shown).
    backfill = NIGHTS[0]
    dbt("run", *SELECT, *night_vars(backfill))
    with psycopg.connect(world["warehouse"], autocommit=True) as conn:
        snapshot(conn, "parity_backfill")
    assert_equal_to_full_refresh(world, dbt, backfill, "parity_backfill")
