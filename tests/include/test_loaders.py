"""Landing files into raw: conservation, quarantine, exactly once."""

from __future__ import annotations

import gzip
import json
from datetime import date

import psycopg
import pytest

from include import cli
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
    assert [(r[0], r[1]) for r in rejected] == [(4, "quantity"), (5, "txn_ts")]
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


def test_copy_fast_path_and_row_by_row_path_land_identical_rows(
    fresh_db_url, tmp_path, monkeypatch
):
    """Clean files take the COPY fast path; the result must equal the row-by-row path's."""
    import include.loaders as loaders

    pos = "\r\n".join(
        [
            '"' + HEADER.replace(",", '","') + '"',
            '"TST01-1","TST01","2026-11-20 10:00:00","SALE","1","SKU1","2","10.505","0","cash","","S1, front"',
            '"TST01-1","TST01","2026-11-20 10:00:00","VOID","2","SKU2","1","5.00","0.50","cash","0012345678","multi\r\nline"',
            '"TST01-2","TST01","2026-11-20 11:00:00","RETURN","1","SKU1","-1","10.50","","visa","",""',
        ]
    )
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", b"\xef\xbb\xbf" + pos.encode() + b"\r\n")
    events = [
        {
            "event_id": "3F1C5A52-6A0E-4A51-9D4C-1F6F1C1A0001",
            "event_ts": "2026-11-20T01:00:00Z",
            "event_type": "page_view",
            "anonymous_id": "a1",
            "customer_id": None,
            "consent_mode": "granted",
            "page_url": 'https://shop.example/p?q="x"\\y',
        },
        {
            "event_id": "3f1c5a52-6a0e-4a51-9d4c-1f6f1c1a0002",
            "event_ts": "2026-11-20T09:00:01+08:00",
            "event_type": "login",
            "anonymous_id": "a1",
            "customer_id": 7,
            "search_query": "",
        },
    ]
    write(
        tmp_path,
        "web/2026-11-20/01.jsonl.gz",
        gzip.compress(("\n".join(json.dumps(e) for e in events) + "\n\n").encode()),
    )
    complaint = {
        "ticket_id": "CS-1",
        "created_at": "2026-11-20T01:00:00Z",
        "updated_at": "2026-11-20T02:00:00Z",
        "status": "new",
        "customer": {"email": "A@x.com", "phone": None},
        "satisfaction_score": 4,
    }
    write(tmp_path, "complaints/2026-11-20.jsonl", (json.dumps(complaint) + "\n").encode())

    tables = {
        "pos": "raw.pos_lines",
        "web": "raw.web_events",
        "complaints": "raw.complaint_tickets",
    }
    results = {}
    for mode in ("fast", "rows"):
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"create database {mode}_db")
        url = fresh_db_url.rsplit("/", 1)[0] + f"/{mode}_db"
        apply_schema(url)
        if mode == "rows":
            monkeypatch.undo()
            monkeypatch.setattr(loaders, "_copy_fast", lambda *a, **k: None)
            monkeypatch.setattr(loaders, "SMALL_FILE_BYTES", -1)  # no batches
        else:  # clean files must never need the row-by-row path

            def no_fallback(*args, **kwargs):
                raise AssertionError(f"fell back to row by row for {args[3]}")

            monkeypatch.setattr(loaders, "_load_rows", no_fallback)
        for source in tables:
            load_source(
                source,
                warehouse_url=url,
                landing=LocalLanding(tmp_path),
                business_date=date(2026, 11, 20),
            )
        results[mode] = {
            t: counts(url, f"select (to_jsonb(r) - '_load_id')::text from {t} r order by 1")
            for t in tables.values()
        }
        results[mode]["quarantine"] = counts(url, "select count(*) from quarantine.rejected_rows")
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute(f"drop database {mode}_db with (force)")
    for key in results["fast"]:
        fast, rows = results["fast"][key], results["rows"][key]
        assert fast == rows, "\n".join([key, *map(str, fast), "-- row by row:", *map(str, rows)])
    assert (
        len(results["fast"]["raw.pos_lines"]) == 3 and len(results["fast"]["raw.web_events"]) == 2
    )
    assert results["fast"]["quarantine"] == [(0,)]


STORES = "store_code,store_name,district,region,opened_on,closed_on\n"


def test_changed_file_under_a_loaded_key_fails_every_run_until_resolved(wh, tmp_path, monkeypatch):
    row = "R-1,TST01,2026-11-20 10:00:00,SALE,1,SKU1,1,1.00,0,cash,,S1\n"
    write(tmp_path, "pos/2026-11-20/TST01_1.csv", (HEADER + "\n" + row).encode())
    landing = LocalLanding(tmp_path)
    load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    write(
        tmp_path,
        "pos/2026-11-20/TST01_1.csv",
        (HEADER + "\n" + row + row.replace("R-1", "R-2")).encode(),
    )
    with pytest.raises(FileRejected, match="changed after it was loaded"):
        load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    # Recorded once, but a retry does not turn the task green: it fails until resolved.
    with pytest.raises(FileRejected, match=r"unresolved since load \d+; once dealt with"):
        load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    assert counts(wh, "select receipt_no from raw.pos_lines") == [("R-1",)]
    assert counts(wh, "select status, count(*) from ops.load_ledger group by 1 order by 1") == [
        ("failed", 1),
        ("loaded", 1),
    ]
    (failed,) = counts(wh, "select load_id from ops.load_ledger where status = 'failed'")
    monkeypatch.setenv("WAREHOUSE_URL", wh)
    monkeypatch.setenv("SHOP_DB_URL", wh)
    assert cli.main(["ledger", "resolve", str(failed[0]), "--note", "re-sent as TST01_2"]) == 0
    report = load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    assert not report.failed and not report.loaded
    assert counts(wh, "select resolution from ops.load_ledger where status = 'failed'") == [
        ("re-sent as TST01_2",)
    ]


def test_store_master_is_replaced_whole_with_history_kept(wh, tmp_path):
    landing = LocalLanding(tmp_path)
    write(
        tmp_path,
        "reference/stores.csv",
        (STORES + "TST01,TST,Yau Tsim Mong,Kowloon,2020-01-01,\n").encode(),
    )
    load_source("stores", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    write(
        tmp_path,
        "reference/stores.csv",
        (STORES + "TST01,TST,Yau Tsim Mong,Kowloon,2020-01-01,2026-12-31\n").encode(),
    )
    load_source("stores", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21))
    assert counts(wh, "select closed_on::text from raw.stores order by _load_id") == [
        (None,),
        ("2026-12-31",),
    ]
    # Reverted to the first version (A, B, A): loaded again, so the latest load is A.
    write(
        tmp_path,
        "reference/stores.csv",
        (STORES + "TST01,TST,Yau Tsim Mong,Kowloon,2020-01-01,\n").encode(),
    )
    again = load_source(
        "stores", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 22)
    )
    assert len(again.loaded) == 1
    latest = "select closed_on::text from raw.stores where _load_id = (select max(_load_id) from raw.stores)"
    assert counts(wh, latest) == [(None,)]
    # The same version sent again is the current one: skipped.
    same = load_source(
        "stores", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 23)
    )
    assert (same.loaded, same.skipped) == ([], ["reference/stores.csv"])
    assert counts(wh, "select count(distinct _load_id) from raw.stores") == [(3,)]


def test_a_store_without_its_pos_file_is_a_recorded_gap_until_the_file_arrives(wh, tmp_path):
    landing = LocalLanding(tmp_path)
    write(
        tmp_path,
        "reference/stores.csv",
        (
            STORES
            + "TST01,A,Yau Tsim Mong,Kowloon,2020-01-01,\nMK01,B,Yau Tsim Mong,Kowloon,2020-01-01,\n"
            "OLD01,C,Wan Chai,HK Island,2010-01-01,2025-01-01\n"
        ).encode(),
    )
    load_source("stores", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    write(
        tmp_path, "pos/2026-11-20/TST01_1.csv", (HEADER + "\n").encode()
    )  # header only: not a gap
    load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    assert counts(
        wh, "select business_date::text, expected, resolved_at is null from ops.load_gaps"
    ) == [("2026-11-20", "MK01", True)]
    write(
        tmp_path, "pos/2026-11-20/MK01_1.csv.gz", gzip.compress((HEADER + "\n").encode())
    )  # arrives late
    load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21))
    assert counts(
        wh,
        "select expected, resolved_at is null from ops.load_gaps where business_date = '2026-11-20'",
    ) == [("MK01", False)]
    assert counts(
        wh, "select expected from ops.load_gaps where business_date = '2026-11-21' order by 1"
    ) == [("MK01",), ("TST01",)]


def test_late_files_are_caught_up_and_old_history_is_not_relisted(wh, tmp_path):
    landing = LocalLanding(tmp_path)
    header = (HEADER + "\n").encode()
    write(tmp_path, "pos/2026-11-01/AA01_1.csv", header)
    write(tmp_path, "pos/2026-11-20/BB01_1.csv", header)
    first = load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    assert len(first.loaded) == 2  # a first run takes the whole backlog

    write(tmp_path, "pos/2026-11-15/CC01_1.csv", header)  # 6 days late: caught up
    write(tmp_path, "pos/2026-10-01/DD01_1.csv", header)  # 51 days late: not listed nightly
    nightly = load_source(
        "pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21)
    )
    assert [o.object for o in nightly.loaded] == ["pos/2026-11-15/CC01_1.csv"]
    assert "pos/2026-11-01/AA01_1.csv" not in nightly.skipped  # not even listed

    backfill = load_source(
        "pos", warehouse_url=wh, landing=landing, business_date=date(2026, 10, 1)
    )
    assert [o.object for o in backfill.loaded] == ["pos/2026-10-01/DD01_1.csv"]
    assert counts(wh, "select count(*) from ops.late_files") == [(0,)]


def test_a_file_later_than_the_late_window_is_found_by_the_weekly_sweep(wh, tmp_path):
    """Every CRM_LATE_SWEEP_DAYS (7) the whole history is listed: a file 57 days late is
    loaded then and recorded as late (the raw gate warns); the nights between do not list
    it, and a re-run of the sweep night loads nothing twice."""
    landing = LocalLanding(tmp_path)
    header = (HEADER + "\n").encode()
    row = "R-1,TST01,2026-10-01 10:00:00,SALE,1,SKU1,1,1.00,0,cash,,S1\n"
    write(tmp_path, "pos/2026-11-20/BB01_1.csv", header)
    load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))

    write(tmp_path, "pos/2026-10-01/TST01_1.csv", (HEADER + "\n" + row).encode())
    for day in range(21, 27):  # the first run listed everything: a sweep, so none is due
        night = load_source(
            "pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, day)
        )
        assert night.loaded == []

    swept = load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 27))
    assert [(o.object, o.rows_loaded) for o in swept.loaded] == [("pos/2026-10-01/TST01_1.csv", 1)]
    assert counts(
        wh,
        "select late.object, ledger.business_date::text, late.found_for::text"
        " from ops.late_files late join ops.load_ledger ledger using (load_id)",
    ) == [("pos/2026-10-01/TST01_1.csv", "2026-10-01", "2026-11-27")]
    assert counts(
        wh, "select business_date::text, files_found_late from ops.landing_sweeps order by 1"
    ) == [("2026-11-20", 0), ("2026-11-27", 1)]

    again = load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 27))
    assert again.loaded == []
    assert counts(wh, "select count(*) from raw.pos_lines") == [(1,)]


def test_a_file_outside_any_date_folder_is_rejected_by_the_sweep(wh, tmp_path):
    """No nightly listing sees pos/2026-02-30/ or pos/misc/: the sweep puts them in the
    ledger as failed, and the good files of the night still load."""
    landing = LocalLanding(tmp_path)
    header = (HEADER + "\n").encode()
    write(tmp_path, "pos/2026-11-19/AA01_1.csv", header)
    load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 19))
    write(tmp_path, "pos/2026-02-30/TST01_1.csv", header)
    write(tmp_path, "pos/misc/TST01_1.csv", header)
    write(tmp_path, "pos/2026-11-27/BB01_1.csv", header)

    with pytest.raises(FileRejected, match="2 pos file"):
        load_source("pos", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 27))

    assert counts(wh, "select object, status from ops.load_ledger order by object") == [
        ("pos/2026-02-30/TST01_1.csv", "failed"),
        ("pos/2026-11-19/AA01_1.csv", "loaded"),
        ("pos/2026-11-27/BB01_1.csv", "loaded"),
        ("pos/misc/TST01_1.csv", "failed"),
    ]


LOYALTY = "card_no,full_name,phone,email,district,tier,joined_on,marketing_opt_in,updated_at\n"


def member(card: str) -> str:
    return f"{card},Chan Tai Man,91234567,,Sha Tin,gold,2024-01-05,Y,2026-11-20 09:00:00\n"


def test_every_landing_file_ends_in_the_ledger_and_one_bad_name_stops_nothing(
    wh, tmp_path, monkeypatch
):
    """Names off the contract and impossible dates are failed loads, every run until
    resolved; temporary dot-names wait; a day's correction loads; good files still load."""
    row = "R-1,TST01,2026-11-20 10:00:00,SALE,1,SKU1,1,1.00,0,cash,,S1\n"
    write(tmp_path, "pos/2026-11-20/TST01-1.csv", (HEADER + "\n" + row).encode())  # a dash
    write(tmp_path, "pos/2026-11-20/TST02_1.csv", (HEADER + "\n" + row).encode())
    write(tmp_path, "pos/2026-11-20/.TST03_1.csv", (HEADER + "\n" + row).encode())  # in flight
    write(tmp_path, "loyalty/2026-02-30.csv", (LOYALTY + member("C1")).encode())
    write(tmp_path, "loyalty/2026-11-20.csv", (LOYALTY + member("C2")).encode())
    write(tmp_path, "loyalty/2026-11-20_2.csv", (LOYALTY + member("C3")).encode())
    landing = LocalLanding(tmp_path)
    day = date(2026, 11, 20)
    for _attempt in range(2):  # a retry does not turn either source green
        for source, bad in [("pos", "TST01-1.csv"), ("loyalty", "2026-02-30.csv")]:
            with pytest.raises(FileRejected, match=bad):
                load_source(source, warehouse_url=wh, landing=landing, business_date=day)
    failures = counts(
        wh, "select object, message from ops.load_ledger where status = 'failed' order by 1"
    )
    assert [key for key, _ in failures] == ["loyalty/2026-02-30.csv", "pos/2026-11-20/TST01-1.csv"]
    assert (
        "impossible date" in failures[0][1] and "off the pos file name contract" in failures[1][1]
    )
    assert counts(wh, "select object from ops.load_ledger where status = 'loaded' order by 1") == [
        ("loyalty/2026-11-20.csv",),
        ("loyalty/2026-11-20_2.csv",),
        ("pos/2026-11-20/TST02_1.csv",),
    ]
    assert counts(wh, "select card_no from raw.loyalty_members order by 1") == [("C2",), ("C3",)]

    monkeypatch.setenv("WAREHOUSE_URL", wh)
    monkeypatch.setenv("SHOP_DB_URL", wh)
    assert cli.main(["ledger", "failures"]) == 0
    for load_id in counts(wh, "select load_id from ops.load_ledger where status = 'failed'"):
        assert (
            cli.main(["ledger", "resolve", str(load_id[0]), "--note", "asked for a re-send"]) == 0
        )
    assert cli.main(["ledger", "resolve", "999999", "--note", "x"]) == 2  # not a failed load
    for source in ("pos", "loyalty"):
        report = load_source(source, warehouse_url=wh, landing=landing, business_date=day)
        assert not report.failed


def test_a_daily_file_that_did_not_come_is_a_recorded_gap_until_it_or_its_correction_arrives(
    wh, tmp_path
):
    """Loyalty, complaints and privacy send one file a day, empty when nothing happened:
    a day without one is a gap the raw gate reports, resolved when any export of that
    day (the plain name or a correction) is loaded later."""
    landing = LocalLanding(tmp_path)
    write(tmp_path, "loyalty/2026-11-20.csv", LOYALTY.encode())  # empty: still sent
    load_source("loyalty", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    load_source("loyalty", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21))
    load_source("privacy", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21))
    gaps = (
        "select source, business_date::text, resolved_at is null from ops.load_gaps order by 1, 2"
    )
    assert counts(wh, gaps) == [("loyalty", "2026-11-21", True), ("privacy", "2026-11-21", True)]

    write(tmp_path, "loyalty/2026-11-21_2.csv", (LOYALTY + member("LC1")).encode())  # late
    load_source("loyalty", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 22))
    assert counts(wh, gaps) == [
        ("loyalty", "2026-11-21", False),
        ("loyalty", "2026-11-22", True),
        ("privacy", "2026-11-21", True),
    ]


def test_a_web_hour_without_its_file_is_a_recorded_gap_until_it_arrives(wh, tmp_path):
    """The tracker sends one file per UTC hour, empty when nobody visited: the Hong Kong
    day 2026-11-20 is the hours 2026-11-19 16:00 to 2026-11-20 15:00 UTC."""
    landing = LocalLanding(tmp_path)
    hours = [f"2026-11-19/{h:02d}" for h in range(16, 24)] + [
        f"2026-11-20/{h:02d}" for h in range(16)
    ]
    for hour in hours:
        if hour != "2026-11-20/03":  # the tracker missed one hour
            write(tmp_path, f"web/{hour}.jsonl.gz", gzip.compress(b""))
    write(tmp_path, "web/2026-11-20/16.jsonl.gz", gzip.compress(b""))  # the next HK day
    load_source("web", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 20))
    gaps = "select business_date::text, expected, resolved_at is null from ops.load_gaps"
    assert counts(wh, gaps) == [("2026-11-20", "web/2026-11-20/03", True)]

    write(tmp_path, "web/2026-11-20/03.jsonl.gz", gzip.compress(b""))  # arrives late
    load_source("web", warehouse_url=wh, landing=landing, business_date=date(2026, 11, 21))
    assert counts(wh, gaps + " where business_date = '2026-11-20'") == [
        ("2026-11-20", "web/2026-11-20/03", False)
    ]
    # the night of Nov 21 has only its first hour (16:00 UTC on Nov 20) so far
    assert (
        len(counts(wh, gaps + " where business_date = '2026-11-21' and resolved_at is null")) == 23
    )
