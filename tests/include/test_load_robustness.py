"""Loading survives bad files, re-runs and being killed: nothing lost, nothing doubled."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

import psycopg
import pytest

from include.landing import LocalLanding
from include.loaders import FileRejected, load_source
from include.warehouse import apply_schema

HEADER = "receipt_no,store_code,txn_ts,txn_type,line_no,sku,quantity,unit_price,discount,payment_method,loyalty_card_no,staff_id"
DAY = date(2026, 11, 20)


def pos_row(i: int, store: str = "TST01") -> str:
    return f"{store}-20261120-{i:06d},{store},2026-11-20 10:{i % 60:02d}:00,SALE,1,SKU{i % 50},{1 + i % 3},{10 + i % 7}.50,0,octopus,,S{i % 4}"


def event(i: int, **extra) -> dict:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "event_ts": "2026-11-20T01:00:00Z",
        "event_type": "page_view",
        "anonymous_id": f"a{i}",
        **extra,
    }


GOOD = (HEADER + "\n" + "\n".join(pos_row(i) for i in range(5)) + "\n").encode()

# Each bad input, what lands in raw, and whether the file fails as a whole.
CORPUS = {
    "truncated gzip": ("pos/2026-11-20/A1_1.csv.gz", gzip.compress(GOOD * 50)[:-40], "failed"),
    "invalid utf-8": (
        "pos/2026-11-20/A2_1.csv",
        GOOD.replace(b"octopus", b"oct\xffpus", 1),
        "failed",
    ),
    "wrong delimiter": ("pos/2026-11-20/A3_1.csv", GOOD.replace(b",", b";"), "failed"),
    "missing column": (
        "pos/2026-11-20/A4_1.csv",
        GOOD.replace(b",staff_id", b"").replace(b",S", b"X"),
        "failed",
    ),
    "extra column": (
        "pos/2026-11-20/A5_1.csv",
        (
            HEADER + ",till_model\n" + "\n".join(pos_row(i) + ",T9" for i in range(5)) + "\n"
        ).encode(),
        None,
    ),
    "non-numeric amount": ("pos/2026-11-20/A6_1.csv", GOOD.replace(b"10.50", b"ten", 1), None),
    "impossible date": (
        "pos/2026-11-20/A7_1.csv",
        GOOD.replace(b"2026-11-20 10:00:00", b"2026-02-30 10:00:00", 1),
        None,
    ),
    "empty file": ("pos/2026-11-20/A8_1.csv", b"\n", None),
    "header only": ("pos/2026-11-20/A9_1.csv", (HEADER + "\r\n").encode(), None),
    "0-byte object": ("pos/2026-11-20/B1_1.csv", b"", None),
    "BOM and CRLF": (
        "pos/2026-11-20/B2_1.csv",
        b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n"),
        None,
    ),
    "newline in quoted field": (
        "pos/2026-11-20/B3_1.csv",
        GOOD.replace(b",S0\n", b',"S0\nsecond line"\n', 1),
        None,
    ),
    "ragged row": ("pos/2026-11-20/B4_1.csv", GOOD + b"short,row\n", None),
    "duplicated event_ids": (
        "web/2026-11-20/01.jsonl.gz",
        gzip.compress("\n".join(json.dumps(event(i % 3)) for i in range(6)).encode()),
        None,
    ),
    "json error mid-file": (
        "web/2026-11-20/02.jsonl.gz",
        gzip.compress(
            (
                "\n".join([json.dumps(event(10)), '{"event_id": "x",', json.dumps(event(11))])
            ).encode()
        ),
        None,
    ),
    # What real tills and trackers send that PostgreSQL would read differently from the
    # contract (issue 10): each is one quarantined row, whichever path loads the file.
    "end-of-data marker line": (
        "pos/2026-11-20/C1_1.csv",
        GOOD.replace(b"\n", b"\n\\.\n", 2).replace(b"\n\\.\n", b"\n", 1),
        None,
    ),
    "NaN unit price": ("pos/2026-11-20/C2_1.csv", GOOD.replace(b"10.50", b"NaN", 1), None),
    "barcode in quantity": (
        "pos/2026-11-20/C3_1.csv",
        GOOD.replace(b",1,10.50", b",4891234567890,10.50", 1),
        None,
    ),
    "NUL byte": ("pos/2026-11-20/C4_1.csv", GOOD.replace(b"octopus", b"oct\x00pus", 1), None),
    "now as a timestamp": (
        "pos/2026-11-20/C5_1.csv",
        GOOD.replace(b"2026-11-20 10:00:00", b"now", 1),
        None,
    ),
    "offset in a local time": (
        "pos/2026-11-20/C6_1.csv",
        GOOD.replace(b"2026-11-20 10:00:00", b"2026-11-20 10:00:00+08", 1),
        None,
    ),
    "JSON oddities": (
        "web/2026-11-20/03.jsonl.gz",
        gzip.compress(
            "\n".join(
                [
                    json.dumps(event(20)),
                    json.dumps(event(21, page_url="\ud800")),  # a lone surrogate
                    json.dumps(event(22, page_url="a\u0000b")),  # NUL
                    json.dumps(event(23, customer_id=True)),
                    json.dumps(event(24, customer_id=10**25)),
                    json.dumps(event(25, event_ts="2026-11-20 09:00:00")),  # no offset
                    json.dumps(event(26, utm_extra="\ud800")),  # an unknown field
                ]
            ).encode()
        ),
        None,
    ),
}


@pytest.fixture
def wh(fresh_db_url):
    apply_schema(fresh_db_url)
    return fresh_db_url


def write(root, key, data: bytes):
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def rows(url, sql, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_bad_input_is_quarantined_or_fails_loudly_and_conserves(wh, tmp_path, case):
    key, data, expected_status = CORPUS[case]
    write(tmp_path, key, data)
    source = key.split("/")[0]
    if expected_status == "failed":
        with pytest.raises(FileRejected) as failed:
            load_source(source, warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
        assert key in str(failed.value)  # the message names the file
        assert rows(wh, "select count(*) from raw.pos_lines") == [(0,)]
    else:
        load_source(source, warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
    ((status, read, loaded, quarantined, message),) = rows(
        wh, "select status, rows_read, rows_loaded, rows_quarantined, message from ops.load_ledger"
    )
    table = "raw.web_events" if source == "web" else "raw.pos_lines"
    in_raw = rows(wh, f"select count(*) from {table} where _file = %s", (key,))[0][0]
    in_quarantine = rows(
        wh, "select count(*) from quarantine.rejected_rows where object = %s", (key,)
    )[0][0]
    if expected_status == "failed":
        assert status == "failed" and message
        assert in_raw == in_quarantine == 0
    else:
        assert status == "loaded"
        assert read == loaded + quarantined
        assert (in_raw, in_quarantine) == (loaded, quarantined)


def test_corpus_outcomes(wh, tmp_path):
    """The expected rows of the interesting cases, all files loaded in one run."""
    for key, data, _ in CORPUS.values():
        write(tmp_path, key, data)
    with pytest.raises(FileRejected):  # the truncated, undecodable and headless files
        load_source("pos", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
    load_source("web", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
    by_file = dict(
        rows(
            wh,
            "select object, rows_read || '/' || rows_loaded || '/' || rows_quarantined from ops.load_ledger where status = 'loaded'",
        )
    )
    assert by_file["pos/2026-11-20/A5_1.csv"] == "5/5/0"  # extra column: loaded, kept out
    assert by_file["pos/2026-11-20/A6_1.csv"] == "5/4/1"
    assert by_file["pos/2026-11-20/A7_1.csv"] == "5/4/1"
    assert by_file["pos/2026-11-20/B3_1.csv"] == "5/5/0"
    assert by_file["pos/2026-11-20/B4_1.csv"] == "6/5/1"
    assert by_file["web/2026-11-20/01.jsonl.gz"] == "6/6/0"  # duplicates land; staging dedupes
    assert by_file["web/2026-11-20/02.jsonl.gz"] == "3/2/1"
    # COPY stops at a line holding only \. : the rows after it still load
    assert by_file["pos/2026-11-20/C1_1.csv"] == "6/5/1"
    for key in ("C2", "C3", "C4", "C5", "C6"):
        assert by_file[f"pos/2026-11-20/{key}_1.csv"] == "5/4/1", key
    assert by_file["web/2026-11-20/03.jsonl.gz"] == "7/1/6"
    fields = rows(
        wh,
        "select object, field from quarantine.rejected_rows"
        " where object like 'pos/2026-11-20/C%' or object like 'web/%/03%' order by 1, line_no",
    )
    assert fields == [
        ("pos/2026-11-20/C1_1.csv", None),  # the marker line: 1 field, the header has 12
        ("pos/2026-11-20/C2_1.csv", "unit_price"),
        ("pos/2026-11-20/C3_1.csv", "quantity"),
        ("pos/2026-11-20/C4_1.csv", "payment_method"),  # a NUL character
        ("pos/2026-11-20/C5_1.csv", "txn_ts"),
        ("pos/2026-11-20/C6_1.csv", "txn_ts"),
        ("web/2026-11-20/03.jsonl.gz", "page_url"),
        ("web/2026-11-20/03.jsonl.gz", "page_url"),
        ("web/2026-11-20/03.jsonl.gz", "customer_id"),
        ("web/2026-11-20/03.jsonl.gz", "customer_id"),
        ("web/2026-11-20/03.jsonl.gz", "event_ts"),
        ("web/2026-11-20/03.jsonl.gz", "extra"),
    ]
    assert rows(wh, "select count(*) from raw.pos_lines where unit_price = 'NaN'") == [(0,)]
    reasons = dict(
        rows(
            wh,
            "select object, field || ': ' || reason from quarantine.rejected_rows where field is not null",
        )
    )
    assert reasons["pos/2026-11-20/A6_1.csv"].startswith("unit_price: cannot read 'ten'")


def table_digest(url: str) -> list:
    return rows(
        url,
        "select count(*), md5(string_agg(receipt_no || line_no || _file || _line, ',' order by _file, _line))"
        " from raw.pos_lines",
    ) + rows(
        url,
        "select count(*), sum(rows_read), sum(rows_loaded) from ops.load_ledger where status = 'loaded'",
    )


LOADER = """
import sys
from datetime import date
from include.landing import LocalLanding
from include.loaders import load_source
load_source("pos", warehouse_url=sys.argv[1], landing=LocalLanding(__import__("pathlib").Path(sys.argv[2])),
            business_date=date(2026, 11, 20))
"""


def test_killing_the_loader_at_any_point_then_rerunning_gives_the_exact_result(
    fresh_db_url, tmp_path
):
    landing = tmp_path / "landing"
    for n, store in enumerate(["K1", "K2", "K3", "K4"]):
        body = (HEADER + "\n" + "\n".join(pos_row(i, store) for i in range(60_000)) + "\n").encode()
        write(
            landing,
            f"pos/2026-11-20/{store}_1.csv" + (".gz" if n % 2 else ""),
            gzip.compress(body) if n % 2 else body,
        )

    def run(url, kill_when=None) -> bool:
        """Run the loader; with ``kill_when``, SIGKILL it as soon as that holds. True if killed."""
        proc = subprocess.Popen([sys.executable, "-c", LOADER, url, str(landing)])
        if kill_when is None:
            assert proc.wait(timeout=300) == 0
            return False
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if kill_when(url):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        proc.wait()
        return False

    def copying(min_rows: int):
        """A COPY into the killed database is under way and has read ``min_rows``."""

        def check(url):
            name = url.rsplit("/", 1)[1]
            return bool(
                rows(
                    fresh_db_url,
                    "select 1 from pg_stat_progress_copy where datname = %s and tuples_processed >= %s",
                    (name, min_rows),
                )
            )

        return check

    def committed(files: int):
        return lambda url: (
            rows(url, "select count(*) from ops.load_ledger where status = 'loaded'")[0][0] >= files
        )

    databases = {}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        for name in ("reference", "killed"):
            conn.execute(f"create database {name}")
            databases[name] = fresh_db_url.rsplit("/", 1)[0] + f"/{name}"
            apply_schema(databases[name])
    run(databases["reference"])
    expected = table_digest(databases["reference"])
    assert expected[0][0] == 240_000

    # Mid-COPY of the first file, just after a file committed, mid-COPY of a later file.
    kills = [
        copying(1),
        copying(30_000),
        committed(1),
        copying(50_000),
        committed(2),
        copying(10_000),
    ]
    killed_mid_copy = 0
    for kill_when in kills:
        killed = run(databases["killed"], kill_when)
        partial = table_digest(databases["killed"])[0][0]
        assert partial % 60_000 == 0, f"a file was half loaded: {partial} rows"
        killed_mid_copy += killed and kill_when.__name__ == "check"
    assert killed_mid_copy >= 2, "the loader finished before it could be killed mid-file"
    run(databases["killed"], None)
    assert table_digest(databases["killed"]) == expected
    assert rows(
        databases["killed"], "select count(*) from ops.load_ledger where status <> 'loaded'"
    ) == [(0,)]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        for name in databases:
            conn.execute(f"drop database {name} with (force)")


def test_an_identical_file_sent_again_is_skipped_and_a_resend_under_a_new_name_is_its_own_file(
    wh, tmp_path
):
    landing = LocalLanding(tmp_path)
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", GOOD)
    load_source("pos", warehouse_url=wh, landing=landing, business_date=DAY)
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", GOOD)  # delivered again, same bytes
    again = load_source("pos", warehouse_url=wh, landing=landing, business_date=DAY)
    assert again.skipped == ["pos/2026-11-20/TST01_1.csv"] and not again.loaded
    write(
        tmp_path, "pos/2026-11-20/TST01_2.csv", GOOD
    )  # re-export: a new name (supersedes in staging)
    resent = load_source("pos", warehouse_url=wh, landing=landing, business_date=DAY)
    assert [o.object for o in resent.loaded] == ["pos/2026-11-20/TST01_2.csv"]
    assert rows(wh, "select _file_seq, count(*) from raw.pos_lines group by 1 order by 1") == [
        (1, 5),
        (2, 5),
    ]


def test_two_concurrent_runs_of_one_source_load_each_file_once(fresh_db_url, tmp_path):
    landing = tmp_path / "landing"
    for store in ["C1", "C2", "C3"]:
        body = HEADER + "\n" + "\n".join(pos_row(i, store) for i in range(30_000)) + "\n"
        write(landing, f"pos/2026-11-20/{store}_1.csv", body.encode())
    apply_schema(fresh_db_url)
    procs = [
        subprocess.Popen([sys.executable, "-c", LOADER, fresh_db_url, str(landing)])
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert rows(
        fresh_db_url, "select count(*), count(distinct (_file, _line)) from raw.pos_lines"
    ) == [(90_000, 90_000)]
    assert rows(fresh_db_url, "select count(*) from ops.load_ledger") == [(3,)]


def test_small_files_loaded_many_to_a_transaction_meet_the_fate_they_meet_one_by_one(
    fresh_db_url, tmp_path, monkeypatch
):
    """Small files load in batches (one transaction, a few round trips for many files).
    Every bad file of the corpus, mixed between clean ones, must end exactly as when
    each file is loaded in its own transaction: the same rows with the same lineage and
    record numbers, the same quarantine and ledger; only the bad files leave the batch."""
    import include.loaders as loaders

    clean = {}
    for n, (key, data, _) in enumerate(CORPUS.values()):
        write(tmp_path, key, data)
        store = f"D{n}"  # a clean file after each bad one, of another store
        clean[f"pos/2026-11-20/{store}_1.csv"] = (
            HEADER + "\n" + "\n".join(pos_row(i, store) for i in range(n + 1)) + "\n"
        ).encode()
        clean[f"web/2026-11-20/{n + 4:02d}.jsonl.gz"] = gzip.compress(
            "\n".join(json.dumps(event(100 * n + i)) for i in range(n + 1)).encode()
        )
    for key, data in clean.items():
        write(tmp_path, key, data)

    queries = {
        "pos": "select (to_jsonb(r) - '_load_id')::text from raw.pos_lines r order by 1",
        "web": "select (to_jsonb(r) - '_load_id')::text from raw.web_events r order by 1",
        "quarantine": "select r.object, r.line_no, r.field, r.reason, r.raw_content, l.object"
        " from quarantine.rejected_rows r join ops.load_ledger l using (load_id) order by 1, 2",
        "ledger": "select object, status, checksum, object_size, business_date, rows_read,"
        " rows_loaded, rows_quarantined, regexp_replace(message, 'load [0-9]+', 'load N')"
        " from ops.load_ledger order by 1, 2",
    }
    results, alone = {}, {}
    for mode in ("batched", "one by one"):
        name = mode.replace(" ", "_")
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"create database {name}")
        url = fresh_db_url.rsplit("/", 1)[0] + f"/{name}"
        apply_schema(url)
        monkeypatch.undo()
        if mode == "one by one":
            monkeypatch.setattr(loaders, "SMALL_FILE_BYTES", -1)
        real, alone[mode] = loaders._load_file, []

        def spy(conn, ledger, source, pending, landing, real=real, keys=alone[mode]):
            keys.append(pending.obj.key)
            return real(conn, ledger, source, pending, landing)

        monkeypatch.setattr(loaders, "_load_file", spy)
        with pytest.raises(FileRejected):  # the truncated, undecodable and headless files
            load_source("pos", warehouse_url=url, landing=LocalLanding(tmp_path), business_date=DAY)
        load_source("web", warehouse_url=url, landing=LocalLanding(tmp_path), business_date=DAY)
        results[mode] = {name: rows(url, query) for name, query in queries.items()}
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"drop database {name} with (force)")

    for table in queries:
        batched, single = results["batched"][table], results["one by one"][table]
        assert batched == single, "\n".join(
            [table, *map(str, batched), "-- one by one:", *map(str, single)]
        )
    assert len(results["batched"]["pos"]) > len(clean) and results["batched"]["quarantine"]
    # Every file was alone in the reference run; batched, the clean ones never were.
    assert len(alone["one by one"]) == len(CORPUS) + len(clean)
    assert not set(alone["batched"]) & set(clean)
    assert 0 < len(alone["batched"]) < len(CORPUS)
