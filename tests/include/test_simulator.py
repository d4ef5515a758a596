"""The source simulator: reproducible, true to SOURCES.md, and realistic where the pipeline cares.

Each test simulates a small world (a few hundred people, three stores, one or
two weeks) into a fresh shop database and a temporary landing folder, then
reads the result the way a loader would: file by file, against the contract
written out here independently of the simulator's own constants.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from include import contract
from include.loaders import SOURCES, ParsedRow, _open_text, parse_csv, parse_jsonl
from include.simulator import simulate

# -- the contract, as contract/sources.yml states it ------------------------------------------
CONTRACT = contract.sources()
POS_HEADER = [f.path for f in CONTRACT["pos"].fields]
STORES_HEADER = [f.path for f in CONTRACT["stores"].fields]
LOYALTY_HEADER = [f.path for f in CONTRACT["loyalty"].fields]
PRIVACY_HEADER = [f.path for f in CONTRACT["privacy"].fields]
PAYMENTS = {"cash", "octopus", "visa", "mastercard", "unionpay", "alipayhk", "wechatpay", "fps"}
REGIONS = {"HK Island", "Kowloon", "New Territories"}
DISTRICTS = {
    "Central and Western", "Wan Chai", "Eastern", "Southern", "Yau Tsim Mong", "Sham Shui Po",
    "Kowloon City", "Wong Tai Sin", "Kwun Tong", "Kwai Tsing", "Tsuen Wan", "Tuen Mun", "Yuen Long",
    "North", "Tai Po", "Sha Tin", "Sai Kung", "Islands",
}  # fmt: skip
WEB_FIELDS = {f.path for f in CONTRACT["web"].fields}
WEB_TYPES = {
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start",
    "purchase", "login", "signup",
}  # fmt: skip
TICKET_FIELDS = {f.path.split(".")[0] for f in CONTRACT["complaints"].fields}
# information_schema's spelling of the contract's shop types
_INFO_TYPE = {"int": "integer", "numeric(12, 2)": "numeric(12,2)",
              "timestamptz": "timestamp with time zone"}  # fmt: skip
SHOP_COLUMNS = {
    t.name: [(c.name, _INFO_TYPE.get(c.sql_type, c.sql_type)) for c in t.columns]
    for t in contract.shop_tables().values()
}
JUNK = {
    "00000000",
    "12345678",
    "99999999",
    "test@example.com",
    "na@na.com",
    "no@email.com",
    "0000000000",
}
UTC_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
MONEY = re.compile(r"^-?\d+\.\d{2}$")
HKT = timezone(timedelta(hours=8))


# -- helpers ------------------------------------------------------------------------------
def run(url: str, root: Path, start: date | None, days: int, **kw):
    args = dict(customers=300, stores=3, seed=42, progress=False) | kw
    return simulate(
        shop_url=url,
        landing_dir=root / "landing",
        ground_truth_dir=root / "truth",
        start=start,
        days=days,
        **args,
    )


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def shop_tables(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"select * from public.{t} order by 1, 2, 3").fetchall()
            for t in SHOP_COLUMNS
        }


def reset(url: str) -> None:
    """Empty the database again, as if it were a fresh one."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "drop schema if exists sim cascade; drop schema public cascade; create schema public"
        )


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def read_csv(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    rows = list(csv.reader(io.StringIO(read_text(path), newline="")))
    return (rows[0], rows[1:]) if rows else (None, [])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]


def files(landing: Path, prefix: str) -> list[Path]:
    return sorted(p for p in (landing / prefix).rglob("*") if p.is_file())


# -- 1. determinism -------------------------------------------------------------------------
def test_same_seed_same_bytes_and_rows_and_continuing_equals_one_run(fresh_db_url, tmp_path):
    start = date(2026, 3, 2)
    run(fresh_db_url, tmp_path / "a", start, 10)
    files_a, shop_a = file_digests(tmp_path / "a"), shop_tables(fresh_db_url)
    assert len(files_a) > 100 and len(shop_a["orders"]) > 0

    reset(fresh_db_url)
    run(fresh_db_url, tmp_path / "b", start, 10)
    assert file_digests(tmp_path / "b") == files_a
    assert shop_tables(fresh_db_url) == shop_a

    reset(fresh_db_url)
    run(fresh_db_url, tmp_path / "c", start, 6)
    run(fresh_db_url, tmp_path / "c", None, 4)
    assert file_digests(tmp_path / "c") == files_a
    assert shop_tables(fresh_db_url) == shop_a

    reset(fresh_db_url)
    run(fresh_db_url, tmp_path / "d", start, 10, seed=7)
    files_d = file_digests(tmp_path / "d")
    assert files_d != files_a
    assert shop_tables(fresh_db_url)["orders"] != shop_a["orders"]


# -- 2. contract conformance ----------------------------------------------------------------
@pytest.fixture
def contract_run(fresh_db_url, tmp_path):
    """Two weeks around Lunar New Year 2026 (17 February: every store closed)."""
    start, days = date(2026, 2, 10), 14
    summary = run(fresh_db_url, tmp_path, start, days, customers=1000)
    return fresh_db_url, tmp_path / "landing", start, days, summary


def test_every_landing_file_is_named_and_typed_as_the_contract_says(contract_run):
    """Each file the simulator writes matches exactly one source's name pattern, and the
    loader's own parser (the contract's field types) reads every record of it."""
    _url, landing, *_ = contract_run
    by_source: dict[str, int] = {}
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        key = path.relative_to(landing).as_posix()
        matches = [s for s in SOURCES.values() if s.key_pattern.match(key)]
        assert len(matches) == 1, (key, [s.name for s in matches])
        source = matches[0]
        with path.open("rb") as raw, _open_text(raw, key) as text:
            parse = parse_csv if source.fmt == "csv" else parse_jsonl
            results = list(parse(source, text))
        rejected = [r for r in results if not isinstance(r, ParsedRow)]
        assert not rejected, (key, rejected[:3])
        by_source[source.name] = by_source.get(source.name, 0) + len(results)
    assert set(by_source) == set(CONTRACT), by_source
    assert all(by_source[name] > 0 for name in ("pos", "stores", "web", "complaints")), by_source


def test_pos_files_follow_the_contract(contract_run):
    _url, landing, start, days, _ = contract_run
    kinds = Counter()
    txn_types = Counter()
    for path in files(landing, "pos"):
        rel = path.relative_to(landing).as_posix()
        m = re.fullmatch(r"pos/(\d{4}-\d{2}-\d{2})/([A-Z]+\d{2})_(\d+)\.csv(\.gz)?", rel)
        assert m, rel
        day, store = date.fromisoformat(m[1]), m[2]
        assert start <= day < start + timedelta(days=days)
        raw = gzip.decompress(path.read_bytes()) if m[4] else path.read_bytes()
        kinds["gzip" if m[4] else "plain"] += 1
        if not raw:
            kinds["empty"] += 1
            assert day == date(2026, 2, 17) or m[3] == "1", rel
            continue
        if raw.startswith(b"\xef\xbb\xbf"):
            kinds["bom"] += 1
            assert b"\r\n" in raw
        header, rows = read_csv(path)
        assert header == POS_HEADER, rel
        assert rows, rel
        receipts = defaultdict(list)
        for row in rows:
            assert len(row) == len(POS_HEADER), (rel, row)
            rec = dict(zip(POS_HEADER, row, strict=True))
            assert re.fullmatch(rf"{store}-{day:%Y%m%d}-\d{{6}}", rec["receipt_no"]), (rel, rec)
            assert rec["store_code"] == store
            ts = datetime.strptime(rec["txn_ts"], "%Y-%m-%d %H:%M:%S")
            assert ts.date() == day and 8 <= ts.hour <= 22, (rel, rec)
            assert rec["txn_type"] in {"SALE", "RETURN", "VOID"}
            txn_types[rec["txn_type"]] += 1
            qty = int(rec["quantity"])
            assert qty != 0 and (qty < 0) == (rec["txn_type"] == "RETURN"), rec
            assert MONEY.match(rec["unit_price"]) and Decimal(rec["unit_price"]) >= 0, rec
            assert MONEY.match(rec["discount"]) and Decimal(rec["discount"]) >= 0, rec
            assert rec["payment_method"] in PAYMENTS
            assert re.fullmatch(r"(\d{10})?", rec["loyalty_card_no"]), rec
            assert rec["staff_id"] and rec["sku"]
            receipts[rec["receipt_no"]].append(int(rec["line_no"]))
        for lines in receipts.values():
            assert lines == list(range(1, len(lines) + 1))
    # the flaws the contract allows are all present
    assert kinds["gzip"] and kinds["plain"] and kinds["bom"] and kinds["empty"] >= 3, kinds
    assert txn_types["SALE"] > 1000 and txn_types["RETURN"] and txn_types["VOID"], txn_types


def test_reference_loyalty_and_privacy_files_follow_the_contract(contract_run):
    _url, landing, start, days, summary = contract_run
    header, rows = read_csv(landing / "reference/stores.csv")
    assert header == STORES_HEADER and len(rows) == 3
    for code, name, district, region, opened, closed in rows:
        assert re.fullmatch(r"[A-Z]+\d{2}", code) and name
        assert district in DISTRICTS and region in REGIONS
        date.fromisoformat(opened)
        assert closed == "" or date.fromisoformat(closed)

    loyalty = files(landing, "loyalty")
    assert [p.name for p in loyalty] == [f"{start + timedelta(days=d)}.csv" for d in range(days)]
    members = 0
    for path in loyalty:
        header, rows = read_csv(path)
        assert header == LOYALTY_HEADER, path
        for row in rows:
            rec = dict(zip(LOYALTY_HEADER, row, strict=True))
            assert re.fullmatch(r"\d{10}", rec["card_no"]) and rec["full_name"] and rec["phone"]
            assert rec["tier"] in {"classic", "silver", "gold", "platinum"}
            assert rec["marketing_opt_in"] in {"Y", "N"}
            assert rec["district"] in DISTRICTS
            date.fromisoformat(rec["joined_on"])
            datetime.strptime(rec["updated_at"], "%Y-%m-%d %H:%M:%S")
            members += 1
    assert members >= summary.loyalty_members  # the first delta carries every member

    privacy = files(landing, "privacy")
    assert len(privacy) == days
    for path in privacy:
        header, rows = read_csv(path)
        assert header == PRIVACY_HEADER, path
        for request_id, received_at, kind, email, phone, card in rows:
            assert request_id and UTC_TS.match(received_at)
            assert kind in {"opt_out_marketing", "erasure", "access"}
            assert email or phone or card
            assert card == "" or re.fullmatch(r"\d{10}", card)


def test_web_events_follow_the_contract(contract_run):
    _url, landing, _start, _days, summary = contract_run
    paths = files(landing, "web")
    assert len(paths) == 24 * 14
    events = 0
    for path in paths:
        m = re.fullmatch(
            r"web/(\d{4}-\d{2}-\d{2})/(\d{2})\.jsonl\.gz", path.relative_to(landing).as_posix()
        )
        assert m, path
        file_hour = datetime.fromisoformat(f"{m[1]}T{m[2]}:00:00")
        for ev in read_jsonl(path):
            assert WEB_FIELDS <= set(ev), path
            uuid.UUID(ev["event_id"])
            assert UTC_TS.match(ev["event_ts"]), ev
            ts = datetime.fromisoformat(ev["event_ts"][:-1])
            assert ts < file_hour + timedelta(hours=1), (
                "an event never lands in an earlier hour's file"
            )
            assert ev["event_type"] in WEB_TYPES
            assert ev["device_type"] in {"desktop", "mobile", "tablet"}
            assert ev["anonymous_id"] and ev["session_id"] and ev["page_url"].startswith("https://")
            assert ev["customer_id"] is None or isinstance(ev["customer_id"], int)
            assert (ev["order_id"] is not None) == (ev["event_type"] == "purchase")
            if ev["event_type"] in {"product_view", "add_to_cart", "remove_from_cart"}:
                assert ev["sku"]
            if ev["event_type"] == "search":
                assert ev["search_query"]
            assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ev["ip"])
            events += 1
    assert events >= summary.web_events > 1000


def test_complaint_files_follow_the_contract(contract_run):
    _url, landing, _start, days, _ = contract_run
    paths = files(landing, "complaints")
    assert len(paths) == days
    tickets = 0
    for path in paths:
        for t in read_jsonl(path):
            assert set(t) >= TICKET_FIELDS, t
            assert re.fullmatch(r"CS-\d{7}", t["ticket_id"])
            assert UTC_TS.match(t["created_at"]) and UTC_TS.match(t["updated_at"])
            assert t["created_at"] <= t["updated_at"]
            assert t["channel"] in {"email", "phone", "web_form", "store", "social"}
            assert set(t["customer"]) == {"email", "phone", "name", "loyalty_card_no"}
            assert t["category"] in {
                "delivery", "product_quality", "staff_service", "billing", "returns", "website", "privacy", "other",
            }  # fmt: skip
            assert t["severity"] in {"low", "medium", "high", "critical"}
            assert t["status"] in {"new", "open", "pending", "resolved", "closed", "reopened"}
            for key in ("first_response_at", "resolved_at"):
                assert t[key] is None or UTC_TS.match(t[key])
            assert t["satisfaction_score"] is None or 1 <= t["satisfaction_score"] <= 5
            assert t["order_ref"] is None or isinstance(t["order_ref"], str)
            assert t["assigned_team"] and t["description"]
            tickets += 1
    assert tickets > 0


def test_shop_tables_have_the_contract_columns_and_consistent_times(contract_run):
    url, _landing, start, days, summary = contract_run
    with psycopg.connect(url) as conn:
        for table, expected in SHOP_COLUMNS.items():
            cols = conn.execute(
                "select column_name, case when data_type = 'numeric'"
                " then format('numeric(%%s,%%s)', numeric_precision, numeric_scale) else data_type end"
                " from information_schema.columns where table_schema = 'public' and table_name = %s"
                " order by ordinal_position",
                (table,),
            ).fetchall()
            assert cols == expected, table
        first = datetime(start.year, start.month, start.day, tzinfo=HKT)
        end = first + timedelta(days=days)
        o = conn.execute(
            "select count(*), min(order_ts), max(updated_at), bool_and(updated_at >= order_ts),"
            " bool_and(currency = 'HKD') from orders"
        ).fetchone()
        assert o[0] == summary.orders > 0 and o[1] >= first and o[2] < end and o[3] and o[4]
        assert conn.execute("select max(updated_at) from customers").fetchone()[0] < end
        assert conn.execute("select max(changed_at) from order_status_history").fetchone()[0] < end
        statuses = {r[0] for r in conn.execute("select distinct status from order_status_history")}
        assert statuses <= {"placed", "paid", "shipped", "delivered", "cancelled", "returned"}
        assert {"placed", "paid", "shipped", "delivered"} <= statuses
        (bad,) = conn.execute(
            "select count(*) from orders o where status <> (select h.status from order_status_history h"
            " where h.order_id = o.order_id order by changed_at desc limit 1)"
        ).fetchone()
        assert bad == 0, "an order's status is its latest history row"
        n_products = conn.execute(
            "select count(*), count(distinct category) from products"
        ).fetchone()
        assert 180 <= n_products[0] <= 220 and n_products[1] == 8


# -- 3. behaviour the pipeline's analytics rely on ---------------------------------------------
@pytest.fixture
def two_weeks(fresh_db_url, tmp_path):
    """Two plain weeks (Monday 2 March 2026 to Sunday 15 March), 2,000 people."""
    run(fresh_db_url, tmp_path, date(2026, 3, 2), 14, customers=2000)
    return fresh_db_url, tmp_path


def _truth(root: Path) -> dict[str, set[tuple[str, str]]]:
    header, rows = read_csv(root / "truth/identities.csv")
    assert header == ["person_id", "id_type", "id_value"]
    people = defaultdict(set)
    for person, kind, value in rows:
        people[person].add((kind, value))
    return people


def test_channels_identities_and_junk(two_weeks):
    url, root = two_weeks
    landing = root / "landing"
    people = _truth(root)
    owner = {(k, v): p for p, ids in people.items() for k, v in ids}
    all_values = {v for ids in people.values() for _k, v in ids}
    assert not all_values & JUNK, "junk identifiers belong to nobody"
    assert {k for ids in people.values() for k, _v in ids} == {
        "shop_customer_id", "email", "phone", "loyalty_card_no", "anonymous_id",
    }  # fmt: skip
    assert sum(len(ids) > 1 for ids in people.values()) > 300

    # shared household phones are listed under everyone who uses them
    phone_owners = defaultdict(set)
    for p, ids in people.items():
        for k, v in ids:
            if k == "phone":
                phone_owners[re.sub(r"\D", "", v)[-8:]].add(p)
    assert any(len(ps) > 1 for ps in phone_owners.values())

    with psycopg.connect(url) as conn:
        online = {
            owner[("shop_customer_id", str(c))]
            for (c,) in conn.execute("select customer_id from orders")
        }
        accounts = conn.execute("select email, phone from customers").fetchall()
    in_store = set()
    for path in files(landing, "pos"):
        for row in read_csv(path)[1]:
            if row[10] and ("loyalty_card_no", row[10]) in owner:
                in_store.add(owner[("loyalty_card_no", row[10])])
    assert len(online & in_store) > 5, "people who buy in both channels"
    assert len(online - in_store) > 10 and len(in_store - online) > 10

    # members also known to the shop under the same email in another case, or the same phone
    # written another way
    emails = {e.lower(): e for e, _ in accounts}
    phones = {re.sub(r"\D", "", p)[-8:] for _, p in accounts if p}
    case_only = same_phone = 0
    for path in files(landing, "loyalty"):
        for row in read_csv(path)[1]:
            email, phone = row[3], row[2]
            if email and email.lower() in emails and emails[email.lower()] != email:
                case_only += 1
            if re.sub(r"\D", "", phone)[-8:] in phones and phone not in {p for _, p in accounts}:
                same_phone += 1
    assert case_only > 20 and same_phone > 20


def test_stores_are_busier_at_weekends(two_weeks):
    _url, root = two_weeks
    sales = Counter()
    for path in files(root / "landing", "pos"):
        day = date.fromisoformat(path.parent.name)
        for row in read_csv(path)[1]:
            if row[3] == "SALE":
                sales[day] += int(row[6]) * Decimal(row[7]) - Decimal(row[8])
    weekend = [v for d, v in sales.items() if d.weekday() >= 5]
    weekday = [v for d, v in sales.items() if d.weekday() < 5]
    assert len(weekend) == 4 and len(weekday) == 10
    assert sum(weekend) / len(weekend) > Decimal("1.2") * sum(weekday) / len(weekday)


def test_tickets_progress_and_web_events_repeat(two_weeks):
    _url, root = two_weeks
    landing = root / "landing"
    versions = defaultdict(list)
    for path in files(landing, "complaints"):
        for t in read_jsonl(path):
            versions[t["ticket_id"]].append((path.stem, t["updated_at"], t["status"]))
    moving = [v for v in versions.values() if len(v) > 1]
    assert moving, "tickets change over several days"
    for v in moving:
        assert [u for _d, u, _s in v] == sorted(u for _d, u, _s in v) and len(
            {d for d, _u, _s in v}
        ) == len(v)
    assert any(s != "new" for v in moving for _d, _u, s in v)

    seen = Counter()
    purchases, logins = set(), 0
    for path in files(landing, "web"):
        for ev in read_jsonl(path):
            seen[ev["event_id"]] += 1
            if ev["event_type"] == "purchase":
                purchases.add(ev["order_id"])
            logins += ev["event_type"] == "login"
    assert any(n > 1 for n in seen.values()), "the tracker sends some events twice"
    with psycopg.connect(two_weeks[0]) as conn:
        orders = {r[0] for r in conn.execute("select order_id from orders")}
        (before_last_day,) = conn.execute(
            "select array_agg(order_id) from orders where order_ts < '2026-03-15 00:00+08'"
        ).fetchone()
    # the last day's late events land in files of a day not simulated yet
    assert set(before_last_day) <= purchases <= orders, "each online order has its purchase event"
    assert logins > 0


# -- 4. continuing ------------------------------------------------------------------------------
def test_continuing_needs_the_next_day(fresh_db_url, tmp_path):
    with pytest.raises(ValueError, match="pass start"):
        run(fresh_db_url, tmp_path, None, 2)
    run(fresh_db_url, tmp_path, date(2026, 3, 2), 3)
    with pytest.raises(ValueError, match="2026-03-05"):
        run(fresh_db_url, tmp_path, date(2026, 3, 7), 1)  # a gap
    with pytest.raises(ValueError, match="2026-03-05"):
        run(fresh_db_url, tmp_path, date(2026, 3, 2), 1)  # days simulated twice
    with pytest.raises(ValueError, match="customers=300"):
        run(fresh_db_url, tmp_path, None, 1, customers=500)
    summary = run(fresh_db_url, tmp_path, date(2026, 3, 5), 1)
    assert (summary.first_day, summary.last_day) == (date(2026, 3, 5), date(2026, 3, 5))
    assert (tmp_path / "landing/loyalty/2026-03-05.csv").exists()


# -- 5. behavioural ground truth ----------------------------------------------------------------
BEHAVIOUR_HEADER = [
    "person_id", "channel", "purchase_rate_per_week", "online_orders_per_week",
    "store_visits_per_week", "browse_sessions_per_week", "is_churned", "churned_on", "erased_on",
    "home_store", "favourite_category", "favourite_category_share",
]  # fmt: skip
CATEGORIES = {
    "Skincare", "Makeup", "Fragrance", "Hair Care", "Body Care", "Health & Wellness",
    "Baby & Mum", "Men's Grooming",
}  # fmt: skip
BEHAVIOUR_START, BEHAVIOUR_DAYS = date(2026, 1, 5), 90
SO_FAR = ("is_churned", "churned_on", "erased_on")  # the columns that depend on the days simulated


def _behaviour(root: Path) -> dict[str, dict[str, str]]:
    header, rows = read_csv(root / "truth/behaviour.csv")
    assert header == BEHAVIOUR_HEADER
    truth = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert len(truth) == len(rows), "one row per person"
    return truth


@pytest.fixture(scope="module")
def behaviour_world(test_server, tmp_path_factory):
    """400 people and three stores over 90 days (Monday 5 January to 4 April 2026), simulated
    once for the tests below: enough purchases to rank people and enough lapses to check."""
    admin = test_server.url("postgres")
    name = f"t_behaviour_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url, root = test_server.url(name), tmp_path_factory.mktemp("behaviour")
    summary = run(url, root, BEHAVIOUR_START, BEHAVIOUR_DAYS, customers=400)
    yield url, root, summary
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _purchases(url: str, root: Path) -> dict[str, dict[str, set]]:
    """Per person: the HK dates of their online orders and their store receipts with a sale,
    as the sources show them (an order by shop customer id, a receipt by loyalty card)."""
    owner = {(k, v): p for p, ids in _truth(root).items() for k, v in ids}
    bought: dict[str, dict[str, set]] = defaultdict(lambda: {"online": set(), "store": set()})
    with psycopg.connect(url) as conn:
        for order_id, customer_id, order_ts in conn.execute(
            "select order_id, customer_id, order_ts from orders"
        ):
            person = owner[("shop_customer_id", str(customer_id))]
            bought[person]["online"].add((order_id, order_ts.astimezone(HKT).date()))
    for path in files(root / "landing", "pos"):
        for row in read_csv(path)[1]:
            if row[3] == "SALE" and ("loyalty_card_no", row[10]) in owner:
                person = owner[("loyalty_card_no", row[10])]
                bought[person]["store"].add((row[0], date.fromisoformat(row[2][:10])))
    return bought


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their average rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)
    return cov / var**0.5


def test_behaviour_truth_has_one_row_per_person(behaviour_world):
    _url, root, summary = behaviour_world
    truth = _behaviour(root)
    assert list(truth) == [f"P{i:06d}" for i in range(1, summary.people + 1)]
    assert set(_truth(root)) <= set(truth), "every person of identities.csv has a row"
    last = BEHAVIOUR_START + timedelta(days=BEHAVIOUR_DAYS - 1)
    stores = {row[0] for row in read_csv(root / "landing/reference/stores.csv")[1]}
    for t in truth.values():
        assert t["channel"] in {"online", "store", "both", "browser"}, t
        online, store = float(t["online_orders_per_week"]), float(t["store_visits_per_week"])
        assert online >= 0 and store >= 0 and float(t["browse_sessions_per_week"]) >= 0, t
        assert abs(float(t["purchase_rate_per_week"]) - online - store) < 1e-5, t
        assert (online > 0) == (t["channel"] in {"online", "both"}), t
        assert (store > 0) == (t["channel"] in {"store", "both"}), t
        assert t["is_churned"] in {"true", "false"}
        assert (t["churned_on"] != "") == (t["is_churned"] == "true"), t
        if t["churned_on"]:
            assert BEHAVIOUR_START <= date.fromisoformat(t["churned_on"]) <= last, t
        if t["erased_on"]:
            assert BEHAVIOUR_START <= date.fromisoformat(t["erased_on"]) <= last, t
        assert t["home_store"] in stores and t["favourite_category"] in CATEGORIES, t
        assert 1 / len(CATEGORIES) <= float(t["favourite_category_share"]) <= 1, t
    churned = sum(t["is_churned"] == "true" for t in truth.values())
    assert 0.05 * len(truth) < churned < 0.25 * len(truth), churned


def test_realised_purchases_follow_the_true_rates(behaviour_world):
    url, root, _ = behaviour_world
    truth, bought = _behaviour(root), _purchases(url, root)
    ids = _truth(root)
    with psycopg.connect(url) as conn:
        old_accounts = {
            str(c)
            for (c,) in conn.execute(
                "select customer_id from customers where created_at < %s and deleted_at is null",
                (datetime(2026, 1, 5, tzinfo=HKT),),
            )
        }
    header, rows = read_csv(root / f"landing/loyalty/{BEHAVIOUR_START}.csv")
    old_cards = {r[0] for r in rows if r[header.index("joined_on")] < str(BEHAVIOUR_START)}

    # people whose every purchase a source ties to them (an account or a card from the start),
    # who neither lapsed nor asked for erasure: more purchases where the true rate is higher
    rates, counts = [], []
    expected, seen = Counter(), Counter()
    weeks = BEHAVIOUR_DAYS / 7
    for person, t in truth.items():
        if t["is_churned"] == "true" or t["erased_on"] or t["channel"] == "browser":
            continue
        known = ids.get(person, set())
        account = any(k == "shop_customer_id" and v in old_accounts for k, v in known)
        card = any(k == "loyalty_card_no" and v in old_cards for k, v in known)
        if account and t["channel"] in {"online", "both"}:
            expected["online"] += float(t["online_orders_per_week"]) * weeks
            seen["online"] += len(bought[person]["online"])
        if card and t["channel"] in {"store", "both"}:
            expected["store"] += float(t["store_visits_per_week"]) * weeks
            seen["store"] += len(bought[person]["store"])
        needs = {"online": account, "store": card, "both": account and card}[t["channel"]]
        if needs:
            rates.append(float(t["purchase_rate_per_week"]))
            counts.append(len(bought[person]["online"]) + len(bought[person]["store"]))
    assert len(rates) > 120, len(rates)
    rho = _spearman(rates, counts)
    assert rho > 0.7, f"rank correlation of true rate and purchases: {rho:.2f}"
    # the unit, per ordinary week (holiday peaks add a little): online orders, and store visits
    # of members (88% of their receipts carry the card)
    assert 0.85 < seen["online"] / expected["online"] < 1.2, (seen, expected)
    assert 0.75 < seen["store"] / expected["store"] < 1.05, (seen, expected)


def test_nobody_buys_after_churning(behaviour_world):
    url, root, _ = behaviour_world
    truth, bought = _behaviour(root), _purchases(url, root)
    after, before, churned = Counter(), 0, 0
    for person, t in truth.items():
        if t["is_churned"] != "true":
            continue
        churned += 1
        churned_on = date.fromisoformat(t["churned_on"])
        days = [d for kind in ("online", "store") for _ref, d in bought[person][kind]]
        after[person] = sum(d >= churned_on for d in days)
        before += any(d < churned_on for d in days)
    assert churned > 20 and before > 10, (churned, before)  # the check is not empty
    assert not +after, f"purchases after churned_on: {dict(+after)}"
    still = sum(
        bool(bought[p]["online"] or bought[p]["store"])
        for p, t in truth.items()
        if t["is_churned"] == "false"
    )
    assert still > 100


def test_a_visit_planned_before_lapsing_does_not_happen():
    """A store visit planned after browsing online is dropped once the person has lapsed."""
    from include.simulator.days import simulate_day
    from include.simulator.world import NEVER, STORE, build_world, initial_state

    day = date(2026, 3, 2)
    world = build_world(42, day, 300, 3)
    i = next(
        int(p)
        for p in range(world.n)
        if world.channel[p] == STORE and world.member_offset[p] < 0 and world.card_no[p]
    )
    midnight = int(datetime(2026, 3, 2, tzinfo=HKT).timestamp())
    receipts = {}
    for lapse in (NEVER, 0):
        world.lapse_offset[i] = lapse
        state = initial_state(world)
        state.queue[day.isoformat()] = [
            {"k": "visit", "t": midnight, "person": i, "products": []} for _ in range(10)
        ]
        result = simulate_day(world, state, day)
        rows = [r for f in result.pos_files for r in f.rows or []]
        receipts[lapse] = {r[0] for r in rows if r[10] == world.card_no[i]}
    assert len(receipts[NEVER]) >= 5 and not receipts[0]


def test_behaviour_truth_is_reproducible_and_says_only_what_was_simulated(fresh_db_url, tmp_path):
    start = date(2026, 3, 2)
    run(fresh_db_url, tmp_path / "a", start, 20)
    whole = (tmp_path / "a/truth/behaviour.csv").read_bytes()

    reset(fresh_db_url)
    run(fresh_db_url, tmp_path / "b", start, 20)
    assert (tmp_path / "b/truth/behaviour.csv").read_bytes() == whole

    reset(fresh_db_url)
    run(fresh_db_url, tmp_path / "c", start, 12)
    early = _behaviour(tmp_path / "c")
    run(fresh_db_url, tmp_path / "c", None, 8)
    assert (tmp_path / "c/truth/behaviour.csv").read_bytes() == whole
    late = _behaviour(tmp_path / "c")
    twelfth = start + timedelta(days=11)
    assert all(t["churned_on"] <= str(twelfth) for t in early.values() if t["churned_on"])
    for person, t in late.items():  # the parameters stay; only lapses after day 12 are added
        e = early[person]
        assert {k: t[k] for k in t if k not in SO_FAR} == {k: e[k] for k in e if k not in SO_FAR}
        if e["churned_on"]:
            assert t["churned_on"] == e["churned_on"]
        elif t["churned_on"]:
            assert t["churned_on"] > str(twelfth)
    assert sum(t["is_churned"] == "true" for t in late.values()) > sum(
        t["is_churned"] == "true" for t in early.values()
    )
