"""`dbt build` on a hand-made raw sample, and the outcomes a user of the marts cares about.

The sample (fixtures/raw_sample.sql) holds one case per rule: a member matched by
email in another case, one matched by phone in another format, a household phone
shared by two shop customers, a junk phone, a superseded POS export, VOID and
RETURN lines, an unknown sku, a cancelled order, a duplicated web event, two
versions of a ticket. The business day under test is 2026-11-20.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
from include import access
from include.dbt_build import dbt_env as build_env
from include.privacy import policy
from include.warehouse import apply_schema

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
FIXTURE_SQL = Path(__file__).parent / "fixtures" / "raw_sample.sql"
DBT = Path(sys.executable).parent / "dbt"
SECRET = "pytest-customer-key-secret"

EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_LIKE = re.compile(r"^\(?(\+?852)?\)?[\s-]?[0-9]{4}[\s-]?[0-9]{4}$")
CARD_LIKE = re.compile(r"^[0-9]{10}$")
ANCHOR_LIKE = re.compile(r"^(shop|loyalty):")  # person anchors carry shop ids and card numbers
PERSONAL_COLUMN_NAMES = {
    "email",
    "phone",
    "full_name",
    "name",
    "address",
    "date_of_birth",
    "customer_id",
    "card_no",
    "loyalty_card_no",
    "shop_customer_id",
    "person_anchor",
}


def dbt_env(db_url: str) -> dict[str, str]:
    """The environment for a dbt subprocess pointed at ``db_url``, keyed with SECRET."""
    return {
        **os.environ,
        **build_env(db_url, SECRET),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(args: list[str], db_url: str, work: Path) -> str:
    """Run dbt with its target and log folders under ``work``; fail the test on error."""
    cmd = [
        str(DBT),
        *args,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    proc = subprocess.run(
        cmd, env=dbt_env(db_url), capture_output=True, text=True, timeout=900, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def apply_sql(db_url: str, *files: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for file in files:
            conn.execute(file.read_text())


def rows(conn: psycopg.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def expected_key(person_anchor: str) -> str:
    return hashlib.sha256(f"{SECRET}|{person_anchor}".encode()).hexdigest()


def test_dbt_build_gives_stitched_pseudonymous_marts(fresh_db_url: str, tmp_path: Path) -> None:
    apply_schema(fresh_db_url)
    apply_sql(fresh_db_url, FIXTURE_SQL)
    output = run_dbt(["build"], fresh_db_url, tmp_path)
    assert "Completed successfully" in output
    # the customer-key secret is a session setting: no compiled SQL, artefact or log holds it
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sql" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []

    with psycopg.connect(fresh_db_url) as conn:
        # Every model sits in exactly its layer's schema, whatever the target schema.
        placed = dict(
            rows(
                conn,
                """
            select table_name, table_schema from information_schema.tables
            where table_name in ('stg_shop__customers', 'int_identity__person_map',
                                 'dim_customer', 'fct_sales', 'pii_customer')
        """,
            )
        )
        assert placed == {
            "stg_shop__customers": "staging",
            "int_identity__person_map": "intermediate",
            "dim_customer": "marts",
            "fct_sales": "marts",
            "pii_customer": "pii",
        }

        # Every personal-looking column dbt built is classified by contract/privacy.yml
        # (the marts gate checks the same on every night; here on every model at once).
        built = rows(
            conn,
            "select table_schema || '.' || table_name, column_name from information_schema.columns"
            " where table_schema in ('raw', 'staging', 'intermediate', 'pii', 'snapshots',"
            " 'marts', 'reporting', 'quarantine')",
        )
        assert policy().unclassified(built) == []
        # ... and the department grants apply to what dbt built (row security needs
        # tables), leaving nothing the marts gate's access check would stop on
        access.apply(fresh_db_url)
        assert access.drift(conn) == []

        # --- identity: who is one person -----------------------------------
        key_of_shop = dict(
            rows(
                conn,
                """
            select shop_customer_id, customer_key from pii.pii_customer
            where shop_customer_id is not null
        """,
            )
        )
        key_of_card = dict(
            rows(
                conn,
                """
            select card_no, customer_key
            from pii.pii_customer, unnest(loyalty_card_nos) as card_no
        """,
            )
        )
        # the member matched by email (other case, spaces) is Alice's shop account
        assert key_of_card["1000000001"] == key_of_shop[1001]
        # the member matched by phone (other format) is Dan's shop account
        assert key_of_card["1000000003"] == key_of_shop[1004]
        # the household phone: Bob, Carol and the member sharing it stay three people
        assert len({key_of_shop[1002], key_of_shop[1003], key_of_card["1000000002"]}) == 3
        # the junk phone on a till member links to nobody
        assert key_of_card["1000000004"] != key_of_shop[1005]
        # 7 shop accounts + 4 loyalty-only members
        assert rows(conn, "select count(*) from marts.dim_customer") == [(11,)]
        # customer_key is the keyed hash of the person anchor
        assert key_of_shop[1001] == expected_key("shop:1001")
        assert key_of_card["1000000005"] == expected_key("loyalty:1000000005")

        # --- marketing consent --------------------------------------------
        opt_in = dict(
            rows(
                conn,
                """
            select pii.person_anchor, dim.is_marketing_opt_in
            from marts.dim_customer as dim
            inner join pii.pii_customer as pii on dim.customer_key = pii.customer_key
        """,
            )
        )
        assert opt_in["shop:1001"] is False, "Alice opted out by email"
        assert opt_in["loyalty:1000000006"] is False, "Ivan opted out by card"
        assert opt_in["shop:1006"] is False, "a closed account's consent lapses"
        assert opt_in["loyalty:1000000005"] is True
        assert opt_in["shop:1005"] is True, "a junk-phone opt-out must match nobody"

        # --- sales ----------------------------------------------------------
        sales = {
            (r[0], r[1], r[2]): r[3:]
            for r in rows(
                conn,
                """
                select channel, order_ref, line_no, quantity, gross_amount, net_amount,
                       is_void, is_return, category, is_unknown_sku, customer_key
                from marts.fct_sales
            """,
            )
        }

        # VOID lines stay visible and carry zero net
        voids = [v for v in sales.values() if v[3]]
        assert voids, "the VOID line is missing"
        assert all(v[0] == 0 and v[1] == 0 and v[2] == 0 for v in voids)

        # superseded POS rows are gone: only the 6 lines of TST01's seq 2 export
        store_refs = {k[1] for k in sales if k[0] == "store" and k[1].startswith("TST01")}
        assert "TST01-20261120-000009" not in store_refs
        assert len([k for k in sales if k[0] == "store" and k[1].startswith("TST01")]) == 6
        assert sales[("store", "TST01-20261120-000001", 1)][0] == 2, "seq 1's quantity survived"

        # cancelled orders are excluded
        online_refs = {k[1] for k in sales if k[0] == "online"}
        assert online_refs == {"5001", "5003", "5004", "5005"}

        # a return is negative; an unknown sku is flagged
        assert sales[("store", "TST01-20261120-000002", 1)][2] == -100
        assert sales[("store", "TST01-20261120-000002", 1)][4] is True
        assert sales[("store", "TST01-20261120-000003", 1)][5:7] == ("unknown", True)

        # buyers: Alice online and in store is one customer; walk-ins have no key
        assert sales[("online", "5001", 1)][7] == key_of_shop[1001]
        assert sales[("store", "TST01-20261120-000001", 1)][7] == key_of_shop[1001]
        assert sales[("store", "MK01-20261121-000001", 1)][7] == key_of_shop[1004]
        assert sales[("store", "TST01-20261120-000004", 1)][7] is None, "unknown card"
        assert sales[("store", "TST01-20261120-000002", 1)][7] is None, "no card"

        # --- no personal data in marts ---------------------------------------
        raw_names = {
            r[0]
            for r in rows(
                conn,
                """
            select full_name from raw.shop_customers
            union select full_name from raw.loyalty_members
        """,
            )
        }
        raw_cards = {
            r[0]
            for r in rows(
                conn,
                """
            select card_no from raw.loyalty_members
            union select loyalty_card_no from raw.pos_lines where loyalty_card_no <> ''
        """,
            )
        }
        columns = rows(
            conn,
            """
            select table_name, column_name from information_schema.columns
            where table_schema = 'marts' order by table_name, ordinal_position
        """,
        )
        # every mart (tables and views) is scanned, not only the core ones
        assert {"dim_customer", "fct_sales", "customer_360", "fct_complaints"} <= {
            t for t, _ in columns
        }
        leaks = []
        for table, column in columns:
            if column in PERSONAL_COLUMN_NAMES:
                leaks.append(f"marts.{table}.{column}: personal column name")
            values = rows(conn, f'select distinct "{column}"::text from marts."{table}"')
            for (value,) in values:
                if value is None:
                    continue
                if (
                    EMAIL_LIKE.search(value)
                    or PHONE_LIKE.match(value)
                    or CARD_LIKE.match(value)
                    or ANCHOR_LIKE.match(value)
                    or value in raw_names
                    or any(card in value for card in raw_cards)
                ):
                    leaks.append(f"marts.{table}.{column}: {value!r}")
        assert not leaks, "personal data in marts:\n" + "\n".join(leaks)

    # --- a run for day D never shows day D+1 ---------------------------------
    run_dbt(
        ["run", "--select", "fct_sales", "--vars", '{"business_date": "2026-11-20"}'],
        fresh_db_url,
        tmp_path,
    )
    with psycopg.connect(fresh_db_url) as conn:
        assert rows(conn, "select max(business_date) from marts.fct_sales") == [
            (date(2026, 11, 20),)
        ]
        refs = {r[0] for r in rows(conn, "select order_ref from marts.fct_sales")}
        # 00:30 in Hong Kong on the 21st is still the 20th in UTC: it must be left out
        assert "5004" not in refs
        assert {"5003", "TST01-20261120-000004"} <= refs
