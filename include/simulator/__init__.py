"""Source simulator: a Hong Kong beauty and health retailer's source systems, day by day.

It writes what the pipeline reads (contract/sources.yml, docs/sources.md): the online shop's PostgreSQL
tables, and the landing-zone files of the tills, the loyalty programme, the
web tracker, the ticketing system and the privacy office. Two ground-truth
files outside the landing zone say which identifiers belong to the same person
(``identities.csv``, to score identity resolution) and how each person was
generated to behave (``behaviour.csv``, to check that models recover it).

The first call builds a world from ``seed`` and simulates ``days`` days from
``start``; later calls with ``start=None`` continue it, so a nightly demo can
add one day before each pipeline run. Same seed and same calls, same bytes:
simulating 90 days at once equals 60 days and then 30.

What the loaders meet (all within the contract):

- POS: stores at positions 1, 6, 11, 16 of the site list (MK01, TW01, ...) write UTF-8
  with a BOM, CRLF and every field quoted; positions 2, 7, 12, 17 (CWB01, YL01, ...)
  write ``.csv.gz``. A closed store-day (first day of Lunar New Year, rare one-off
  closures) gives an empty file (0 bytes, or an empty gzip member). About 1% of
  store-days have a ``_2`` re-export: ``_1`` lacks the last two hours, ``_2`` is the
  full day; it is written under the original date folder the same day or one or two
  simulated days later. Amounts: a line is worth ``quantity * unit_price - discount``;
  VOID lines keep the scanned quantity and price but are not sales (no money);
  RETURN lines have negative quantity, the net unit price refunded and discount 0.
  Card ``0000000000`` is a dummy keyed in by cashiers; a few SKUs are unknown to the shop.
- Loyalty: the first day's file carries every member who joined before (the initial
  export, ``updated_at`` in the past); later files are deltas.
- Web: 24 files per simulated day (UTC hours 16:00 of the previous UTC date to 15:00);
  ~2% of events land 1-3 hours late (possibly in the next day's files), ~0.5% are sent
  twice; from the 31st simulated day events carry an extra ``consent_mode`` field.
- Complaints and privacy files exist for every day (possibly with no rows).

Ground truth (``ground_truth_dir``, rewritten atomically at the end of every call, for
everything simulated so far; same seed and days, same bytes):

- ``identities.csv``: ``person_id, id_type, id_value``, every identifier a source has seen
  for a person (``shop_customer_id``, ``email``, ``phone``, ``loyalty_card_no``,
  ``anonymous_id``), exactly as the source writes it; junk values belong to nobody.
- ``behaviour.csv``: one row per person of the world (``P000001`` .. , so every person of
  identities.csv and also people no source can name), with the generator's parameters:

  - ``channel``: ``online`` (buys in the web shop only), ``store`` (in stores only), ``both``,
    ``browser`` (browses, never buys).
  - ``online_orders_per_week``: expected web-shop orders per ordinary week (the weekday rhythm
    included; holiday and festival peaks, e.g. 11.11 or the Lunar New Year, come on top),
    while the person has an open shop account and has not lapsed.
  - ``store_visits_per_week``: expected store purchase occasions (receipts) per ordinary week
    before lapsing: regular visits plus visits after browsing online ("research online,
    purchase offline", 30% of a store shopper's browsing sessions).
  - ``purchase_rate_per_week``: the sum of the two (up to rounding); at most two orders and
    two store visits a day are drawn, a cap that hardly ever binds.
  - ``browse_sessions_per_week``: web sessions without a purchase per ordinary week before
    lapsing; a lapsed person still browses, at 30% of it.
  - ``is_churned`` (``true``/``false``) and ``churned_on``: the person has lapsed by the last
    simulated day, and their lapse day, the HK date from which the generator makes them buy
    nothing (empty if they have not lapsed so far). People lapse at a constant hazard, so that
    35% of them lapse within any year (``LAPSE_SHARE_PER_YEAR``), at any time of the world's
    life, as a real customer base loses some customers every month; from that day on the person
    never orders online or visits a store again (visits planned before it are dropped), but
    may still return earlier purchases (``RETURN`` lines carrying their card) and browse. A
    ``churned_on`` equal to the world's first day means no purchase in the simulation at all.
  - ``erased_on``: HK date of the person's erasure request to the privacy office (empty if
    none); from the next day they neither buy nor browse. Not counted in ``is_churned``.
    Online orders also stop for good when a shop account is closed (``deleted_at``).
  - ``home_store``: code of the store of at least 80% of the person's visits while it trades.
  - ``favourite_category`` and ``favourite_category_share``: the category the person picks
    most often, and the share of the items they pick from it (the rest spread over the
    other categories).

  Rates count purchases whether or not a source can tie them to the person: a store receipt
  carries their loyalty card only once they are a member, and then 88% of the time; an online
  order needs a shop account, which some people open during the simulation. There is no
  person-level spend parameter: basket size, quantities and discounts are drawn alike for
  everyone, so spend differs between people only by how often they buy and which categories
  they favour.

Example::

    simulate(shop_url="postgresql://...", landing_dir=Path("landing"),
             ground_truth_dir=Path("truth"), start=date(2026, 1, 1), days=90)
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
from tqdm import tqdm

from include.simulator import shop
from include.simulator.days import simulate_day
from include.simulator.world import State, behaviour, build_world, identities, initial_state
from include.simulator.writers import (
    atomic_write,
    behaviour_bytes,
    day_files,
    identities_bytes,
    write_files,
)

__all__ = ["SimSummary", "simulate"]


@dataclass(frozen=True)
class SimSummary:
    """What one call simulated (counts are for the simulated days only, unless noted)."""

    days: int
    first_day: date
    last_day: date
    world_started: date
    people: int  # the whole world
    shop_customers: int  # shop accounts that exist at the end (whole world so far)
    loyalty_members: int  # members at the end (whole world so far)
    orders: int
    order_items: int
    pos_files: int
    pos_lines: int
    web_events: int
    tickets_created: int
    complaint_versions: int  # ticket versions written to the complaints files
    loyalty_rows: int
    privacy_requests: int
    files_written: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"Simulated {self.days} day(s), {self.first_day} to {self.last_day} "
            f"(world started {self.world_started}) in {self.seconds:.1f} s\n"
            f"  people {self.people:,}, shop customers {self.shop_customers:,}, "
            f"loyalty members {self.loyalty_members:,}\n"
            f"  online orders {self.orders:,} ({self.order_items:,} items), "
            f"POS lines {self.pos_lines:,} in {self.pos_files:,} files, web events {self.web_events:,}\n"
            f"  tickets {self.tickets_created:,} ({self.complaint_versions:,} versions), "
            f"loyalty rows {self.loyalty_rows:,}, privacy requests {self.privacy_requests:,}, "
            f"files written {self.files_written:,}"
        )


def simulate(
    *,
    shop_url: str,
    landing_dir: Path,
    ground_truth_dir: Path,
    start: date | None = None,
    days: int = 90,
    seed: int = 42,
    customers: int = 5000,
    stores: int = 10,
    progress: bool = True,
) -> SimSummary:
    """Simulate ``days`` days into the shop database and the landing folder.

    ``customers`` is the number of people in the world (shoppers online, in
    stores or both, and some who only browse). With no world in the shop
    database yet, ``start`` (the first day) is required. With one, the world
    continues from the day after its last simulated day: ``start`` may be
    omitted or must be that day, and ``seed``, ``customers`` and ``stores``
    must be the values it was built with. Raises ValueError otherwise.

    Writes the landing files of the simulated days, and rewrites
    ``ground_truth_dir/identities.csv`` and ``ground_truth_dir/behaviour.csv`` (the
    module docstring lists their columns) for the whole world as simulated so far.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    started = time.monotonic()
    landing_dir, ground_truth_dir = Path(landing_dir), Path(ground_truth_dir)
    with psycopg.connect(shop_url, autocommit=True) as conn:
        shop.lock(conn)
        shop.ensure_schema(conn)
        loaded = shop.load_state(conn)
        if loaded is None:
            if start is None:
                raise ValueError(
                    "This shop database has no simulated world yet: pass start (the first day to simulate) to build one."
                )
            if shop.shop_has_rows(conn):
                raise ValueError(
                    "The shop database already has customers but no simulator state (sim.state): "
                    "simulate into an empty database."
                )
            meta = dict(seed=seed, customers=customers, stores=stores, first_day=start)
            world = build_world(seed, start, customers, stores)
            state = initial_state(world)
        else:
            meta, state = loaded
            built = (meta["seed"], meta["customers"], meta["stores"])
            if built != (seed, customers, stores):
                raise ValueError(
                    f"This shop database holds a world built with seed={built[0]}, customers={built[1]}, "
                    f"stores={built[2]}; pass the same values to continue it (got seed={seed}, "
                    f"customers={customers}, stores={stores})."
                )
            following = meta["last_day"] + timedelta(days=1)
            if start is not None and start != following:
                raise ValueError(
                    f"The simulated world ends on {meta['last_day']}: it can only continue on {following} "
                    f"(got start={start}). Omit start to continue, or use an empty database for a new world."
                )
            start = following
            world = build_world(meta["seed"], meta["first_day"], meta["customers"], meta["stores"])
        meta = {k: meta[k] for k in ("seed", "customers", "stores", "first_day")}

        totals = dict.fromkeys(
            "orders order_items pos_files pos_lines web_events tickets complaints loyalty privacy files".split(),
            0,
        )
        days_iter = tqdm(
            range(days), desc="simulating", unit="day", file=sys.stderr, disable=not progress
        )
        for offset in days_iter:
            day = start + timedelta(days=offset)
            result = simulate_day(world, state, day)
            doc, arrays = state.dumps()
            files = day_files(world, result)
            write_files(landing_dir, files)  # before the commit: a crash re-writes the same bytes
            shop.write_day(conn, result, doc, arrays, meta)
            state = State.loads(doc, arrays)  # go on from exactly what a later call would load
            totals["orders"] += len(result.orders_new)
            totals["order_items"] += len(result.order_items)
            totals["pos_files"] += len(result.pos_files)
            totals["pos_lines"] += sum(len(f.rows or []) for f in result.pos_files)
            totals["web_events"] += result.web_events
            totals["tickets"] += result.tickets_created
            totals["complaints"] += len(result.complaints)
            totals["loyalty"] += len(result.loyalty)
            totals["privacy"] += len(result.privacy)
            totals["files"] += len(files)

    atomic_write(ground_truth_dir / "identities.csv", identities_bytes(identities(world, state)))
    atomic_write(ground_truth_dir / "behaviour.csv", behaviour_bytes(behaviour(world, state)))
    return SimSummary(
        days=days,
        first_day=start,
        last_day=start + timedelta(days=days - 1),
        world_started=meta["first_day"],
        people=world.n,
        shop_customers=int((state.customer_id > 0).sum()),
        loyalty_members=int(state.member.sum()),
        orders=totals["orders"],
        order_items=totals["order_items"],
        pos_files=totals["pos_files"],
        pos_lines=totals["pos_lines"],
        web_events=totals["web_events"],
        tickets_created=totals["tickets"],
        complaint_versions=totals["complaints"],
        loyalty_rows=totals["loyalty"],
        privacy_requests=totals["privacy"],
        files_written=totals["files"] + 2,
        seconds=time.monotonic() - started,
    )
