"""The whole nightly pipeline with real Airflow (`airflow dags test` through `crm run`)
against the embedded warehouse, on simulated data: two consecutive days, then the
two nights again as a backfill."""

from __future__ import annotations

import csv
import gzip
import io
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)
DAYS = 14
LAST = START + timedelta(days=DAYS - 1)
PUBLISHED_SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts", "pii", "reporting")


def crm(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "include.cli", *args],
        env={**os.environ, "CRM_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0 or not check, (
        f"crm {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def pipeline(test_server):
    home = test_server.home
    crm(
        home,
        "simulate",
        "--start",
        START.isoformat(),
        "--days",
        str(DAYS),
        "--customers",
        "400",
        "--stores",
        "3",
        "--quiet",
    )
    first = crm(home, "run", "--date", (LAST - timedelta(days=1)).isoformat())
    with psycopg.connect(test_server.url("warehouse")) as conn:
        after_first = conn.execute("select count(*) from raw.pos_lines").fetchone()[0]
    second = crm(home, "run", "--date", LAST.isoformat())
    return {
        "home": home,
        "url": test_server.url("warehouse"),
        "shop": test_server.url("shop"),
        "runs": [first, second],
        "pos_after_first": after_first,
    }


def data_rows(path: Path) -> int:
    """Count a landing file's records independently of the loader."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    if ".csv" in path.name:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return max(len(rows) - 1, 0)
    return sum(1 for line in text.splitlines() if line.strip())


def test_every_landing_row_is_loaded_or_quarantined(pipeline):
    landing = pipeline["home"] / "landing"
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    assert len(files) > DAYS * 5
    with psycopg.connect(pipeline["url"]) as conn:
        loaded = dict(
            conn.execute(
                "select _file, count(*) from (select _file from raw.pos_lines union all select _file from raw.stores"
                " union all select _file from raw.loyalty_members union all select _file from raw.web_events"
                " union all select _file from raw.complaint_tickets union all select _file from raw.privacy_requests) f"
                " group by _file"
            ).fetchall()
        )
        quarantined = dict(
            conn.execute(
                "select object, count(*) from quarantine.rejected_rows group by object"
            ).fetchall()
        )
        ledger = dict(
            conn.execute(
                "select object, rows_read from ops.load_ledger where status = 'loaded'"
                " and source <> 'shop'"
            ).fetchall()
        )
        failed = conn.execute(
            "select count(*) from ops.load_ledger where status <> 'loaded'"
        ).fetchone()[0]
    assert failed == 0
    for path in files:
        key = path.relative_to(landing).as_posix()
        expected = data_rows(path)
        assert ledger.get(key) == expected, key
        assert loaded.get(key, 0) + quarantined.get(key, 0) == expected, key


def test_every_shop_row_version_reached_raw(pipeline):
    with psycopg.connect(pipeline["shop"]) as shop, psycopg.connect(pipeline["url"]) as wh:
        for table, key in [
            ("customers", "customer_id, updated_at"),
            ("orders", "order_id, updated_at"),
            ("order_items", "order_id, line_no"),
            ("products", "sku, updated_at"),
        ]:
            source = set(shop.execute(f"select {key} from public.{table}").fetchall())
            landed = set(wh.execute(f"select {key} from raw.shop_{table}").fetchall())
            assert source and source <= landed, f"{table}: {len(source - landed)} rows missing"


def test_second_day_added_data_and_both_days_published(pipeline):
    with psycopg.connect(pipeline["url"]) as conn:
        assert (
            conn.execute("select count(*) from raw.pos_lines").fetchone()[0]
            > pipeline["pos_after_first"]
        )
        published = dict(
            conn.execute(
                "select as_of_date, count(*) from reporting.customer_segments group by 1"
            ).fetchall()
        )
        assert set(published) == {LAST - timedelta(days=1), LAST}
        assert all(n > 50 for n in published.values())
        segments = conn.execute(
            "select count(distinct segment) from reporting.customer_segments where as_of_date = %s",
            (LAST,),
        ).fetchone()[0]
        assert segments >= 4
        # The sales fact never holds a line after the business date it was built for.
        assert conn.execute("select max(business_date) from marts.fct_sales").fetchone()[0] == LAST
        assert (
            conn.execute("select count(distinct channel) from marts.fct_sales").fetchone()[0] == 2
        )


def table_checksums(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema = any(%s) and table_type = 'BASE TABLE'",
            (list(PUBLISHED_SCHEMAS),),
        ).fetchall()
        return {
            t: conn.execute(
                f"select count(*) || ':' || coalesce(md5(string_agg(r::text, '|' order by r::text)), '')"
                f" from {t} r"
            ).fetchone()[0]
            for (t,) in tables
        }


def test_a_backfill_of_the_nights_already_run_changes_nothing(pipeline):
    """Both nights again, in date order, as a backfill runs them: every table the
    pipeline writes ends byte-identical (nothing lost, nothing duplicated, no now())."""
    before = table_checksums(pipeline["url"])
    crm(pipeline["home"], "run", "--date", (LAST - timedelta(days=1)).isoformat(), "--days", "2")
    after = table_checksums(pipeline["url"])
    changed = sorted(t for t in before if before[t] != after.get(t))
    assert not changed, f"tables changed by a backfill: {changed}"


def test_a_failed_critical_expectation_stops_publication(pipeline):
    """Runs last: breaks raw data on purpose. The next night must fail at the raw gate
    and leave the published segments exactly as they were."""
    with psycopg.connect(pipeline["url"]) as conn:
        conn.execute("delete from raw.stores")
        before = conn.execute(
            "select as_of_date, count(*) from reporting.customer_segments group by 1"
        ).fetchall()
    result = crm(
        pipeline["home"], "run", "--date", (LAST + timedelta(days=1)).isoformat(), check=False
    )
    assert result.returncode != 0
    assert "raw.stores" in result.stdout + result.stderr
    with psycopg.connect(pipeline["url"]) as conn:
        after = conn.execute(
            "select as_of_date, count(*) from reporting.customer_segments group by 1"
        ).fetchall()
    assert sorted(after) == sorted(before)
