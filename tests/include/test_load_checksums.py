"""The ledger's checksum of a local file is the sha256 of the bytes that were loaded.

A local landing zone gives no checksum when it lists files: the loader hashes a
new file while it streams it into COPY (fast path) or parses it (row by row),
and reads a file up front only when its key was loaded before. And the JSON
lines fast path (parsed in Python) lands exactly what the row-by-row path would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import date

import psycopg
import pytest

import include.loaders as loaders
from include.landing import LocalLanding
from include.loaders import FileRejected, load_source
from include.warehouse import apply_schema

HEADER = "receipt_no,store_code,txn_ts,txn_type,line_no,sku,quantity,unit_price,discount,payment_method,loyalty_card_no,staff_id"
DAY = date(2026, 11, 20)


def pos_rows(n: int, store: str = "TST01") -> str:
    return "".join(
        f"{store}-{i:06d},{store},2026-11-20 10:00:00,SALE,1,SKU{i},1,{i}.50,0,cash,,S1\n"
        for i in range(n)
    )


def event(i: int, **fields) -> dict:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "event_ts": "2026-11-20T01:00:00Z",
        "event_type": "page_view",
        "anonymous_id": f"a{i}",
        **fields,
    }


def jsonl(*events) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()


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


def sha256(root, key) -> str:
    return hashlib.sha256((root / key).read_bytes()).hexdigest()


@pytest.fixture
def row_by_row(monkeypatch) -> list[str]:
    """The keys of the files that were loaded row by row (the fast path gave up)."""
    keys: list[str] = []
    real = loaders._load_rows

    def spy(conn, source, load_id, file, path_values):
        keys.append(file.key)
        return real(conn, source, load_id, file, path_values)

    monkeypatch.setattr(loaders, "_load_rows", spy)
    return keys


class CountingLanding(LocalLanding):
    """A local zone that counts how often each file is opened."""

    def __init__(self, root):
        super().__init__(root)
        self.opened: dict[str, int] = {}

    def open(self, key):
        self.opened[key] = self.opened.get(key, 0) + 1
        return super().open(key)


FILES = {
    # key: (content, loaded row by row?)
    "pos/2026-11-20/A1_1.csv": ((HEADER + "\n" + pos_rows(3)).encode(), False),
    "pos/2026-11-20/A2_1.csv.gz": (gzip.compress((HEADER + "\n" + pos_rows(4)).encode()), False),
    "pos/2026-11-20/A3_1.csv": (  # a bad amount: COPY fails, row by row quarantines it
        (HEADER + "\n" + pos_rows(3) + pos_rows(1).replace("0.50", "ten")).encode(),
        True,
    ),
    "pos/2026-11-20/A4_1.csv": (  # an unknown column: row by row from the header on
        (HEADER + ",till\n" + pos_rows(2).replace("\n", ",T9\n")).encode(),
        True,
    ),
    "web/2026-11-20/01.jsonl.gz": (gzip.compress(jsonl(event(1), event(2, extra=1))), False),
    "web/2026-11-20/02.jsonl.gz": (
        gzip.compress(jsonl(event(3)) + b'{"event_id": "broken"\n' + jsonl(event(4))),
        True,
    ),
}


def test_a_new_files_checksum_is_the_sha256_of_its_bytes_on_both_paths(wh, tmp_path, row_by_row):
    for key, (data, _) in FILES.items():
        write(tmp_path, key, data)
    landing = CountingLanding(tmp_path)
    assert all(o.checksum is None for o in landing.list("pos/"))  # listing reads nothing
    assert landing.opened == {}
    for source in ("pos", "web"):
        load_source(source, warehouse_url=wh, landing=landing, business_date=DAY)

    assert sorted(row_by_row) == sorted(k for k, (_, slow) in FILES.items() if slow)
    ledger = dict(rows(wh, "select object, checksum from ops.load_ledger where status = 'loaded'"))
    assert ledger == {key: sha256(tmp_path, key) for key in FILES}
    # A new file is read once on the fast path (no separate hashing pass).
    assert {k: n for k, n in landing.opened.items() if k not in row_by_row} == {
        k: 1 for k in FILES if k not in row_by_row
    }


def test_identical_files_are_skipped_and_changed_ones_flagged_whichever_path_loaded_them(
    wh, tmp_path, row_by_row
):
    for key, (data, _) in FILES.items():
        write(tmp_path, key, data)
    landing = CountingLanding(tmp_path)
    for source in ("pos", "web"):
        load_source(source, warehouse_url=wh, landing=landing, business_date=DAY)
    before = rows(wh, "select count(*) from raw.pos_lines") + rows(
        wh, "select count(*) from raw.web_events"
    )

    for key, (data, _) in FILES.items():  # delivered again, the same bytes
        write(tmp_path, key, data)
    landing.opened.clear()
    for source in ("pos", "web"):
        again = load_source(source, warehouse_url=wh, landing=landing, business_date=DAY)
        assert not again.loaded and len(again.skipped) == sum(k.startswith(source) for k in FILES)
    assert landing.opened == dict.fromkeys(FILES, 1)  # read once, to compare

    changed = ["pos/2026-11-20/A1_1.csv", "pos/2026-11-20/A3_1.csv", "web/2026-11-20/02.jsonl.gz"]
    for key in changed:
        data = FILES[key][0]
        if key.endswith(".gz"):
            data = gzip.compress(gzip.decompress(data) + jsonl(event(9)))
        else:
            data += pos_rows(1, "ZZ01").encode()
        write(tmp_path, key, data)
    for source in ("pos", "web"):
        with pytest.raises(FileRejected, match="changed after it was loaded"):
            load_source(source, warehouse_url=wh, landing=landing, business_date=DAY)
    for source in ("pos", "web"):  # recorded once; still failing, nothing reloaded
        with pytest.raises(FileRejected, match="unresolved since load"):
            load_source(source, warehouse_url=wh, landing=landing, business_date=DAY)

    assert (
        rows(wh, "select count(*) from raw.pos_lines")
        + rows(wh, "select count(*) from raw.web_events")
        == before
    )
    assert rows(
        wh, "select object, checksum from ops.load_ledger where status = 'failed' order by 1"
    ) == [(key, sha256(tmp_path, key)) for key in sorted(changed)]


def test_a_failed_file_is_recorded_with_the_sha256_of_its_bytes(wh, tmp_path):
    key = "pos/2026-11-20/TST01_1.csv.gz"
    write(tmp_path, key, gzip.compress((HEADER + "\n" + pos_rows(2000)).encode())[:-100])
    with pytest.raises(FileRejected, match=key):
        load_source("pos", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
    assert rows(wh, "select status, checksum from ops.load_ledger") == [
        ("failed", sha256(tmp_path, key))
    ]


STORES = "store_code,store_name,district,region,opened_on,closed_on\n"


class ChangingLanding(LocalLanding):
    """A zone where a file changes between the loader's reads of it."""

    def __init__(self, root, versions: list[bytes]):
        super().__init__(root)
        self.versions = versions

    def open(self, key):
        return io.BytesIO(self.versions.pop(0) if len(self.versions) > 1 else self.versions[0])


def test_a_store_master_that_changes_while_it_is_loaded_is_not_loaded(wh, tmp_path):
    v1 = (STORES + "TST01,TST,Yau Tsim Mong,Kowloon,2020-01-01,\n").encode()
    v2 = v1.replace(b"2020-01-01,", b"2020-01-01,2026-12-31")
    v3 = v1.replace(b"2020-01-01,", b"2020-01-01,2027-01-31")
    write(tmp_path, "reference/stores.csv", v1)
    load_source("stores", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)

    # Hashed up front as v2 (a key loaded before is compared first), then read as v3.
    with pytest.raises(FileRejected, match="changed while it was loaded"):
        load_source(
            "stores",
            warehouse_url=wh,
            landing=ChangingLanding(tmp_path, [v2, v3]),
            business_date=DAY,
        )
    assert rows(wh, "select closed_on from raw.stores") == [(None,)]

    write(tmp_path, "reference/stores.csv", v3)  # settled: the next run loads it
    load_source("stores", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=DAY)
    assert rows(wh, "select closed_on::text from raw.stores order by _load_id") == [
        (None,),
        ("2027-01-31",),
    ]
    assert rows(
        wh, "select status, checksum from ops.load_ledger where status = 'loaded' order by load_id"
    ) == [
        ("loaded", hashlib.sha256(v1).hexdigest()),
        ("loaded", hashlib.sha256(v3).hexdigest()),
    ]


# -- the JSON lines fast path against the row-by-row path ---------------------------------
# Each case is one web file: its lines, and whether the fast path may load it itself.
JSON_CASES = {
    "00": ([json.dumps(event(1, referrer="", customer_id=7, sku=None))], True),
    "01": (  # BOM, CRLF, blank and white-space lines, leading spaces, an unknown field
        [
            "\ufeff" + json.dumps(event(1)) + "\r",
            "",
            "   \t",
            "  " + json.dumps(event(2, consent_mode={"ads": False})) + "  \r",
            json.dumps(event(3, event_id=event(3)["event_id"].upper())),
        ],
        True,
    ),
    "02": ([json.dumps(event(1, event_ts="2026-11-20T09:00:00+0800"))], True),
    "03": ([json.dumps(event(1, customer_id="8"))], True),
    "04": ([json.dumps(event(1)), json.dumps(event(2, page_url=True))], False),
    "05": ([json.dumps(event(1, customer_id=7.5))], False),
    "06": ([json.dumps(event(1, referrer={"a": 1})), json.dumps(event(2))], False),
    "07": ([json.dumps(event(1, event_ts="2026-11-20 01:00:00"))], False),
    "08": ([json.dumps(event(1, event_type=""))], False),
    "09": ([json.dumps({k: v for k, v in event(1).items() if k != "event_id"})], False),
    "10": ([json.dumps(event(1)), "[1, 2]", "null", json.dumps(event(2))], False),
    "11": ([json.dumps(event(1)) + "\r\r", json.dumps(event(2))], False),
    "12": ([json.dumps(event(1, customer_id="x"))], False),
    "13": ([json.dumps(event(1)) + " x", json.dumps(event(2))], False),
    "14": ([json.dumps(event(1, event_ts=20261120))], False),
}
COMPLAINTS = {
    "2026-11-19": [
        {
            "ticket_id": "CS-1",
            "created_at": "2026-11-19T01:00:00Z",
            "updated_at": "2026-11-19T02:00:00+08:00",
            "status": "new",
            "customer": {"email": "a@x.com", "phone": ""},
            "satisfaction_score": 4,
            "sentiment": "calm",
        },
        {
            "ticket_id": "CS-2",
            "created_at": "2026-11-19T01:00:00Z",
            "updated_at": "2026-11-19T02:00:00Z",
            "status": "new",
            "customer": "not an object",
        },
    ],
    "2026-11-20": [
        {
            "ticket_id": "CS-3",
            "created_at": "2026-11-20T01:00:00Z",
            "updated_at": "2026-11-20T02:00:00Z",
            "status": "new",
            "customer": {"email": ["not", "text"]},
        }
    ],
}


def test_json_fast_path_lands_what_row_by_row_lands(fresh_db_url, tmp_path, monkeypatch):
    for hour, (lines, _) in JSON_CASES.items():
        write(tmp_path, f"web/2026-11-20/{hour}.jsonl.gz", gzip.compress("\n".join(lines).encode()))
    for day, tickets in COMPLAINTS.items():
        write(tmp_path, f"complaints/{day}.jsonl", jsonl(*tickets))

    tables = {
        "raw.web_events": "select (to_jsonb(r) - '_load_id')::text from raw.web_events r order by 1",
        "raw.complaint_tickets": "select (to_jsonb(r) - '_load_id')::text from raw.complaint_tickets r order by 1",
        "quarantine": "select object, line_no, field, reason, raw_content from quarantine.rejected_rows order by 1, 2",
        "ledger": "select object, checksum, rows_read, rows_loaded, rows_quarantined from ops.load_ledger order by 1",
    }
    results, slow = {}, []
    for mode in ("fast", "rows"):
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"create database {mode}_db")
        url = fresh_db_url.rsplit("/", 1)[0] + f"/{mode}_db"
        apply_schema(url)
        monkeypatch.undo()
        if mode == "rows":
            monkeypatch.setattr(loaders, "_copy_fast", lambda *a, **k: None)
            monkeypatch.setattr(loaders, "SMALL_FILE_BYTES", -1)  # no batches
        else:
            real = loaders._load_rows

            def spy(conn, source, load_id, file, path_values, real=real):
                slow.append(file.key)
                return real(conn, source, load_id, file, path_values)

            monkeypatch.setattr(loaders, "_load_rows", spy)
        for source in ("web", "complaints"):
            load_source(
                source, warehouse_url=url, landing=LocalLanding(tmp_path), business_date=DAY
            )
        results[mode] = {name: rows(url, query) for name, query in tables.items()}
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"drop database {mode}_db with (force)")

    for name in tables:
        fast, by_row = results["fast"][name], results["rows"][name]
        assert fast == by_row, "\n".join(
            [name, *map(str, fast), "-- row by row:", *map(str, by_row)]
        )
    assert sorted(slow) == sorted(
        [f"web/2026-11-20/{hour}.jsonl.gz" for hour, (_, fast) in JSON_CASES.items() if not fast]
        + ["complaints/2026-11-20.jsonl"]
    )
    web = results["fast"]["raw.web_events"]
    assert any('"referrer": null' in r[0] and '"customer_id": 7' in r[0] for r in web)
    assert any('"extra": {"consent_mode": {"ads": false}}' in r[0] for r in web)
