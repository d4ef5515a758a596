"""Landing files into raw: conservation, quarantine, exactly once."""

from __future__ import annotations

import gzip
import json
from datetime import date

import psycopg
import pytest

from include.landing import LocalLanding
from include.loaders import FileRejected, load_source
from include.warehouse import apply_schema

HEADER = "receipt_no,store_code,txn_ts,txn_type,line_no,sku,quantity,unit_price,discount,payment_method,loyalty_card_no,staff_id"


@pytest.fixture
def wh(fresh_db_url):
    apply_schema(fresh_db_url)
    return fresh_db_url


def write(root, key, data: bytes):
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def counts(url, sql):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_pos_bom_crlf_gzip_quoted_newline_and_bad_rows(wh, tmp_path):
    good = (
        "\r\n".join(
            [
                HEADER,
                'TST01-20261120-000001,TST01,2026-11-20 10:00:00,SALE,1,SKU1,2,10.50,0,cash,1234567890,"S1, front"',
                'TST01-20261120-000001,TST01,2026-11-20 10:00:00,SALE,2,SKU2,1,5.00,0.50,cash,,"multi\r\nline"',
                "TST01-20261120-000002,TST01,2026-11-20 11:00:00,RETURN,1,SKU1,-1,10.50,0,visa,,S2",
                "TST01-20261120-000003,TST01,2026-11-20 12:00:00,SALE,1,SKU3,one,9.00,0,visa,,S2",
                "TST01-20261120-000004,TST01,2026-11-31 12:00:00,SALE,1,SKU3,1,9.00,0,visa,,S2",
            ]
        )
        + "\r\n"
    )
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", b"\xef\xbb\xbf" + good.encode())
    write(tmp_path, "pos/2026-11-20/MK01_1.csv.gz", gzip.compress((HEADER + "\n").encode()))
    write(tmp_path, "pos/2026-11-21/MK01_1.csv", (HEADER + "\n").encode())  # after the run date

    report = load_source(
        "pos", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=date(2026, 11, 20)
    )

    assert len(report.loaded) == 2 and not report.failed
    assert counts(wh, "select count(*) from raw.pos_lines") == [(3,)]
    assert counts(wh, "select staff_id from raw.pos_lines where line_no = 2") == [
        ("multi\r\nline",)
    ]
    rejected = counts(
        wh, "select line_no, field, reason from quarantine.rejected_rows order by line_no"
    )
    assert [(r[0], r[1]) for r in rejected] == [(6, "quantity"), (7, "txn_ts")]
    ledger = counts(
        wh,
        "select object, rows_read, rows_loaded, rows_quarantined from ops.load_ledger order by object",
    )
    assert ledger == [
        ("pos/2026-11-20/MK01_1.csv.gz", 0, 0, 0),
        ("pos/2026-11-20/TST01_1.csv", 5, 3, 2),
    ]

    # Exactly once: the same files again load nothing; the next day's file loads.
    again = load_source(
        "pos", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=date(2026, 11, 21)
    )
    assert len(again.skipped) == 2 and len(again.loaded) == 1
    assert counts(wh, "select count(*) from raw.pos_lines") == [(3,)]


def test_missing_required_column_fails_file_loudly_and_is_recorded(wh, tmp_path):
    header = HEADER.replace(",sku,", ",")
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", (header + "\nx\n").encode())
    write(
        tmp_path,
        "pos/2026-11-20/TST02_1.csv",
        (
            HEADER
            + ",new_column\n"
            + "R-1,TST02,2026-11-20 10:00:00,SALE,1,SKU1,1,1.00,0,cash,,S1,whatever\n"
        ).encode(),
    )
    with pytest.raises(FileRejected, match=r"TST01_1.csv.*missing required column\(s\) sku"):
        load_source(
            "pos",
            warehouse_url=wh,
            landing=LocalLanding(tmp_path),
            business_date=date(2026, 11, 20),
        )
    # The good file with an extra column still loaded; the bad one is a failed ledger entry.
    assert counts(wh, "select count(*) from raw.pos_lines") == [(1,)]
    assert counts(wh, "select object, status from ops.load_ledger order by object") == [
        ("pos/2026-11-20/TST01_1.csv", "failed"),
        ("pos/2026-11-20/TST02_1.csv", "loaded"),
    ]


def test_web_jsonl_keeps_unknown_fields_and_quarantines_broken_json(wh, tmp_path):
    events = [
        {
            "event_id": "3f1c5a52-6a0e-4a51-9d4c-1f6f1c1a0001",
            "event_ts": "2026-11-20T01:00:00Z",
            "event_type": "page_view",
            "anonymous_id": "a1",
            "consent_mode": "granted",
        },
        {
            "event_id": "3f1c5a52-6a0e-4a51-9d4c-1f6f1c1a0002",
            "event_ts": "2026-11-20T01:00:01Z",
            "event_type": "login",
            "anonymous_id": "a1",
            "customer_id": 7,
        },
    ]
    lines = [json.dumps(e) for e in events] + [
        '{"event_id": "broken"',
        json.dumps({"event_id": "nope", "event_ts": "2026-11-20T01:00:00Z", "event_type": "x"}),
    ]
    write(tmp_path, "web/2026-11-20/01.jsonl.gz", gzip.compress("\n".join(lines).encode()))
    load_source(
        "web", warehouse_url=wh, landing=LocalLanding(tmp_path), business_date=date(2026, 11, 20)
    )
    assert counts(
        wh, "select customer_id, extra->>'consent_mode' from raw.web_events order by event_ts"
    ) == [(None, "granted"), (7, None)]
    assert counts(wh, "select line_no, field from quarantine.rejected_rows order by line_no") == [
        (3, None),
        (4, "event_id"),
    ]
    assert counts(wh, "select rows_read, rows_loaded, rows_quarantined from ops.load_ledger") == [
        (4, 2, 2)
    ]


def test_truncated_gzip_fails_without_partial_rows(wh, tmp_path):
    body = gzip.compress(
        (HEADER + "\n" + "R,TST01,2026-11-20 10:00:00,SALE,1,S,1,1.00,0,cash,,S1\n" * 1000).encode()
    )
    write(tmp_path, "pos/2026-11-20/TST01_1.csv.gz", body[: len(body) // 2])
    with pytest.raises(FileRejected, match="TST01_1.csv.gz"):
        load_source(
            "pos",
            warehouse_url=wh,
            landing=LocalLanding(tmp_path),
            business_date=date(2026, 11, 20),
        )
    assert counts(wh, "select count(*) from raw.pos_lines") == [(0,)]
