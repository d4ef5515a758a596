"""The retention purge against a real warehouse: what contract/privacy.yml keeps no
longer is deleted or emptied, facts stay, a dry run only records, a re-run does
nothing, and every batch is audited (include/retention.py)."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from include.landing import LocalLanding, sha256
from include.pipeline import end_of
from include.retention import purge, purge_files, tables
from include.warehouse import apply_schema

AS_OF = date(2026, 11, 20)

OLD_AND_NEW = """
insert into raw.privacy_requests (request_id, received_at, request_type, email, _load_id, _file,
    _line) values
    ('P-OLD', '2018-01-05 10:00+08', 'opt_out_marketing', 'old@example.com', 1, 'privacy/a.csv', 2),
    ('P-NEW', '2026-11-01 10:00+08', 'opt_out_marketing', 'new@example.com', 2, 'privacy/b.csv', 2);
insert into quarantine.rejected_rows (load_id, source, object, line_no, reason, raw_content,
    quarantined_at) values
    (3, 'loyalty', 'loyalty/x.csv', 2, 'bad date', 'Alice Chan,91234567', '2026-07-01 10:00+08'),
    (4, 'loyalty', 'loyalty/y.csv', 2, 'bad date', 'Bob Lee,92345678', '2026-11-15 10:00+08');
insert into raw.web_events (event_id, event_ts, event_type, customer_id, ip, user_agent,
    _load_id, _file, _line) values
    (gen_random_uuid(), '2025-06-01 10:00+08', 'page_view', 7, '10.0.0.1', 'Mozilla', 5, 'w', 1),
    (gen_random_uuid(), '2026-11-19 10:00+08', 'page_view', 7, '10.0.0.2', 'Mozilla', 6, 'w', 1);
insert into raw.shop_customers (customer_id, email, full_name, updated_at, _load_id) values
    (1, 'a.old@example.com', 'Alice Chan', '2023-01-01 10:00+08', 7),
    (1, 'a.new@example.com', 'Alice Chan', '2024-01-01 10:00+08', 8),
    (2, 'carol@example.com', 'Carol Ho', '2023-06-01 10:00+08', 7),
    (3, 'dan.2019@example.com', 'Dan Wong', '2019-05-01 10:00+08', 7),
    (3, 'dan@example.com', 'Dan Wong', '2026-11-01 10:00+08', 8);
insert into raw.pos_lines (receipt_no, store_code, txn_ts, txn_type, line_no, sku, quantity,
    unit_price, loyalty_card_no, staff_id, _business_date, _file_store_code, _file_seq, _load_id,
    _file, _line) values
    ('R1', 'TST01', '2018-03-01 10:00+08', 'SALE', 1, 'SKU1', 2, 5.00, '1000000001', 'S1',
     '2018-03-01', 'TST01', 1, 9, 'pos/2018-03-01/TST01_1.csv', 2),
    ('R2', 'TST01', '2026-11-20 10:00+08', 'SALE', 1, 'SKU1', 1, 5.00, '1000000001', 'S1',
     '2026-11-20', 'TST01', 1, 10, 'pos/2026-11-20/TST01_1.csv', 2);
"""


@pytest.fixture
def warehouse(fresh_db_url) -> str:
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(OLD_AND_NEW)
    return fresh_db_url


def state(url: str) -> dict[str, list]:
    with psycopg.connect(url) as conn:
        return {
            "requests": conn.execute(
                "select request_id from raw.privacy_requests order by 1"
            ).fetchall(),
            "quarantine": conn.execute(
                "select load_id, raw_content from quarantine.rejected_rows order by 1"
            ).fetchall(),
            "web": conn.execute(
                "select event_ts::date, customer_id, ip, user_agent from raw.web_events order by 1"
            ).fetchall(),
            "customers": conn.execute(
                "select customer_id, updated_at::date, email, full_name from raw.shop_customers"
                " order by 1, 2"
            ).fetchall(),
            "pos": conn.execute(
                "select receipt_no, quantity, loyalty_card_no, staff_id from raw.pos_lines"
                " order by 1"
            ).fetchall(),
        }


def audit(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select dataset, action, rows_affected, dry_run from ops.retention_actions"
            " where rows_affected > 0 order by action_id"
        ).fetchall()


def test_a_dry_run_counts_and_records_and_changes_nothing(warehouse):
    before = state(warehouse)
    steps = {s.dataset: s.rows for s in purge(warehouse, AS_OF, dry_run=True)}
    assert state(warehouse) == before
    assert {d: n for d, n in steps.items() if n} == {
        "raw.privacy_requests": 1,
        "quarantine.rejected_rows": 1,
        "raw.web_events": 1,
        "raw.shop_customers": 1,
        "raw.pos_lines": 1,
    }
    assert all(dry for *_, dry in audit(warehouse))
    assert len(audit(warehouse)) == 5


def test_the_purge_deletes_or_empties_what_is_past_retention_and_keeps_the_facts(warehouse):
    purge(warehouse, AS_OF, run_id="night-1")
    after = state(warehouse)
    # deleted after 7 years
    assert after["requests"] == [("P-NEW",)]
    # quarantined content emptied after 90 days, the record of the rejection kept
    assert after["quarantine"] == [(3, None), (4, "Bob Lee,92345678")]
    # a web event older than 400 days keeps its time and type, loses who it was
    assert after["web"] == [
        (date(2025, 6, 1), None, None, None),
        (date(2026, 11, 19), 7, "10.0.0.2", "Mozilla"),
    ]
    # only the version a newer one replaced expires: current accounts are kept however old
    assert after["customers"] == [
        (1, date(2023, 1, 1), None, None),
        (1, date(2024, 1, 1), "a.new@example.com", "Alice Chan"),
        (2, date(2023, 6, 1), "carol@example.com", "Carol Ho"),
        # replaced three weeks ago: kept two years from then, however old it is
        (3, date(2019, 5, 1), "dan.2019@example.com", "Dan Wong"),
        (3, date(2026, 11, 1), "dan@example.com", "Dan Wong"),
    ]
    # a sale older than 7 years is de-identified, its quantity stays (tax records)
    assert after["pos"] == [("R1", 2, None, None), ("R2", 1, "1000000001", "S1")]
    assert sorted(audit(warehouse)) == sorted(
        [
            ("quarantine.rejected_rows", "anonymise", 1, False),
            ("raw.pos_lines", "anonymise", 1, False),
            ("raw.privacy_requests", "delete", 1, False),
            ("raw.shop_customers", "anonymise", 1, False),
            ("raw.web_events", "anonymise", 1, False),
        ]
    )

    # the same night again: nothing left to do, nothing more recorded
    assert [s for s in purge(warehouse, AS_OF, run_id="night-1-again") if s.rows] == []
    assert state(warehouse) == after
    assert len(audit(warehouse)) == 5

    # every retention table of the policy was visited; the snapshots, not built yet on
    # a warehouse dbt never ran on, are recorded as not found (what the gate checks)
    with psycopg.connect(warehouse) as conn:
        visited = dict(
            conn.execute(
                "select dataset, bool_and(table_found) from ops.retention_actions"
                " where run_id = 'night-1' group by dataset"
            ).fetchall()
        )
    assert set(visited) == set(tables())
    assert {d for d, found in visited.items() if not found} == {
        "pii.snp_identity__person_anchors",
        "snapshots.snp_customer_attributes",
    }


def test_a_large_purge_goes_in_batches_each_audited(warehouse):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(
            "insert into raw.privacy_requests (request_id, received_at, request_type, _load_id,"
            " _file, _line) select 'P-' || n, '2017-01-01', 'erasure', 11, 'privacy/c.csv', n"
            " from generate_series(1, 5) as n"
        )
    (step,) = [
        s for s in purge(warehouse, AS_OF, batch_rows=2) if s.dataset == "raw.privacy_requests"
    ]
    assert step.rows == 6
    batches = [n for d, _, n, _ in audit(warehouse) if d == "raw.privacy_requests"]
    assert batches == [2, 2, 2]
    assert state(warehouse)["requests"] == [("P-NEW",)]


def test_crm_privacy_purge_dry_run_says_what_it_would_do(warehouse, monkeypatch, capsys):
    from include import cli

    monkeypatch.setenv("WAREHOUSE_URL", warehouse)
    monkeypatch.setenv("SHOP_DB_URL", warehouse)
    assert cli.main(["privacy", "purge", "--dry-run", "--date", AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"Retention on {AS_OF} (would change" in out
    assert "raw.privacy_requests: delete 1 row(s) older than" in out
    assert (
        "raw.web_events: empty anonymous_id, customer_id, ip, search_query, user_agent of 1" in out
    )
    assert state(warehouse)["requests"] == [("P-NEW",), ("P-OLD",)]


def _aged(path: Path, text: str, days_old: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = (end_of(AS_OF) - timedelta(days=days_old)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_files_past_retention_go_landing_files_only_once_loaded_as_they_are(warehouse, tmp_path):
    home, root = tmp_path / "home", tmp_path / "landing"
    landing = LocalLanding(root)
    files = {
        "old_log": _aged(home / "logs" / "nightly" / "2026-08-01.log", "x", 100),
        "new_log": _aged(home / "logs" / "nightly" / "2026-11-20.log", "x", 0),
        "old_model": _aged(home / "models" / "churn" / "v1" / "2025-06-02.pkl", "m", 500),
        "new_model": _aged(home / "models" / "churn" / "v1" / "2026-11-16.pkl", "m", 4),
        "old_result": _aged(home / "gx" / "uncommitted" / "validations" / "a.json", "{}", 95),
        "great_expectations_yml": _aged(home / "gx" / "great_expectations.yml", "", 300),
        "loaded": _aged(root / "pos/2026-07-01/TST01_1.csv", "receipt,card\nR1,1000000001\n", 1),
        "resent": _aged(root / "pos/2026-07-02/TST01_1.csv", "receipt\nR2 re-sent\n", 1),
        "recent": _aged(root / "pos/2026-11-19/TST01_1.csv", "receipt\nR3\n", 1),
        "failed": _aged(root / "pos/2026-07-03/TST01_1.csv", "receipt\nR4\n", 1),
        "master": _aged(root / "stores/stores.csv", "store_code\nTST01\n", 1),
    }
    ledger = [
        ("pos", "pos/2026-07-01/TST01_1.csv", sha256(landing, "pos/2026-07-01/TST01_1.csv"),
         "2026-07-01", "loaded"),
        ("pos", "pos/2026-07-02/TST01_1.csv", "sha256-of-what-was-loaded", "2026-07-02", "loaded"),
        ("pos", "pos/2026-11-19/TST01_1.csv", sha256(landing, "pos/2026-11-19/TST01_1.csv"),
         "2026-11-19", "loaded"),
        ("pos", "pos/2026-07-03/TST01_1.csv", sha256(landing, "pos/2026-07-03/TST01_1.csv"),
         "2026-07-03", "failed"),
        ("stores", "stores/stores.csv", sha256(landing, "stores/stores.csv"), "2026-06-01",
         "loaded"),
    ]  # fmt: skip
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for row in ledger:
            conn.execute(
                "insert into ops.load_ledger (source, object, checksum, business_date, status)"
                " values (%s, %s, %s, %s, %s)",
                row,
            )

    def purge_them(dry_run: bool = False) -> dict[str, int]:
        steps = purge_files(warehouse, AS_OF, home=home, landing=landing, dry_run=dry_run)
        return {s.dataset: s.rows for s in steps}

    expected = {
        "files:access_reports": 0,  # no such folder here
        "files:gx_results": 1,
        "files:landing": 1,
        "files:logs": 1,
        "files:models": 1,
    }
    assert purge_them(dry_run=True) == {**expected, "files:landing": 2}  # checked when deleting
    assert all(path.exists() for path in files.values())
    assert purge_them() == expected
    gone = {name for name, path in files.items() if not path.exists()}
    assert gone == {"old_log", "old_model", "old_result", "loaded"}
    assert not (root / "pos/2026-07-01").exists()  # no empty folder left either
    assert purge_them() == dict.fromkeys(expected, 0)  # idempotent
    with psycopg.connect(warehouse) as conn:
        assert conn.execute(
            "select dataset, sum(rows_affected) from ops.retention_actions"
            " where dataset like 'files:%%' and not dry_run group by 1 order by 1"
        ).fetchall() == [(name, n) for name, n in sorted(expected.items())]
