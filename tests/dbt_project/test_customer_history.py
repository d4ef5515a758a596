"""Customer history is dated by business time and survives re-runs and backfills.

The nightly build runs for a Hong Kong business date D. The snapshot of
dim_customer's tier, district and consent (snp_customer_attributes, exposed as
marts.dim_customer_history) must date a version by the end of the business
day that first saw it, never by when the job ran: a re-run of a night records
nothing new, and a backfill of an older night after later nights leaves the
history alone. The loyalty tier migrations come from the loyalty deltas known
by D, and the prospects contact list holds only opted-in people who never
bought by D.

The raw sample is the dbt build test's (fixtures/raw_sample.sql) with ledger
entries, so that each night sees only what was loaded by its date, and one
more loyalty delta on 2026-11-21 in which Dan's card moves from silver to gold.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from test_dbt_build import FIXTURE_SQL, apply_sql, run_dbt
from include.warehouse import apply_schema

HK = ZoneInfo("Asia/Hong_Kong")
NIGHT_1 = date(2026, 11, 20)
NIGHT_2 = date(2026, 11, 21)
SELECT = "+dim_customer_history +fct_loyalty_tier_changes +rpt_prospects +pii_customer"
# loads of the raw sample that hold data of 2026-11-21; every other load is known on 2026-11-20
LOADS_OF_NIGHT_2 = {32, 102}
DAN_CARD = "1000000003"
HELEN_CARD = "1000000005"


def end_of(day: date) -> datetime:
    """The instant a Hong Kong business day ends (its next midnight)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=HK)


def night(db_url: str, work: Path, day: date) -> None:
    run_dbt(
        [
            "build",
            "--select",
            *SELECT.split(),
            "--indirect-selection",
            "cautious",
            # incremental models' unit tests need their table to exist already
            "--exclude-resource-type",
            "unit_test",
            "--vars",
            f'{{"business_date": "{day.isoformat()}"}}',
        ],
        db_url,
        work,
    )


def ledger_and_second_delta(conn: psycopg.Connection) -> None:
    """Ledger rows for every load of the sample, and Dan's upgrade loaded on night 2."""
    load_ids = sorted(
        {
            row[0]
            for table in (
                "shop_customers",
                "shop_products",
                "shop_orders",
                "shop_order_items",
                "shop_order_status_history",
                "loyalty_members",
                "privacy_requests",
                "pos_lines",
                "stores",
                "web_events",
                "complaint_tickets",
            )
            for row in conn.execute(f"select distinct _load_id from raw.{table}").fetchall()
        }
    )
    for load_id in load_ids:
        conn.execute(
            "insert into ops.load_ledger (load_id, source, object, business_date, status)"
            " values (%s, 'fixture', %s, %s, 'loaded')",
            (load_id, f"fixture-{load_id}", NIGHT_2 if load_id in LOADS_OF_NIGHT_2 else NIGHT_1),
        )
    conn.execute(
        "insert into ops.load_ledger (load_id, source, object, business_date, status)"
        " values (70, 'loyalty', 'loyalty/2026-11-21.csv', %s, 'loaded')",
        (NIGHT_2,),
    )
    conn.execute(
        """
        insert into raw.loyalty_members
            (card_no, full_name, phone, email, district, tier, joined_on, marketing_opt_in,
             updated_at, _load_id, _file, _line)
        values (%s, 'Dan W.', '852 5555 1234', null, 'Kowloon City', 'gold',
                '2026-02-02', true, '2026-11-21 15:00:00', 70, 'loyalty/2026-11-21.csv', 2)
        """,
        (DAN_CARD,),
    )


def key_of_card(conn: psycopg.Connection, card_no: str) -> str:
    return conn.execute(
        "select customer_key from pii.pii_customer where %s = any(loyalty_card_nos)", (card_no,)
    ).fetchone()[0]


def snapshot_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "select customer_key, loyalty_tier, home_district, is_marketing_opt_in, is_deleted,"
        " dbt_valid_from, dbt_valid_to from snapshots.snp_customer_attributes order by 1, 6"
    ).fetchall()


def history_of(conn: psycopg.Connection, customer_key: str) -> list[tuple]:
    return conn.execute(
        "select loyalty_tier, valid_from, valid_to, valid_from_business_date, is_current, as_of_date"
        " from marts.dim_customer_history where customer_key = %s order by valid_from",
        (customer_key,),
    ).fetchall()


def key_of_shop_account(conn: psycopg.Connection, customer_id: int) -> str:
    return conn.execute(
        "select customer_key from pii.pii_customer where shop_customer_id = %s", (customer_id,)
    ).fetchone()[0]


def prospects(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("select customer_key from marts.rpt_prospects")}


def test_history_is_dated_by_business_time_and_survives_reruns(
    fresh_db_url: str, tmp_path: Path
) -> None:
    apply_schema(fresh_db_url)
    apply_sql(fresh_db_url, FIXTURE_SQL)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        ledger_and_second_delta(conn)

    # --- night 1 -----------------------------------------------------------
    night(fresh_db_url, tmp_path, NIGHT_1)
    with psycopg.connect(fresh_db_url) as conn:
        dan = key_of_card(conn, DAN_CARD)
        helen = key_of_card(conn, HELEN_CARD)
        first_night = snapshot_rows(conn)
        assert first_night, "the snapshot recorded nobody"
        # every version is dated by the end of business day 1, not by the clock
        assert {row[5] for row in first_night} == {end_of(NIGHT_1)}
        assert history_of(conn, dan) == [("silver", end_of(NIGHT_1), None, NIGHT_1, True, NIGHT_1)]
        # Dan has not bought yet (his online order was cancelled) and his card
        # gives consent: a prospect. Ivan opted out, Grace never consented.
        night_1_prospects = prospects(conn)
        assert dan in night_1_prospects
        assert key_of_card(conn, "1000000006") not in night_1_prospects
        assert key_of_shop_account(conn, 1007) not in night_1_prospects

    # --- the same night again: nothing new ----------------------------------
    night(fresh_db_url, tmp_path, NIGHT_1)
    with psycopg.connect(fresh_db_url) as conn:
        assert snapshot_rows(conn) == first_night

    # --- night 2: Dan's card was upgraded -----------------------------------
    night(fresh_db_url, tmp_path, NIGHT_2)
    with psycopg.connect(fresh_db_url) as conn:
        assert history_of(conn, dan) == [
            ("silver", end_of(NIGHT_1), end_of(NIGHT_2), NIGHT_1, False, NIGHT_2),
            ("gold", end_of(NIGHT_2), None, NIGHT_2, True, NIGHT_2),
        ]
        # nobody else changed: one version each
        changed = conn.execute(
            "select customer_key from marts.dim_customer_history group by 1 having count(*) > 1"
        ).fetchall()
        assert changed == [(dan,)]
        second_night = snapshot_rows(conn)

        # migrations from the loyalty deltas: Dan's upgrade on its business
        # date, and Helen's older upgrade (her card predates the history, so
        # her first tier is a baseline, not a join)
        moves = conn.execute(
            "select customer_key, changed_on, from_tier, to_tier, change_type"
            " from marts.fct_loyalty_tier_changes order by changed_on"
        ).fetchall()
        assert (dan, NIGHT_2, "silver", "gold", "upgrade") in moves
        assert (helen, date(2026, 9, 1), "silver", "platinum", "upgrade") in moves
        assert not [m for m in moves if m[4] == "joined"]

        # Dan bought in store on day 2: no longer a prospect
        assert dan not in prospects(conn)

    # --- a backfill of night 1 after night 2 ---------------------------------
    night(fresh_db_url, tmp_path, NIGHT_1)
    with psycopg.connect(fresh_db_url) as conn:
        assert snapshot_rows(conn) == second_night, "a backfill rewrote the history"
        # the history as it stood on night 1
        assert history_of(conn, dan) == [("silver", end_of(NIGHT_1), None, NIGHT_1, True, NIGHT_1)]
