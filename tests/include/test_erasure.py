"""An erasure request carried out against a real dbt build (include/erasure.py): the
person is gone from raw, pii, the marts and the incremental facts, the
de-identified sales stay, the register says so, and a re-sent file does not bring
them back (the suppression list)."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from include.erasure import condition_args, execute
from include.warehouse import apply_schema
from tests.dbt_project.test_dbt_build import FIXTURE_SQL, apply_sql, run_dbt

NIGHT = date(2026, 11, 20)  # the sample's business day
ALICE_EMAIL = "alice.chan@example.com"
ERASE_ALICE = """
insert into raw.privacy_requests
    (request_id, received_at, request_type, email, phone, loyalty_card_no, _load_id, _file, _line)
values ('PR-0009', '2026-11-19 07:00+00', 'erasure', 'Alice.Chan@example.com', null, null,
        22, 'privacy/2026-11-19.csv', 2)
"""
# The loyalty system re-sends Alice's card, and the shop a new version of her account.
RESENT = """
insert into raw.loyalty_members
    (card_no, full_name, phone, email, district, tier, joined_on, marketing_opt_in,
     updated_at, _load_id, _file, _line)
values ('1000000001', 'Alice Chan', '98765432', 'alice.chan@example.com', 'Wan Chai', 'gold',
        '2025-12-01', false, '2025-12-01 12:00:00', 30, 'loyalty/2025-12-01.csv', 2);
insert into raw.shop_customers
    (customer_id, email, phone, full_name, district, marketing_opt_in, created_at, updated_at,
     _load_id)
values (1001, 'Alice.Chan@Example.com', '+852 9123 4567', 'Alice Chan', 'Wan Chai', true,
        '2026-01-05 10:00+08', '2026-11-20 09:00+08', 31);
insert into quarantine.rejected_rows (load_id, source, object, line_no, field, reason, raw_content)
values (30, 'loyalty', 'loyalty/2025-12-01.csv', 3, 'joined_on', 'not a date',
        '1000000001,Alice Chan,98765432,alice.chan@example.com,Wan Chai,gold,01/12/2025'),
       (32, 'pos', 'pos/2026-11-20/TST01_2.csv', 4, 'quantity', 'not a number',
        'R9,TST01,2026-11-20 10:00:00,SALE,1,SKU1,two,5.00,0,cash,1000000009,S1')
"""


def findings(conn) -> list[tuple]:
    return conn.execute(
        "select relation, rows_found from ops.erased_findings(%s::jsonb, %s, %s, %s, %s)"
        " order by 1",
        condition_args(),
    ).fetchall()


def sales(conn) -> tuple:
    return conn.execute(
        "select count(*), sum(net_amount), count(customer_key) from marts.fct_sales"
    ).fetchone()


@pytest.fixture(scope="module")
def night(module_make_database, tmp_path_factory):
    url = module_make_database("t_erasure")
    work = tmp_path_factory.mktemp("erasure")
    apply_schema(url)
    apply_sql(url, FIXTURE_SQL)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ERASE_ALICE)
    run_dbt(["build"], url, work / "first")
    with psycopg.connect(url) as conn:
        (alice,) = conn.execute(
            "select distinct customer_key from pii.pii_customer where email = %s", (ALICE_EMAIL,)
        ).fetchone()
        before = {
            "sales": sales(conn),
            "alice_sales": conn.execute(
                "select count(*) from marts.fct_sales where customer_key = %s", (alice,)
            ).fetchone()[0],
        }
    added, actions = execute(url, NIGHT, run_id="night-erasure")
    run_dbt(["build"], url, work / "second")
    return {
        "url": url,
        "work": work,
        "alice": alice,
        "before": before,
        "added": added,
        "actions": {a.dataset: a for a in actions},
    }


def test_the_erased_person_is_gone_everywhere_and_their_sales_stay(night):
    assert night["before"]["alice_sales"] > 0  # the sample gives Alice sales to keep
    # every record of hers: her shop account, her loyalty card, her cookie
    assert night["added"] >= 3
    actions = night["actions"]
    assert actions["raw.shop_customers"].action == "delete"
    assert actions["raw.loyalty_members"].action == "delete"
    assert actions["raw.pos_lines"].columns == ("loyalty_card_no",)
    assert actions["marts.fct_sales"].action == "empty"  # the incremental facts, before dbt
    with psycopg.connect(night["url"]) as conn:
        assert findings(conn) == []
        assert conn.execute(
            "select count(*) from pii.pii_customer where email = %s or %s = any(all_emails)",
            (ALICE_EMAIL, ALICE_EMAIL),
        ).fetchone() == (0,)
        assert conn.execute(
            "select count(*) from raw.shop_customers where customer_id = 1001"
        ).fetchone() == (0,)
        for table in ("marts.dim_customer", "marts.customer_360", "marts.fct_sales"):
            assert conn.execute(
                f"select count(*) from {table} where customer_key = %s",  # noqa: S608
                (night["alice"],),
            ).fetchone() == (0,), table
        # the business keeps its books: every sale is still there, only not hers any more
        count, net, keyed = sales(conn)
        before_count, before_net, before_keyed = night["before"]["sales"]
        assert (count, net) == (before_count, before_net)
        assert keyed == before_keyed - night["before"]["alice_sales"]
        # the register says it was carried out, and whom it erased
        assert conn.execute(
            "select match_status, erased_on, customer_keys from marts.rpt_privacy_requests"
            " where request_id = 'PR-0009'"
        ).fetchone() == ("erased", NIGHT, night["alice"])
        audited = conn.execute(
            "select count(distinct dataset) from ops.erasure_actions where run_id = 'night-erasure'"
        ).fetchone()[0]
        assert audited == len(actions)
        # the suppression list keeps no contact details, only her source records
        held = conn.execute("select identity_id from pii.erased_identities order by 1").fetchall()
        assert ("shop:1001",) in held and ("loyalty:1000000001",) in held


def test_a_re_sent_record_is_found_and_erased_again_and_a_rerun_does_nothing(night):
    url = night["url"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RESENT)
        found = dict(findings(conn))
        # her rejected line, held for an operator, names her card: its content goes
        assert found == {
            "quarantine.rejected_rows": 1,
            "raw.loyalty_members": 1,
            "raw.shop_customers": 1,
        }
    added, actions = execute(url, NIGHT, run_id="night-erasure-again")
    assert added == 0
    assert sorted((a.dataset, a.rows) for a in actions) == [
        ("quarantine.rejected_rows", 1),
        ("raw.loyalty_members", 1),
        ("raw.shop_customers", 1),
    ]
    with psycopg.connect(url) as conn:
        # the reason stays (the operator still sees why), someone else's line is untouched
        assert conn.execute(
            "select source, reason, raw_content is null from quarantine.rejected_rows"
            " order by load_id"
        ).fetchall() == [("loyalty", "not a date", True), ("pos", "not a number", False)]
    run_dbt(["build"], url, night["work"] / "third")
    with psycopg.connect(url) as conn:
        assert findings(conn) == []
        assert conn.execute(
            "select count(*) from marts.dim_customer where customer_key = %s", (night["alice"],)
        ).fetchone() == (0,)
    assert execute(url, NIGHT, run_id="night-erasure-thrice") == (0, [])


def test_an_access_request_gets_its_person_s_data_package(night, tmp_path, monkeypatch, capsys):
    import json
    import stat

    from include import cli

    monkeypatch.setenv("WAREHOUSE_URL", night["url"])
    monkeypatch.setenv("SHOP_DB_URL", night["url"])
    # PR-0003: an access request by Grace's email (shop account 1007)
    assert cli.main(["privacy", "access-report", "PR-0003", "--out", str(tmp_path)]) == 0
    path = tmp_path / "PR-0003.json"
    assert f"{path}" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    package = json.loads(path.read_text())
    assert package["source_records"] == ["shop:1007"]
    assert [r["email"] for r in package["tables"]["raw.shop_customers"]] == ["grace@example.com"]
    assert [r["email"] for r in package["tables"]["pii.pii_customer"]] == ["grace@example.com"]
    (key,) = package["customer_keys"]
    assert [r["customer_key"] for r in package["tables"]["marts.dim_customer"]] == [key]
    # nobody else's data: no other account, card or contact is in it
    text = path.read_text()
    assert "alice" not in text.lower() and "1000000002" not in text and "bob" not in text

    # a request that matched nobody has no package, and says so
    assert cli.main(["privacy", "access-report", "PR-0004", "--out", str(tmp_path)]) == 2
    assert "matched nobody" in capsys.readouterr().err
    assert not (tmp_path / "PR-0004.json").exists()
