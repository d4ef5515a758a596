"""One simulated day: what people do, and what each source system records about it.

:func:`simulate_day` advances the :class:`~include.simulator.world.State` by
one Hong Kong calendar day and returns a :class:`DayResult` holding the rows
for the shop database and the records for that day's landing files. It does
no I/O itself, so the same code serves the first call and every continuation.

Randomness comes from generators keyed by (seed, day, purpose): a day's
activity depends only on the state at its start and those keys, never on the
wall clock or on how many days one call simulates. Times are epoch seconds
internally; the shop gets Hong Kong ``timestamptz`` values, the tills and the
loyalty system local time, the tracker and the ticketing system UTC.

Things that happen later because of what happened today (an order is shipped
two days after it was paid, a ticket is answered the next morning, a sale is
returned next week, a shopper who browsed online walks into a store) are
scheduled as events in ``State.queue`` under the day they happen.
"""

from __future__ import annotations

import heapq
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import quote_plus

import numpy as np

from include.simulator import calendar as cal
from include.simulator import reference as ref
from include.simulator.calendar import hk_day, local_s, midnight, to_dt, utc_ms, utc_s
from include.simulator.world import (
    BOTH,
    BROWSE_AFTER_LAPSE,
    DEFECT_DAYS,
    DEFECT_PERIOD,
    DEFECT_START,
    ROPO_VISIT,
    STORE,
    TIER_NAMES,
    TIER_SPEND_CENTS,
    TRACKER_UPGRADE_OFFSET,
    State,
    World,
    day_rng,
)

# purposes, for per-day random streams
R_REFERENCE, R_PEOPLE, R_ONLINE, R_BROWSE, R_STORES = 1, 2, 3, 4, 5
R_PRIVACY, R_COMPLAINTS, R_EVENTS, R_WEB = 6, 7, 8, 9

# relative activity per local hour 0..23 (online sessions start by 22:59, so they end the same day)
ONLINE_HOURS = np.array([
    0.5, 0.3, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.0, 1.0, 1.1,
    1.4, 1.3, 1.0, 1.0, 1.0, 1.1, 1.2, 1.4, 1.8, 2.0, 1.8, 0.0,
])  # fmt: skip
STORE_HOURS = np.array([
    0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.5, 0.6, 0.8,
    1.2, 1.4, 1.0, 0.9, 0.9, 1.1, 1.4, 1.5, 1.3, 0.9, 0.5, 0.3,
])  # fmt: skip
WALKINS_PER_STORE = 24  # anonymous receipts per store on an average day (before the size factor)


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass
class PosFile:
    business_date: date
    store: int
    seq: int
    rows: list[list[str]] | None  # None: the store was closed, the file is empty


@dataclass
class DayResult:
    """Everything the source systems record on one day."""

    day: date
    products_new: list[tuple] = field(default_factory=list)
    products_changed: list[tuple] = field(default_factory=list)
    customers_new: list[tuple] = field(default_factory=list)
    customers_changed: list[tuple] = field(default_factory=list)
    orders_new: dict[int, list] = field(default_factory=dict)
    order_items: list[tuple] = field(default_factory=list)
    orders_changed: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    status_history: list[tuple] = field(default_factory=list)
    stores_csv: list[list[str]] | None = None
    pos_files: list[PosFile] = field(default_factory=list)
    loyalty: list[list[str]] = field(default_factory=list)
    web: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (UTC date, hour) -> lines
    complaints: list[dict] = field(default_factory=list)
    privacy: list[list[str]] = field(default_factory=list)
    web_events: int = 0  # distinct events that happened today
    tickets_created: int = 0


def simulate_day(world: World, state: State, day: date) -> DayResult:
    return _Day(world, state, day).run()


class _Day:
    def __init__(self, world: World, state: State, day: date):
        self.w, self.s, self.day = world, state, day
        self.k = world.offset(day)
        self.t0 = midnight(day)
        self.out = DayResult(day)
        self.heap: list[tuple[int, int, dict]] = []
        self.pushed = 0  # tie-breaker: events at the same second run in the order scheduled
        self.store_events: list[dict] = []
        self.late_files: list[dict] = []
        self.carried_web: list[dict] = []
        for ev in state.queue.pop(day.isoformat(), []):
            kind = ev["k"]
            if kind in ("visit", "return"):
                self.store_events.append(ev)
            elif kind == "pos_file":
                self.late_files.append(ev)
            elif kind == "web":
                self.carried_web.append(ev)
            else:
                self._push(ev)
        self.cookies_of: dict[int, list[int]] = defaultdict(list)
        for idx, (owner, *_rest) in enumerate(state.cookies):
            self.cookies_of[owner].append(idx)
        self.new_customers: list[int] = []
        self.touched_customers: dict[int, int] = {}
        self.touched_members: dict[int, int] = {}
        self.touched_tickets: dict[str, None] = {}
        self.web_events: list[tuple[int, dict]] = []  # (epoch ms, event without event_id)
        self.defect = world.defect(self.k)

    def rng(self, purpose: int) -> np.random.Generator:
        return day_rng(self.w.seed, self.day.toordinal(), purpose)

    def at(self, seconds: float) -> int:
        return self.t0 + int(seconds)

    # -- scheduling ---------------------------------------------------------------------------
    def schedule(self, ev: dict) -> None:
        """Run ``ev`` at its time ``t``: later today, or on a later day (kept in the state)."""
        when = hk_day(ev["t"])
        if when < self.day:
            raise AssertionError(f"event scheduled in the past: {ev}")
        if when == self.day:
            if ev["k"] in ("visit", "return", "pos_file", "web"):
                raise AssertionError(f"{ev['k']} events must be scheduled on a later day")
            self._push(ev)
        else:
            self.s.queue.setdefault(when.isoformat(), []).append(ev)

    def _push(self, ev: dict) -> None:
        self.pushed += 1
        heapq.heappush(self.heap, (ev["t"], self.pushed, ev))

    # -- the day ------------------------------------------------------------------------------
    def run(self) -> DayResult:
        self.reference()
        self.buyable = self._buyable()
        self.people()
        self.online()
        self.browsing()
        self.stores()
        self.privacy()
        self.complaints()
        self.process_events()
        self.finish()
        return self.out

    # -- reference data: stores and products ---------------------------------------------------
    def reference(self) -> None:
        w, s, k, rng = self.w, self.s, self.k, self.rng(R_REFERENCE)
        if k == 0 or any(st.opened_on == self.day or st.closed_on == self.day for st in w.stores):
            self.out.stores_csv = [
                [
                    st.code,
                    st.name,
                    st.district,
                    st.region,
                    st.opened_on.isoformat(),
                    st.closed_on.isoformat() if st.closed_on and st.closed_on <= self.day else "",
                ]
                for st in w.stores
                if st.listed(self.day)
            ]
        if k == 0:
            self.out.products_new += [
                self._product_row(p) for p in np.flatnonzero(w.launch_offset <= 0)
            ]
            existing = np.flatnonzero(s.customer_id > 0)
            for i in existing[np.argsort(s.customer_id[existing])]:
                self.out.customers_new.append(
                    self._customer_row(i, int(max(s.created_t[i], s.deleted_t[i])))
                )
        for p in np.flatnonzero(w.launch_offset == k):
            s.product_t[p] = self.at(rng.integers(9 * 3600, 11 * 3600))
            self.out.products_new.append(self._product_row(p))
        changed: list[int] = []
        if rng.random() < 0.15:  # a few price changes
            live = np.flatnonzero((w.launch_offset < k) & s.active)
            for p in rng.choice(live, size=int(rng.integers(1, 4)), replace=False):
                dollars = s.price[p] / 100 * rng.uniform(0.85, 1.12)
                s.price[p] = max(int(round(dollars / 10)) * 1000 - 10, 1990)
                changed.append(int(p))
        quarter, pos = divmod(k, DEFECT_PERIOD)
        if pos in (
            DEFECT_START + DEFECT_DAYS,
            DEFECT_START + DEFECT_DAYS + 14,
        ):  # recall, then back
            batch = self.w.defect(quarter * DEFECT_PERIOD + DEFECT_START)
            s.active[batch[0]] = pos != DEFECT_START + DEFECT_DAYS
            changed.append(batch[0])
        for p in dict.fromkeys(changed):
            s.product_t[p] = self.at(rng.integers(8 * 3600, 10 * 3600))
            if w.launch_offset[p] < k:
                self.out.products_changed.append(self._product_row(p))

    def _product_row(self, p: int) -> tuple:
        w, s = self.w, self.s
        return (
            w.sku[p],
            w.product_name[p],
            ref.CATEGORY_NAMES[w.category[p]],
            w.subcategory[p],
            w.brand[p],
            money(int(s.price[p])),
            bool(s.active[p]),
            to_dt(int(s.product_t[p])),
        )

    def _buyable(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per category: the products on sale today and their cumulative popularity."""
        w, s = self.w, self.s
        out = []
        for c in range(len(ref.CATEGORY_NAMES)):
            idx = np.flatnonzero((w.category == c) & (w.launch_offset <= self.k) & s.active)
            cum = np.cumsum(w.popularity[idx])
            out.append((idx, cum / cum[-1]))
        return out

    def pick_products(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        """One product per entry of ``owners`` (a person, or -1 for an anonymous shopper)."""
        owners = np.asarray(owners, dtype=np.int64)
        u = rng.random(len(owners))
        cats = np.empty(len(owners), dtype=np.int64)
        known = owners >= 0
        cats[known] = (self.w.affinity_cum[owners[known]] < u[known, None]).sum(1)
        cats[~known] = np.searchsorted(self.w.category_cum, u[~known])
        cats = np.minimum(cats, len(ref.CATEGORY_NAMES) - 1)
        u2 = rng.random(len(owners))
        out = np.empty(len(owners), dtype=np.int64)
        for c in np.unique(cats):
            sel = cats == c
            idx, cum = self.buyable[c]
            out[sel] = idx[np.minimum(np.searchsorted(cum, u2[sel]), len(idx) - 1)]
        return out

    # -- people: sign-ups, new members, changed details ------------------------------------------
    def people(self) -> None:
        w, s, k, rng = self.w, self.s, self.k, self.rng(R_PEOPLE)
        alive = ~s.gone
        for i in np.flatnonzero((w.account_offset == k) & alive):
            t = self.at(rng.integers(8 * 3600, 22 * 3600))
            s.customer_id[i] = s.counters["customer_id"]
            s.counters["customer_id"] += 1
            s.account[i], s.created_t[i] = 1, t
            self.new_customers.append(int(i))
            self.signup_session(rng, int(i), t)
        for i in np.flatnonzero((w.member_offset == k) & alive):
            store = w.stores[w.home_store[i]]
            t = self.at(rng.integers(store.open_hour * 3600, store.close_hour * 3600 - 600))
            s.member[i], s.joined_t[i], s.tier[i], s.spend[i] = True, t, 0, 0
            self.touched_members[int(i)] = t
        n = w.n
        movers = np.flatnonzero(alive & ((s.account == 1) | s.member) & (rng.random(n) < 0.0004))
        for i in movers:
            t = self.at(rng.integers(9 * 3600, 23 * 3600))
            new = int(
                (s.shop_district[i] + rng.integers(1, len(ref.DISTRICTS))) % len(ref.DISTRICTS)
            )
            if s.account[i] == 1:
                s.shop_district[i] = new
                self.touch_customer(i, t)
            if s.member[i] and rng.random() < 0.6:  # not everyone tells both systems
                s.member_district[i] = new
                self.touch_member(i, t + int(rng.integers(0, 1800)))
        for i in np.flatnonzero(alive & (s.account == 1) & (rng.random(n) < 0.0006)):
            s.shop_opt[i] = not s.shop_opt[i]
            self.touch_customer(i, self.at(rng.integers(8 * 3600, 23 * 3600)))
        for i in np.flatnonzero(alive & s.member & (rng.random(n) < 0.0004)):
            s.member_opt[i] = not s.member_opt[i]
            self.touch_member(i, self.at(rng.integers(10 * 3600, 21 * 3600)))
        for i in np.flatnonzero(alive & (s.account == 1) & (rng.random(n) < 0.00015)):
            t = self.at(rng.integers(8 * 3600, 23 * 3600))
            s.account[i], s.deleted_t[i] = 2, t
            self.touch_customer(i, t)

    def touch_customer(self, i, t: int) -> None:
        self.touched_customers[int(i)] = max(t, self.touched_customers.get(int(i), 0))

    def touch_member(self, i, t: int) -> None:
        self.touched_members[int(i)] = max(t, self.touched_members.get(int(i), 0))

    def _customer_row(self, i: int, updated: int) -> tuple:
        w, s = self.w, self.s
        return (
            int(s.customer_id[i]),
            w.email_shop[i],
            w.phone_shop[i],
            w.shop_name[i],
            w.dob[i],
            ref.DISTRICT_NAMES[s.shop_district[i]],
            bool(s.shop_opt[i]),
            to_dt(int(s.created_t[i])),
            to_dt(updated),
            to_dt(int(s.deleted_t[i])) if s.deleted_t[i] else None,
        )

    def _member_row(self, i: int, updated: int) -> list[str]:
        w, s = self.w, self.s
        return [
            w.card_no[i],
            w.member_name[i],
            w.phone_member[i],
            w.email_member[i],
            ref.DISTRICT_NAMES[s.member_district[i]],
            TIER_NAMES[s.tier[i]],
            hk_day(int(s.joined_t[i])).isoformat(),
            "Y" if s.member_opt[i] else "N",
            local_s(updated),
        ]

    # -- web sessions -------------------------------------------------------------------------
    def cookie(self, rng: np.random.Generator, i: int) -> list:
        """The tracker cookie a person browses with; now and then a new device or cleared cookies."""
        mine = self.cookies_of[i]
        if not mine or rng.random() < 0.03:
            device = int(self.w.device[i]) if not mine else int(rng.choice(3, p=[0.3, 0.6, 0.1]))
            raw = rng.integers(0, 256, 16, dtype=np.uint8)
            self.s.cookies.append([i, _uuid_from(raw), device, False])
            mine.append(len(self.s.cookies) - 1)
            return self.s.cookies[mine[-1]]
        return self.s.cookies[mine[0] if rng.random() < 0.75 else int(rng.choice(mine))]

    def _session(self, rng: np.random.Generator, i: int, t: int):
        """Start a session: returns an ``emit(event_type, seconds_later, **fields)`` function."""
        c = self.cookie(rng, i)
        device = ref.DEVICES[c[2]]
        agents = ref.USER_AGENTS[device]
        agent = agents[(int(self.w.home_ip[i].split(".")[1]) + c[2]) % len(agents)]
        ip = self.w.home_ip[i]
        if device == "mobile" and rng.random() < 0.5:  # on the carrier's network
            ip = f"1.{int(rng.integers(36, 80))}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
        session_id = rng.integers(0, 2**63, dtype=np.int64).item().to_bytes(8, "big").hex()
        utm = (None, None, None)
        referrer = str(rng.choice(ref.ORGANIC_REFERRERS))
        if rng.random() < 0.3:
            source, medium, referrer = ref.CAMPAIGN_SOURCES[
                int(rng.integers(0, len(ref.CAMPAIGN_SOURCES)))
            ]
            utm = (source, medium, cal.campaign(self.day))
        logged_in = bool(c[3]) and self.s.account[i] == 1
        st = {"t_ms": t * 1000, "ref": referrer, "first": True, "cid": logged_in}

        def emit(kind: str, gap: float, url: str, sku=None, query=None, order_id=None) -> int:
            st["t_ms"] += int(gap) * 1000 + int(rng.integers(0, 1000))
            if kind in ("login", "signup"):
                st["cid"] = True
                c[3] = bool(rng.random() < 0.7)  # "remember me"
            first = st["first"]
            self.web_events.append(
                (
                    st["t_ms"],
                    {
                        "event_type": kind,
                        "anonymous_id": c[1],
                        "customer_id": int(self.s.customer_id[i]) if st["cid"] else None,
                        "session_id": session_id,
                        "page_url": url,
                        "referrer": st["ref"],
                        "sku": sku,
                        "search_query": query,
                        "order_id": order_id,
                        "utm_source": utm[0] if first else None,
                        "utm_medium": utm[1] if first else None,
                        "utm_campaign": utm[2] if first else None,
                        "device_type": device,
                        "ip": ip,
                        "user_agent": agent,
                    },
                )
            )
            st["first"], st["ref"] = False, url
            return st["t_ms"] // 1000

        return emit, st

    def signup_session(self, rng: np.random.Generator, i: int, t: int) -> None:
        emit, _ = self._session(rng, i, t - 150)
        emit("page_view", 0, f"{ref.SITE}/")
        emit("page_view", 40, f"{ref.SITE}/account/signup")
        emit("signup", 110, f"{ref.SITE}/account/signup")

    def browse_session(
        self, rng: np.random.Generator, i: int, t: int, products: np.ndarray
    ) -> list[int]:
        """A visit without a purchase; returns the products viewed."""
        emit, st = self._session(rng, i, t)
        emit("page_view", 0, f"{ref.SITE}/")
        if rng.random() < 0.45:
            q = str(rng.choice(ref.SEARCH_TERMS))
            emit("search", rng.integers(5, 40), f"{ref.SITE}/search?q={quote_plus(q)}", query=q)
        viewed = []
        for p in products:
            sku = self.w.sku[p]
            emit("product_view", rng.integers(8, 120), f"{ref.SITE}/p/{sku}", sku=sku)
            viewed.append(int(p))
            if not st["cid"] and self.s.account[i] == 1 and rng.random() < 0.08:
                emit("login", rng.integers(10, 60), f"{ref.SITE}/account/login")
        if viewed and rng.random() < 0.25:
            sku = self.w.sku[viewed[-1]]
            emit("add_to_cart", rng.integers(5, 60), f"{ref.SITE}/p/{sku}", sku=sku)
            if rng.random() < 0.3:
                emit("remove_from_cart", rng.integers(10, 90), f"{ref.SITE}/cart", sku=sku)
            elif rng.random() < 0.3:
                emit("checkout_start", rng.integers(10, 90), f"{ref.SITE}/checkout")
        return viewed

    def purchase_session(
        self, rng: np.random.Generator, i: int, t: int, products: list[int], order_id: int
    ) -> int:
        """Browse, fill the cart, log in if needed, pay; returns the time of the purchase."""
        emit, st = self._session(rng, i, t)
        emit("page_view", 0, f"{ref.SITE}/")
        if rng.random() < 0.4:
            q = str(rng.choice(ref.SEARCH_TERMS))
            emit("search", rng.integers(5, 40), f"{ref.SITE}/search?q={quote_plus(q)}", query=q)
        for p in products:
            sku = self.w.sku[p]
            emit("product_view", rng.integers(8, 120), f"{ref.SITE}/p/{sku}", sku=sku)
            emit("add_to_cart", rng.integers(5, 60), f"{ref.SITE}/p/{sku}", sku=sku)
        if not st["cid"]:
            emit("login", rng.integers(10, 60), f"{ref.SITE}/account/login")
        emit("checkout_start", rng.integers(10, 60), f"{ref.SITE}/checkout")
        return emit(
            "purchase", rng.integers(30, 200), f"{ref.SITE}/checkout/complete", order_id=order_id
        )

    # -- online orders ------------------------------------------------------------------------
    def online(self) -> None:
        w, s, k, rng = self.w, self.s, self.k, self.rng(R_ONLINE)
        eligible = (s.account == 1) & ~s.gone & (w.lapse_offset > k)
        counts = np.minimum(rng.poisson(w.rate_online * cal.online_factor(self.day) * eligible), 2)
        buyers = np.repeat(np.arange(w.n), counts)
        n_lines = np.minimum(1 + rng.poisson(0.7, len(buyers)), 6)
        products = self.pick_products(rng, np.repeat(buyers, n_lines))
        starts = rng.choice(24, size=len(buyers), p=ONLINE_HOURS / ONLINE_HOURS.sum()) * 3600
        starts += rng.integers(0, 3000, len(buyers))
        festival = cal.campaign(self.day) != "always_on"
        pos = 0
        for j, i in enumerate(buyers):
            items = list(dict.fromkeys(int(p) for p in products[pos : pos + n_lines[j]]))
            pos += n_lines[j]
            order_id = s.counters["order_id"]
            s.counters["order_id"] += 1
            t = self.purchase_session(rng, int(i), self.at(starts[j]), items, order_id)
            subtotal = discounts = 0
            for line_no, p in enumerate(items, start=1):
                qty = int(rng.choice([1, 2, 3], p=[0.85, 0.12, 0.03]))
                price = int(s.price[p])
                pct = int(rng.choice([10, 20])) if rng.random() < (0.3 if festival else 0.12) else 0
                disc = round(qty * price * pct / 10000) * 100
                subtotal += qty * price
                discounts += disc
                self.out.order_items.append(
                    (order_id, line_no, w.sku[p], qty, money(price), money(disc))
                )
            net = subtotal - discounts
            coupon = 5000 if net >= 50000 and rng.random() < (0.4 if festival else 0.1) else 0
            shipping = 0 if net - coupon >= 30000 else 3000
            district = (
                s.shop_district[i] if rng.random() < 0.9 else rng.integers(0, len(ref.DISTRICTS))
            )
            pay = (
                ref.SHOP_PAYMENT[w.shop_pay[i]]
                if rng.random() < 0.8
                else str(rng.choice(ref.SHOP_PAYMENT))
            )
            placed = to_dt(t)
            self.out.orders_new[order_id] = [
                order_id,
                int(s.customer_id[i]),
                placed,
                "placed",
                pay,
                ref.DISTRICT_NAMES[district],
                money(shipping),
                money(coupon),
                "HKD",
                placed,
            ]
            self.out.status_history.append((order_id, "placed", placed))
            self.order_lifecycle(rng, int(i), order_id, t, items)

    def order_lifecycle(
        self, rng: np.random.Generator, i: int, order_id: int, t: int, items: list[int]
    ) -> None:
        def status(name: str, when: int) -> None:
            self.schedule({"k": "status", "t": int(when), "order": order_id, "status": name})

        u = rng.random()
        if u < 0.03:  # never paid
            status("cancelled", t + rng.integers(2 * 3600, 20 * 3600))
            return
        paid = t + int(rng.integers(60, 900))
        status("paid", paid)
        if u < 0.05:  # cancelled by the customer before shipping
            status("cancelled", paid + rng.integers(3600, 10 * 3600))
            return
        ship_day = hk_day(paid) + timedelta(days=1 if (paid - self.t0) < 18 * 3600 else 2)
        ship_t = midnight(ship_day) + int(rng.integers(9 * 3600, 18 * 3600))
        transit = 1 + int(rng.poisson(0.6))
        late = rng.random() < 0.07
        if late:
            transit += int(rng.integers(3, 8))
        delivered = ship_t + transit * 86400 + int(rng.integers(1 * 3600, 8 * 3600))
        status("shipped", ship_t)
        status("delivered", delivered)
        if late and rng.random() < 0.45:
            when = midnight(ship_day + timedelta(days=3)) + int(rng.integers(9 * 3600, 22 * 3600))
            self.ticket_later(i, when, "delivery", str(order_id), items[0])
        faulty = self.defect is not None and self.defect[0] in items
        if faulty and rng.random() < 0.25:
            self.ticket_later(
                i,
                delivered + int(rng.integers(2 * 3600, 72 * 3600)),
                "product_quality",
                str(order_id),
                self.defect[0],
            )
        if rng.random() < (0.3 if faulty else 0.03):
            returned = delivered + int(rng.integers(2 * 86400, 10 * 86400))
            status("returned", returned)
            if rng.random() < 0.15:
                self.ticket_later(i, returned + 3 * 86400, "returns", str(order_id), items[0])

    # -- browsing -----------------------------------------------------------------------------
    def browsing(self) -> None:
        w, s, k, rng = self.w, self.s, self.k, self.rng(R_BROWSE)
        lapsed = w.lapse_offset <= k
        lam = (
            w.rate_browse
            * cal.online_factor(self.day)
            * np.where(lapsed, BROWSE_AFTER_LAPSE, 1.0)
            * ~s.gone
        )
        counts = np.minimum(rng.poisson(lam), 3)
        people = np.repeat(np.arange(w.n), counts)
        n_views = np.minimum(1 + rng.poisson(1.5, len(people)), 6)
        products = self.pick_products(rng, np.repeat(people, n_views))
        starts = rng.choice(24, size=len(people), p=ONLINE_HOURS / ONLINE_HOURS.sum()) * 3600
        starts += rng.integers(0, 3000, len(people))
        pos = 0
        for j, i in enumerate(people):
            viewed = self.browse_session(
                rng, int(i), self.at(starts[j]), products[pos : pos + n_views[j]]
            )
            pos += n_views[j]
            # ROPO: research online, purchase offline, within a few days
            if w.channel[i] in (STORE, BOTH) and not lapsed[i] and rng.random() < ROPO_VISIT:
                when = midnight(self.day + timedelta(days=int(rng.integers(1, 6))))
                self.schedule({"k": "visit", "t": when, "person": int(i), "products": viewed[:2]})

    # -- stores -------------------------------------------------------------------------------
    def stores(self) -> None:
        w, s, k, rng = self.w, self.s, self.k, self.rng(R_STORES)
        factor = cal.store_factor(self.day)
        trading = [j for j, st in enumerate(w.stores) if st.trading(self.day)]
        closed = {j for j in trading if cal.stores_closed(self.day) or rng.random() < 0.002}
        open_ = [j for j in trading if j not in closed]
        for j in sorted(closed):
            self.out.pos_files.append(PosFile(self.day, j, 1, None))
        if not open_:
            for ev in self.store_events:  # returns wait for the stores to reopen
                if ev["k"] == "return":
                    self.schedule({**ev, "t": ev["t"] + 86400})
            return

        # who comes in: regulars, people who researched online, returns, anonymous walk-ins
        eligible = np.isin(w.channel, [STORE, BOTH]) & ~s.gone & (w.lapse_offset > k)
        counts = np.minimum(rng.poisson(w.rate_store * factor * eligible), 2)
        visitors = list(np.repeat(np.arange(w.n), counts))
        planned: list[list[int]] = [[] for _ in visitors]
        returns = []
        for ev in self.store_events:
            if ev["k"] == "visit" and not s.gone[ev["person"]]:
                visitors.append(ev["person"])
                planned.append(ev["products"])
            elif ev["k"] == "return":
                returns.append(ev)
        walkins = [
            j
            for j in open_
            for _ in range(rng.poisson(WALKINS_PER_STORE * w.stores[j].size * factor))
        ]
        people = np.array(visitors + [-1] * len(walkins), dtype=np.int64)
        m = len(people)
        n_lines = np.minimum(1 + rng.poisson(1.1, m), 8)
        products = self.pick_products(rng, np.repeat(people, n_lines))
        # drawn up front for speed: per line, then per receipt
        qty = np.where(rng.random(len(products)) < 0.88, 1, 2)
        pct = np.where(rng.random(len(products)) < 0.12, rng.choice([10, 20, 30], len(products)), 0)
        unknown = np.where(rng.random(len(products)) < 0.004, rng.integers(0, 3, len(products)), -1)
        void = np.where(rng.random(m) < 0.03, self.pick_products(rng, people), -1)
        u_store, u_other, u_hour, u_void, u_card, u_pay = rng.random((6, m))
        second = rng.integers(0, 3600, m)
        any_pay = rng.choice(len(ref.POS_PAYMENT), m, p=ref.POS_PAYMENT_WEIGHTS)
        shift_staff = rng.integers(0, 3, m)
        hour_cum = {}
        for j in open_:
            st = w.stores[j]
            hours = STORE_HOURS[st.open_hour : st.close_hour]
            hour_cum[j] = np.cumsum(hours) / hours.sum()

        receipts: dict[int, list[dict]] = {j: [] for j in open_}
        ends = np.cumsum(n_lines)
        for r, i in enumerate(people.tolist()):
            span = range(ends[r] - n_lines[r], ends[r])
            if i >= 0:
                home, alt = int(w.home_store[i]), int(w.alt_store[i])
                store = home if u_store[r] < 0.8 else alt
                if store not in receipts:
                    store = home if home in receipts else open_[int(u_other[r] * len(open_))]
            else:
                store = walkins[r - len(visitors)]
            st = w.stores[store]
            hour = st.open_hour + int(np.searchsorted(hour_cum[store], u_hour[r]))
            t = self.at(hour * 3600 + int(second[r]))
            lines = []
            if r < len(planned) and planned[r]:  # came for what they looked at online
                for p in planned[r]:
                    if s.active[p]:
                        lines.append(["SALE", w.sku[p], 1, int(s.price[p]), 0, p])
                span = span[:-1]
            for x in span:
                p, q, price = int(products[x]), int(qty[x]), int(s.price[products[x]])
                sku = w.sku[p]
                if unknown[x] >= 0:  # a code the shop does not know
                    sku, price = ref.UNKNOWN_SKUS[unknown[x]]
                lines.append(
                    ["SALE", sku, q, price, round(q * price * int(pct[x]) / 10000) * 100, p]
                )
            if void[r] >= 0:
                # VOID: an item scanned then cancelled before payment. The line keeps the
                # quantity, unit price and discount as scanned but carries no money: there is
                # no SALE line for it, so revenue is the sum over SALE and RETURN lines only.
                p = int(void[r])
                line = ["VOID", w.sku[p], 1, int(s.price[p]), 0, p]
                lines.insert(int(u_void[r] * (len(lines) + 1)), line)
            card = ""
            if i >= 0 and s.member[i] and u_card[r] < 0.88:
                card = w.card_no[i]
            elif u_card[r] > 0.997:  # the cashier keyed in a dummy card
                card = ref.JUNK_CARD
            pay_idx = w.pos_pay[i] if i >= 0 and u_pay[r] < 0.75 else any_pay[r]
            receipts[store].append(
                {
                    "t": t,
                    "person": i,
                    "lines": lines,
                    "pay": ref.POS_PAYMENT[pay_idx],
                    "card": card,
                    "staff": st.staff[int(shift_staff[r]) + (3 if hour >= 16 else 0)],
                    # A visit planned online before the person lapsed does not happen once they
                    # have: store_day drops the receipt (and any return or complaint it would
                    # lead to) but still makes its random draws, so that nothing else changes.
                    "dropped": i >= 0 and bool(w.lapse_offset[i] <= k),
                }
            )

        for ev in returns:
            store = ev["store"] if ev["store"] in receipts else int(rng.choice(open_))
            st = w.stores[store]
            t = self.at(rng.integers(st.open_hour * 3600 + 1800, st.close_hour * 3600 - 600))
            lines = [["RETURN", w.sku[ev["product"]], -ev["qty"], ev["unit"], 0, ev["product"]]]
            receipts[store].append(
                {
                    "t": t,
                    "person": ev["person"],
                    "lines": lines,
                    "pay": ev["pay"],
                    "card": ev["card"],
                    "staff": st.staff[0],
                    "dropped": ev.get("dropped", False),  # of a receipt that was dropped
                }
            )

        for j in open_:
            self.store_day(rng, j, receipts[j])

    def store_day(self, rng: np.random.Generator, j: int, receipts: list[dict]) -> None:
        """Number the store's receipts, write its export, schedule returns and complaints."""
        w, s = self.w, self.s
        st = w.stores[j]
        receipts.sort(key=lambda r: r["t"])
        stamp = self.day.strftime("%Y%m%d")
        rows: list[list[str]] = []
        n = 0
        for rc in receipts:
            kept = not rc.get("dropped")
            n += kept
            rc["no"] = f"{st.code}-{stamp}-{n:06d}"
            ts = local_s(rc["t"])
            lines = rc["lines"] if kept else []
            for line_no, (kind, sku, qty, price, disc, _p) in enumerate(lines, start=1):
                rows.append(
                    [
                        rc["no"],
                        st.code,
                        ts,
                        kind,
                        str(line_no),
                        sku,
                        str(qty),
                        money(price),
                        money(disc),
                        rc["pay"],
                        rc["card"],
                        rc["staff"],
                    ]
                )
            i = rc["person"]
            if i < 0:
                continue
            if kept and rc["card"] == w.card_no[i] and rc["card"]:
                net = sum(q * pr - d for kind, _s, q, pr, d, _p in rc["lines"] if kind != "VOID")
                s.spend[i] = max(0, s.spend[i] + net)
                if self._tier_up(i):
                    self.touch_member(i, rc["t"] + 60)
            for kind, sku, qty, price, disc, p in rc["lines"]:
                if kind != "SALE" or sku != w.sku[p]:
                    continue
                faulty = self.defect is not None and p == self.defect[0]
                if faulty and rng.random() < 0.2:
                    when = rc["t"] + int(rng.integers(1, 6)) * 86400
                    if kept:
                        self.ticket_later(i, when, "product_quality", rc["no"], p, channel="store")
                if rng.random() < (0.3 if faulty else 0.015):
                    when = midnight(self.day + timedelta(days=int(rng.integers(1, 15))))
                    unit = price - disc // qty
                    ev = {
                        "k": "return",
                        "t": when,
                        "person": i,
                        "store": j,
                        "product": p,
                        "qty": 1,
                        "unit": unit,
                        "pay": rc["pay"],
                        "card": rc["card"],
                    }
                    # the return of a dropped receipt is dropped too, its draws made all the same
                    self.schedule(ev if kept else {**ev, "dropped": True})
        cutoff = self.at((st.close_hour - 2) * 3600)
        if rows and rng.random() < 0.012:
            # The till exported before closing: seq 1 lacks the last receipts; the full file is
            # re-exported as seq 2 under the same date folder, the same day or a day or two later.
            early = [r for r in rows if r[2] < local_s(cutoff)]
            self.out.pos_files.append(PosFile(self.day, j, 1, early))
            delay = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
            if delay == 0:
                self.out.pos_files.append(PosFile(self.day, j, 2, rows))
            else:
                when = midnight(self.day + timedelta(days=delay))
                self.schedule(
                    {
                        "k": "pos_file",
                        "t": when,
                        "date": self.day.isoformat(),
                        "store": j,
                        "seq": 2,
                        "rows": rows,
                    }
                )
        else:
            self.out.pos_files.append(PosFile(self.day, j, 1, rows))

    def _tier_up(self, i: int) -> bool:
        tier = int(np.searchsorted(TIER_SPEND_CENTS, self.s.spend[i], side="right") - 1)
        if tier > self.s.tier[i]:
            self.s.tier[i] = tier
            return True
        return False

    # -- privacy requests ---------------------------------------------------------------------
    def privacy(self) -> None:
        w, s, rng = self.w, self.s, self.rng(R_PRIVACY)
        known = np.flatnonzero(~s.gone & ((s.account > 0) | s.member))
        for _ in range(rng.poisson(w.n * 0.00012) if len(known) else 0):
            i = int(rng.choice(known))
            kind = str(rng.choice(["opt_out_marketing", "access", "erasure"], p=[0.7, 0.2, 0.1]))
            t = self.at(rng.integers(8 * 3600, 22 * 3600))
            email, phone, card = self.contact(rng, i, junk=False)
            request_id = f"PR-{s.counters['privacy']:06d}"
            s.counters["privacy"] += 1
            self.out.privacy.append(
                [request_id, utc_s(t), kind, email or "", phone or "", card or ""]
            )
            if kind == "opt_out_marketing":
                if s.account[i] == 1 and s.shop_opt[i] and rng.random() < 0.5:
                    s.shop_opt[i] = False  # also unticked the box in the account
                    self.touch_customer(i, t + int(rng.integers(60, 3600)))
            elif kind == "erasure":
                s.gone[i], s.erased_t[i] = True, t
                if s.account[i] == 1:
                    s.account[i], s.deleted_t[i] = 2, t + int(rng.integers(60, 3600))
                    self.touch_customer(i, int(s.deleted_t[i]))
            if rng.random() < 0.1:
                self.ticket_later(i, t + 600, "privacy", None, None, channel="email")

    def contact(
        self, rng: np.random.Generator, i: int, junk: bool
    ) -> tuple[str | None, str | None, str | None]:
        """Email, phone and card someone gives in a form: some of what they are known by."""
        w, s = self.w, self.s
        emails = [w.email_shop[i]] if s.account[i] else []
        phones = (
            [w.phone_shop[i]] if s.account[i] and w.phone_shop[i] not in ref.JUNK_PHONES else []
        )
        if s.member[i]:
            if w.email_member[i] and w.email_member[i] not in ref.JUNK_EMAILS:
                emails.append(w.email_member[i])
            if w.phone_member[i] not in ref.JUNK_PHONES:
                phones.append(w.phone_member[i])
        email = (
            emails[int(rng.integers(0, len(emails)))] if emails and rng.random() < 0.85 else None
        )
        phone = (
            phones[int(rng.integers(0, len(phones)))]
            if phones and (email is None or rng.random() < 0.5)
            else None
        )
        card = (
            w.card_no[i] if s.member[i] and (rng.random() < 0.4 or not (email or phone)) else None
        )
        if junk and rng.random() < 0.04:
            email = str(rng.choice(ref.JUNK_EMAILS))
        if not (email or phone or card):
            email = w.email_shop[i]  # only shop customers lack both a usable phone and a card
        return email, phone, card

    # -- complaints ---------------------------------------------------------------------------
    def complaints(self) -> None:
        """Complaints not caused by a simulated event: service, billing, the website..."""
        w, s, rng = self.w, self.s, self.rng(R_COMPLAINTS)
        known = np.flatnonzero(~s.gone & ((s.account == 1) | s.member))
        cats = ["staff_service", "billing", "website", "other", "returns", "delivery"]
        for _ in range(rng.poisson(w.n * 0.0004) if len(known) else 0):
            i = int(rng.choice(known))
            cat = str(rng.choice(cats, p=[0.25, 0.15, 0.2, 0.2, 0.1, 0.1]))
            if cat == "staff_service" and not s.member[i]:
                cat = "other"
            self.ticket_later(i, self.at(rng.integers(8 * 3600, 23 * 3600)), cat, None, None)

    def ticket_later(
        self, i: int, t: int, category: str, order_ref, product, channel: str | None = None
    ) -> None:
        self.schedule(
            {
                "k": "ticket_new",
                "t": int(t),
                "person": int(i),
                "category": category,
                "ref": order_ref,
                "product": product,
                "channel": channel,
            }
        )

    def process_events(self) -> None:
        """Run today's scheduled events in time order (they may schedule more)."""
        rng = self.rng(R_EVENTS)
        while self.heap:
            _t, _n, ev = heapq.heappop(self.heap)
            kind = ev["k"]
            if kind == "status":
                self.order_status(ev)
            elif kind == "ticket_new":
                self.open_ticket(rng, ev)
            elif kind == "ticket":
                doc = self.s.tickets[ev["id"]]
                doc.update(ev["set"])
                doc["updated_at"] = utc_s(ev["t"])
                self.touched_tickets[ev["id"]] = None
            else:
                raise AssertionError(f"unknown event {kind}")

    def order_status(self, ev: dict) -> None:
        when = to_dt(ev["t"])
        self.out.status_history.append((ev["order"], ev["status"], when))
        row = self.out.orders_new.get(ev["order"])
        if row is not None:  # placed today: inserted with its latest status of the day
            row[3], row[9] = ev["status"], when
        else:
            self.out.orders_changed[ev["order"]] = (ev["status"], when)

    def open_ticket(self, rng: np.random.Generator, ev: dict) -> None:
        s, w, i, t = self.s, self.w, ev["person"], ev["t"]
        category = ev["category"]
        if s.gone[i] and category != "privacy":
            return
        ticket_id = f"CS-{s.counters['ticket']:07d}"
        s.counters["ticket"] += 1
        email, phone, card = self.contact(rng, i, junk=True)
        if not s.member[i]:
            card = None
        channel = ev["channel"] or str(
            rng.choice(["email", "phone", "web_form", "social"], p=[0.35, 0.3, 0.28, 0.07])
        )
        severity = {
            "product_quality": ["medium", "high", "critical"],
            "delivery": ["low", "medium", "high"],
            "privacy": ["medium", "high"],
        }.get(category, ["low", "medium"])
        name = w.shop_name[i] if rng.random() < 0.7 else w.member_name[i]
        doc = {
            "ticket_id": ticket_id,
            "created_at": utc_s(t),
            "updated_at": utc_s(t),
            "channel": channel,
            "customer": {"email": email, "phone": phone, "name": name, "loyalty_card_no": card},
            "order_ref": ev["ref"],
            "category": category,
            "severity": str(rng.choice(severity)),
            "status": "new",
            "first_response_at": None,
            "resolved_at": None,
            "satisfaction_score": None,
            "assigned_team": ref.COMPLAINT_TEAMS[category],
            "description": self.describe(rng, i, category, ev, phone, email),
        }
        s.tickets[ticket_id] = doc
        self.touched_tickets[ticket_id] = None
        self.out.tickets_created += 1

        # The lifecycle, spread over the following days: answered, maybe waiting on the
        # customer, resolved, sometimes reopened, a survey score, closed three days later.
        def change(when: int, **values) -> None:
            self.schedule({"k": "ticket", "t": int(when), "id": ticket_id, "set": values})

        hours = 3600
        t1 = t + int(rng.integers(hours // 2, 30 * hours))
        change(t1, status="open", first_response_at=utc_s(t1))
        last = t1
        if rng.random() < 0.35:
            last = t1 + int(rng.integers(2 * hours, 48 * hours))
            change(last, status="pending")
        resolved = last + int(rng.integers(4 * hours, 96 * hours))
        change(resolved, status="resolved", resolved_at=utc_s(resolved))
        if rng.random() < 0.1:
            reopened = resolved + int(rng.integers(12 * hours, 72 * hours))
            change(reopened, status="reopened", resolved_at=None)
            resolved = reopened + int(rng.integers(12 * hours, 72 * hours))
            change(resolved, status="resolved", resolved_at=utc_s(resolved))
        if rng.random() < 0.55:
            days_open = (resolved - t) / 86400
            score = int(np.clip(round(5 - days_open * 0.5 + rng.normal(0, 0.8)), 1, 5))
            change(resolved + int(rng.integers(2 * hours, 48 * hours)), satisfaction_score=score)
        change(resolved + 72 * hours + int(rng.integers(0, 12 * hours)), status="closed")

    def describe(
        self, rng: np.random.Generator, i: int, category: str, ev: dict, phone, email
    ) -> str:
        """What the customer wrote: free text, often with their name, number or email in it."""
        w = self.w
        name = w.shop_name[i].split()[0]
        product = w.product_name[ev["product"]] if ev["product"] is not None else "the item"
        contact = (
            f"Please call me on {phone}." if phone else (f"My email is {email}." if email else "")
        )
        store = w.stores[int(w.home_store[i])].name
        text = {
            "delivery": f"My order {ev['ref']} still has not arrived, it is days late. {contact}",
            "product_quality": f"The {product} I bought (ref {ev['ref']}) gave me a rash, is this batch faulty? {contact}",
            "staff_service": f"The cashier at your {store} shop was very rude to me today. {contact}",
            "billing": f"I think I was charged twice for my last purchase. {contact}",
            "returns": f"I returned {product} (order {ev['ref']}) but the refund is not in my account yet. {contact}",
            "website": f"The website keeps logging me out at checkout. {contact}",
            "privacy": f"Stop sending me promotions and delete my data. {contact}",
            "other": f"Do you still sell {product}? I could not find it. {contact}",
        }[category]
        return f"{text} Thanks, {name}" if rng.random() < 0.6 else text

    # -- end of day ---------------------------------------------------------------------------
    def finish(self) -> None:
        s, out = self.s, self.out
        new = set(self.new_customers)
        for i in self.new_customers:
            out.customers_new.append(
                self._customer_row(i, max(int(s.created_t[i]), self.touched_customers.get(i, 0)))
            )
        for i, t in self.touched_customers.items():
            if i not in new:
                out.customers_changed.append(self._customer_row(i, t))
        members: dict[int, int] = {}
        if self.k == 0:  # the first delta carries every member who joined before
            members = {
                int(i): int(s.joined_t[i])
                for i in np.flatnonzero(s.member & (s.joined_t < self.t0))
            }
        for i, t in self.touched_members.items():
            members[i] = max(t, members.get(i, 0))
        out.loyalty += [self._member_row(i, t) for i, t in members.items() if s.member[i]]
        for ticket_id in self.touched_tickets:
            doc = s.tickets[ticket_id]
            out.complaints.append(json.loads(json.dumps(doc)))
            if doc["status"] == "closed":
                del s.tickets[ticket_id]
        for ev in self.late_files:
            out.pos_files.append(
                PosFile(date.fromisoformat(ev["date"]), ev["store"], ev["seq"], ev["rows"])
            )
        self.web_files()
        s.last_day = self.day

    def web_files(self) -> None:
        """Spread the day's events over the UTC hour files: some late, a few sent twice."""
        rng = self.rng(R_WEB)
        events = sorted(self.web_events, key=lambda e: e[0])
        n = len(events)
        self.out.web_events = n
        raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        late = rng.random(n) < 0.02
        delay = rng.integers(1, 4, n)
        dup = rng.random(n) < 0.005
        dup_delay = rng.integers(0, 3, n)
        consent = rng.random(n) < 0.9
        upgraded = self.k >= TRACKER_UPGRADE_OFFSET
        slots: dict[int, list[tuple[int, int, str]]] = defaultdict(
            list
        )  # hour -> (late?, ms, line)
        for e, (t_ms, fields) in enumerate(events):
            doc = {"event_id": _uuid_from(raw[e]), "event_ts": utc_ms(t_ms), **fields}
            if upgraded:
                doc["consent_mode"] = "granted" if consent[e] else "denied"
            line = json.dumps(doc, separators=(",", ":"))
            hour = (t_ms // 1000 - self.t0) // 3600
            slots[hour + (delay[e] if late[e] else 0)].append((int(late[e]), t_ms, line))
            if dup[e]:
                slots[hour + dup_delay[e]].append((1, t_ms, line))
        for ev in self.carried_web:
            slots[(ev["t"] - self.t0) // 3600].extend((1, ms, line) for ms, line in ev["lines"])
        for hour in sorted(slots):
            if hour >= 24:  # belongs to a file of tomorrow's hours
                lines = [[ms, line] for _late, ms, line in sorted(slots[hour])]
                self.schedule({"k": "web", "t": self.t0 + int(hour) * 3600, "lines": lines})
        for hour in range(24):
            start = self.t0 + hour * 3600
            key = (time.strftime("%Y-%m-%d", time.gmtime(start)), time.gmtime(start).tm_hour)
            self.out.web[key] = [line for _late, _ms, line in sorted(slots.get(hour, []))]


def _uuid_from(raw: np.ndarray) -> str:
    """A version-4 UUID string from 16 random bytes of a seeded generator."""
    b = bytearray(raw.tobytes())
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
