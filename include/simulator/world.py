"""The simulated world: people, products and stores (static), and what changes (state).

The static part (:class:`World`) is a pure function of the seed, the first
simulated day and the scale, so it is rebuilt on every call instead of being
stored. Everything that changes while days are simulated (accounts opened,
members' tiers, cookies, open orders and tickets, events scheduled for later
days) lives in :class:`State`, which is saved in the shop database's ``sim``
schema after every day and reloaded to continue.

A *person* is a real human. The ground truth links each person to every
identifier they show to a source system: shop account, emails and phones as
written, loyalty card, tracker cookies.
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from include.simulator import calendar as cal
from include.simulator import reference as ref
from include.simulator.reference import HKT

ONLINE, STORE, BOTH, BROWSER = 0, 1, 2, 3  # channel preference
NEVER = 10**6  # day offset of an event that never happens
FIRST_CUSTOMER_ID = 10001
FIRST_ORDER_ID = 200001
TIER_NAMES = ["classic", "silver", "gold", "platinum"]
TIER_SPEND_CENTS = [0, 200_000, 600_000, 1_500_000]  # cumulative spend that reaches each tier
TRACKER_UPGRADE_OFFSET = 30  # from this day on, web events carry an extra `consent_mode` field
NEW_STORE_OFFSET = 30  # the last store opens on this day (worlds with >= 5 stores)
CLOSING_STORE, CLOSING_OFFSET = 4, 75  # store index 4 closes on this day (worlds with >= 8 stores)
DEFECT_PERIOD, DEFECT_START, DEFECT_DAYS = 91, 18, 14  # one defective batch per quarter
# Each person lapses at a constant hazard: this share of people lapse within a year, at any
# time of the world's life, as a real customer base loses customers every month.
LAPSE_SHARE_PER_YEAR = 0.35
BROWSE_AFTER_LAPSE = 0.3  # a lapsed person still browses, at this fraction of their rate
ROPO_VISIT = 0.3  # chance that a store shopper's browsing session leads to a store visit
CHANNEL_NAMES = ["online", "store", "both", "browser"]


def day_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one purpose, independent of how many numbers other purposes drew."""
    return np.random.default_rng([seed, *keys])


def format_phone(digits: str, style: int) -> str:
    """The ways Hong Kong people write the same mobile number."""
    a, b = digits[:4], digits[4:]
    return [f"+852 {a} {b}", digits, f"{a}-{b}", f"{a} {b}", f"+852{digits}"][style]


@dataclass
class Store:
    code: str
    name: str
    district: str
    region: str
    opened_on: date
    closed_on: date | None
    open_hour: int
    close_hour: int
    size: float
    legacy_till: bool  # UTF-8 with BOM, CRLF, every field quoted
    gzip_till: bool
    staff: list[str]

    def trading(self, day: date) -> bool:
        return self.opened_on <= day and (self.closed_on is None or day < self.closed_on)

    def listed(self, day: date) -> bool:
        """On the store master from its opening day (a closed store stays, with closed_on)."""
        return self.opened_on <= day


@dataclass
class World:
    seed: int
    first_day: date
    n: int
    stores: list[Store]
    # products (index = product number)
    sku: list[str]
    product_name: list[str]
    category: np.ndarray  # int index into reference.CATEGORY_NAMES
    subcategory: list[str]
    brand: list[str]
    base_price: np.ndarray  # cents
    popularity: np.ndarray
    launch_offset: np.ndarray  # day offset the product is launched (<= 0: before the first day)
    product_since: list[datetime]  # updated_at of products that exist before the first day
    # people
    surname: list[str]
    shop_name: list[str]
    member_name: list[str]
    dob: list[date | None]
    district: np.ndarray
    phone_digits: list[str]
    phone_shop: list[str]  # as typed into the shop account (may be junk)
    phone_member: list[str]  # as written in the loyalty system (may be junk)
    email_shop: list[str]
    email_member: list[str]  # "" when the member gave none
    channel: np.ndarray
    web_user: np.ndarray  # bool: browses the web shop
    rate_online: np.ndarray  # expected orders per day
    rate_store: np.ndarray  # expected store visits per day
    rate_browse: np.ndarray  # expected browsing sessions per day
    lapse_offset: np.ndarray  # stops buying from this day offset (NEVER: does not lapse)
    affinity_cum: np.ndarray  # (n, categories) cumulative category preferences
    home_store: np.ndarray
    alt_store: np.ndarray
    pos_pay: np.ndarray
    shop_pay: np.ndarray
    device: np.ndarray
    home_ip: list[str]
    account_offset: np.ndarray  # day offset the shop account opens (NEVER: no account)
    account_created: list[datetime | None]  # for accounts opened before the first day
    account_closed: list[datetime | None]  # accounts closed before the first day
    shop_opt_in: np.ndarray
    card_no: list[str]  # "" for non-members
    member_offset: np.ndarray  # day offset of joining the loyalty programme (NEVER: not a member)
    member_joined: list[datetime | None]
    member_opt_in: np.ndarray
    initial_spend: np.ndarray  # cents, for members who joined before the first day
    category_cum: np.ndarray  # cumulative category mix of anonymous walk-in shoppers

    # -- derived facts -------------------------------------------------------
    def offset(self, day: date) -> int:
        return (day - self.first_day).days

    def defect(self, offset: int) -> tuple[int, int, int] | None:
        """(product, first offset, last offset) of the defective batch on sale at ``offset``."""
        k, pos = divmod(offset, DEFECT_PERIOD)
        if not DEFECT_START <= pos < DEFECT_START + DEFECT_DAYS:
            return None
        rng = day_rng(self.seed, 7, k)
        skin_health_baby = np.isin(self.category, [0, 5, 6])  # where a bad batch hurts
        candidates = np.flatnonzero(skin_health_baby & (self.launch_offset <= 0))
        product = int(rng.choice(candidates))
        start = k * DEFECT_PERIOD + DEFECT_START
        return product, start, start + DEFECT_DAYS - 1


def build_world(seed: int, first_day: date, customers: int, stores: int) -> World:
    """Draw the static world. Same arguments, same world, on any machine."""
    rng = day_rng(seed, 0)
    store_list = _build_stores(rng, first_day, stores)
    products = _build_products(rng, first_day)
    people = _build_people(rng, first_day, customers, store_list)
    weights = np.array([w for _, w, _ in ref.ARCHETYPES])
    mix = (weights[:, None] * np.array([a for _, _, a in ref.ARCHETYPES])).sum(0)
    return World(
        seed=seed,
        first_day=first_day,
        n=customers,
        stores=store_list,
        category_cum=np.cumsum(mix / mix.sum()),
        **products,
        **people,
    )


def _build_stores(rng: np.random.Generator, first_day: date, count: int) -> list[Store]:
    if count < 1:
        raise ValueError("stores must be at least 1")
    regions = {name: region for name, region, _ in ref.DISTRICTS}
    out = []
    for i in range(count):
        code, name, district, open_h, close_h, size = ref.STORE_SITES[i % len(ref.STORE_SITES)]
        if i >= len(ref.STORE_SITES):  # a second branch in the same area
            code = f"{code[:-2]}{i // len(ref.STORE_SITES) + 1:02d}"
            name = f"{name} II"
        opened = first_day - timedelta(days=int(rng.integers(400, 6000)))
        closed = None
        if count >= 5 and i == count - 1:
            opened = first_day + timedelta(days=NEW_STORE_OFFSET)
        if count >= 8 and i == CLOSING_STORE:
            closed = first_day + timedelta(days=CLOSING_OFFSET)
        staff = [f"E{int(x):05d}" for x in rng.choice(90000, size=6, replace=False) + 10000]
        out.append(
            Store(
                code=code,
                name=name,
                district=district,
                region=regions[district],
                opened_on=opened,
                closed_on=closed,
                open_hour=open_h,
                close_hour=close_h,
                size=size,
                legacy_till=(i % len(ref.STORE_SITES)) in ref.LEGACY_TILL_STORES,
                gzip_till=(i % len(ref.STORE_SITES)) in ref.GZIP_TILL_STORES,
                staff=staff,
            )
        )
    return out


def _build_products(rng: np.random.Generator, first_day: date) -> dict:
    variants = ["", "Sensitive ", "Brightening ", "Intensive ", "Fresh ", "Classic ", "Gentle "]
    sku, names, cats, subs, brands, prices = [], [], [], [], [], []
    for c, (cat, (prefix, subcats)) in enumerate(ref.CATEGORIES.items()):
        number = 1001
        for sub, low, high, nouns in subcats:
            seen = set()
            while len([s for s in subs if s == sub]) < 7:
                brand = str(rng.choice(ref.BRANDS[cat]))
                noun = str(rng.choice(nouns))
                name = f"{brand} {rng.choice(variants)}{noun}"
                if name in seen:
                    continue
                seen.add(name)
                dollars = rng.uniform(low, high)
                cents = (
                    int(round(dollars / 10) * 1000 - 10)
                    if rng.random() < 0.6
                    else int(round(dollars)) * 100
                )
                sku.append(f"{prefix}-{number:04d}")
                number += 1
                names.append(name)
                cats.append(c)
                subs.append(sub)
                brands.append(brand)
                prices.append(max(cents, 1990))
    n = len(sku)
    launch = np.full(n, -1, dtype=np.int64)
    launch[rng.choice(n, size=6, replace=False)] = [14, 28, 45, 60, 100, 150]
    since = [
        datetime(first_day.year, first_day.month, first_day.day, 9, tzinfo=HKT)
        - timedelta(days=int(rng.integers(30, 900)), seconds=int(rng.integers(0, 28800)))
        for _ in range(n)
    ]
    return dict(
        sku=sku,
        product_name=names,
        category=np.array(cats),
        subcategory=subs,
        brand=brands,
        base_price=np.array(prices, dtype=np.int64),
        popularity=rng.lognormal(0, 0.8, n),
        launch_offset=launch,
        product_since=since,
    )


def _pick(
    rng: np.random.Generator,
    items: list,
    weights: list[float] | None = None,
    size: int | None = None,
):
    p = None if weights is None else np.array(weights) / np.sum(weights)
    return rng.choice(len(items), size=size, p=p)


def _build_people(rng: np.random.Generator, first_day: date, n: int, stores: list[Store]) -> dict:
    if n < 20:
        raise ValueError("customers must be at least 20")
    midnight = datetime(first_day.year, first_day.month, first_day.day, tzinfo=HKT)
    district_w = [w for _, _, w in ref.DISTRICTS]
    district = _pick(rng, ref.DISTRICTS, district_w, n)
    surname = [ref.SURNAMES[i] for i in _pick(rng, ref.SURNAMES, size=n)]
    given = [ref.GIVEN_NAMES[i] for i in _pick(rng, ref.GIVEN_NAMES, size=n)]
    english = [
        ref.ENGLISH_NAMES[i] if rng.random() < 0.7 else None
        for i in _pick(rng, ref.ENGLISH_NAMES, size=n)
    ]

    # Households: a few % of people use a family member's phone (and surname, and district).
    digits = [
        str(x) for x in rng.choice([5, 6, 9], size=n) * 10_000_000 + rng.integers(0, 10_000_000, n)
    ]
    unique: set[str] = set()
    for i in range(n):
        while digits[i] in unique or digits[i] in ref.JUNK_PHONES:
            digits[i] = str(
                int(rng.choice([5, 6, 9])) * 10_000_000 + int(rng.integers(0, 10_000_000))
            )
        unique.add(digits[i])
    for i in np.flatnonzero(rng.random(n) < 0.04):
        head = int(rng.integers(0, n))
        if head != i:
            digits[i], surname[i], district[i] = digits[head], surname[head], district[head]

    shop_name = [f"{e or g} {s}" for e, g, s in zip(english, given, surname, strict=True)]
    member_name = [
        f"{s.upper()} {g}" + (f" {e}" if e and rng.random() < 0.5 else "")
        for e, g, s in zip(english, given, surname, strict=True)
    ]
    dob = [
        None
        if rng.random() < 0.2
        else first_day - timedelta(days=int(rng.integers(18 * 365, 72 * 365)))
        for _ in range(n)
    ]

    # Emails: unique ignoring case; the shop keeps the case people typed, the loyalty system
    # another case (or none at all).
    emails, taken = [], set()
    domains = _pick(rng, ref.EMAIL_DOMAINS, ref.EMAIL_DOMAIN_WEIGHTS, n)
    for i in range(n):
        first = (english[i] or given[i].split()[0]).lower()
        style = int(rng.integers(0, 4))
        local = [
            f"{first}.{surname[i].lower()}",
            f"{first}{surname[i].lower()}{int(rng.integers(1, 99))}",
            f"{surname[i].lower()}{given[i].replace(' ', '').lower()}",
            f"{first}_{int(rng.integers(1970, 2006))}",
        ][style]
        email = f"{local}@{ref.EMAIL_DOMAINS[domains[i]]}"
        while email in taken:
            email = f"{local}{int(rng.integers(1, 999))}@{ref.EMAIL_DOMAINS[domains[i]]}"
        taken.add(email)
        emails.append(email)
    case = rng.choice(3, size=n, p=[0.45, 0.5, 0.05])  # lower, Title, UPPER
    email_shop = [_case(e, int(c)) for e, c in zip(emails, case, strict=True)]
    email_member = [
        "" if rng.random() < 0.15 else _case(e, 1 if c == 0 else 0)
        for e, c in zip(emails, case, strict=True)
    ]
    for i in np.flatnonzero(rng.random(n) < 0.02):
        email_member[i] = str(rng.choice(ref.JUNK_EMAILS))

    shop_style = rng.choice(5, size=n, p=[0.3, 0.35, 0.15, 0.1, 0.1])
    member_style = (shop_style + rng.integers(1, 5, n)) % 5  # never the same way as in the shop
    phone_shop = [format_phone(d, int(s)) for d, s in zip(digits, shop_style, strict=True)]
    phone_member = [format_phone(d, int(s)) for d, s in zip(digits, member_style, strict=True)]
    for i in np.flatnonzero(rng.random(n) < 0.015):
        phone_shop[i] = str(rng.choice(ref.JUNK_PHONES))
    for i in np.flatnonzero(rng.random(n) < 0.02):
        phone_member[i] = str(rng.choice(ref.JUNK_PHONES))

    channel = rng.choice(4, size=n, p=[0.30, 0.35, 0.25, 0.10])
    web_user = (channel != STORE) | (rng.random(n) < 0.4)
    activity = rng.gamma(0.8, 1.0 / 0.8, n)  # heterogeneous: a few heavy buyers, many light ones
    rate_online = (
        np.where(channel == ONLINE, 1 / 40, np.where(channel == BOTH, 0.8 / 40, 0.0)) * activity
    )
    rate_store = (
        np.where(channel == STORE, 1 / 25, np.where(channel == BOTH, 0.8 / 25, 0.0)) * activity
    )
    rate_browse = np.where(web_user, np.where(channel == STORE, 1 / 30, 1 / 12), 0.0) * rng.gamma(
        1.5, 1 / 1.5, n
    )
    hazard = -np.log1p(-LAPSE_SHARE_PER_YEAR) / 365  # per day
    lapse = np.minimum(np.floor(rng.exponential(1 / hazard, n)), NEVER).astype(np.int64)

    archetype = _pick(rng, ref.ARCHETYPES, [w for _, w, _ in ref.ARCHETYPES], n)
    base = np.array([a for _, _, a in ref.ARCHETYPES])[archetype]
    affinity = rng.gamma(base * 8.0 + 0.05)
    affinity /= affinity.sum(1, keepdims=True)
    home, alt = _home_stores(rng, district, stores)

    # Shop accounts: most online buyers have one already, some sign up during the simulation.
    has_account = np.where(
        channel == STORE, rng.random(n) < 0.1, rng.random(n) < np.where(channel == BROWSER, 0.3, 1)
    )
    prospect = has_account & (rng.random(n) < 0.15) & (channel != STORE)
    account_offset = np.where(has_account, np.where(prospect, rng.integers(0, 180, n), -1), NEVER)
    account_created = [
        midnight - timedelta(seconds=int(rng.integers(86400, 3 * 365 * 86400)))
        if account_offset[i] < 0
        else None
        for i in range(n)
    ]
    account_closed = [
        created + timedelta(days=int(rng.integers(1, 300)))
        if created is not None and rng.random() < 0.02 and created + timedelta(days=300) < midnight
        else None
        for created in account_created
    ]

    # Loyalty members: ~60% of store buyers; a few join during the simulation.
    member = np.where(
        channel == ONLINE, rng.random(n) < 0.05, (channel != BROWSER) & (rng.random(n) < 0.6)
    )
    joins_later = member & (rng.random(n) < 0.15)
    member_offset = np.where(member, np.where(joins_later, rng.integers(0, 150, n), -1), NEVER)
    member_joined = [
        midnight
        - timedelta(days=int(rng.integers(1, 6 * 365)), seconds=-int(rng.integers(36000, 75600)))
        if member_offset[i] < 0
        else None
        for i in range(n)
    ]
    cards, used = [], {ref.JUNK_CARD}
    for i in range(n):
        if not member[i]:
            cards.append("")
            continue
        card = ref.JUNK_CARD
        while card in used:
            card = (
                f"00{int(rng.integers(0, 10**8)):08d}"
                if rng.random() < 0.05
                else f"8{int(rng.integers(0, 10**9)):09d}"
            )
        used.add(card)
        cards.append(card)
    tier = rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])
    spend = np.array(TIER_SPEND_CENTS)[tier] + (rng.random(n) * 150_000).astype(np.int64)

    ips = [
        f"{int(a)}.{int(b)}.{int(c)}.{int(d)}"
        for a, b, c, d in zip(
            rng.choice([14, 42, 58, 112, 113, 119, 203, 218, 219], n),
            rng.integers(0, 256, n),
            rng.integers(0, 256, n),
            rng.integers(1, 255, n),
            strict=True,
        )
    ]
    return dict(
        surname=surname,
        shop_name=shop_name,
        member_name=member_name,
        dob=dob,
        district=district,
        phone_digits=digits,
        phone_shop=phone_shop,
        phone_member=phone_member,
        email_shop=email_shop,
        email_member=email_member,
        channel=channel,
        web_user=web_user,
        rate_online=rate_online,
        rate_store=rate_store,
        rate_browse=rate_browse,
        lapse_offset=lapse,
        affinity_cum=np.cumsum(affinity, axis=1),
        home_store=home,
        alt_store=alt,
        pos_pay=_pick(rng, ref.POS_PAYMENT, ref.POS_PAYMENT_WEIGHTS, n),
        shop_pay=_pick(rng, ref.SHOP_PAYMENT, ref.SHOP_PAYMENT_WEIGHTS, n),
        device=rng.choice(3, size=n, p=[0.3, 0.62, 0.08]),
        home_ip=ips,
        account_offset=account_offset,
        account_created=account_created,
        account_closed=account_closed,
        shop_opt_in=rng.random(n) < 0.55,
        card_no=cards,
        member_offset=member_offset,
        member_joined=member_joined,
        member_opt_in=rng.random(n) < 0.65,
        initial_spend=np.where(member_offset < 0, spend, 0),
    )


def _case(email: str, style: int) -> str:
    if style == 0:
        return email.lower()
    if style == 2:
        return email.upper()
    local, domain = email.split("@")
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


def _home_stores(rng: np.random.Generator, district: np.ndarray, stores: list[Store]):
    """Each person shops mostly near home (same district, else same region), sometimes elsewhere."""
    regions = np.array([ref.DISTRICTS[d][1] for d in district])
    names = np.array([ref.DISTRICTS[d][0] for d in district])
    n = len(district)
    home = rng.integers(0, len(stores), n)
    for s, store in reversed(list(enumerate(stores))):
        same_region = (regions == store.region) & (rng.random(n) < 0.5)
        home = np.where(same_region, s, home)
    for s, store in enumerate(stores):
        home = np.where(names == store.district, s, home)
    alt = rng.integers(0, len(stores), n)
    return home, alt


# -- mutable state --------------------------------------------------------------------------


@dataclass
class State:
    """Everything that changes from day to day; saved after every simulated day.

    Arrays are per person. ``queue`` maps an ISO date to events scheduled for
    that day (order status changes, ticket updates, returns, store visits,
    late files and late web events), each a JSON object with its time ``t``
    in epoch seconds.
    """

    last_day: date | None
    customer_id: np.ndarray  # 0 = no shop account yet
    account: np.ndarray  # 0 none, 1 open, 2 closed
    created_t: np.ndarray  # epoch seconds
    deleted_t: np.ndarray  # epoch seconds, 0 = open
    shop_district: np.ndarray
    shop_opt: np.ndarray
    member: np.ndarray  # bool: has joined the loyalty programme
    joined_t: np.ndarray
    tier: np.ndarray
    spend: np.ndarray  # cents since joining
    member_district: np.ndarray
    member_opt: np.ndarray
    gone: np.ndarray  # bool: asked for erasure, no more activity
    erased_t: np.ndarray  # epoch seconds of the erasure request, 0 = none
    price: np.ndarray  # per product, cents
    active: np.ndarray  # per product
    product_t: np.ndarray  # per product, epoch seconds of the last change
    counters: dict[str, int] = field(default_factory=dict)
    queue: dict[str, list[dict]] = field(default_factory=dict)
    tickets: dict[str, dict] = field(default_factory=dict)
    cookies: list[list] = field(default_factory=list)  # [owner, cookie_id, device, remembered]

    ARRAYS = (
        "customer_id account created_t deleted_t shop_district shop_opt member joined_t tier spend "
        "member_district member_opt gone erased_t price active product_t"
    ).split()

    def dumps(self) -> tuple[bytes, bytes]:
        """(JSON, npz), each zlib-compressed: an exact round trip, so continuing equals running on."""
        doc = {
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "counters": self.counters,
            "queue": self.queue,
            "tickets": self.tickets,
            "cookies": self.cookies,
        }
        buf = io.BytesIO()
        np.savez(buf, **{name: getattr(self, name) for name in self.ARRAYS})
        text = json.dumps(doc, separators=(",", ":")).encode()
        return zlib.compress(text, 1), zlib.compress(buf.getvalue(), 1)

    @classmethod
    def loads(cls, doc_blob: bytes, arrays_blob: bytes) -> State:
        doc = json.loads(zlib.decompress(doc_blob))
        with np.load(io.BytesIO(zlib.decompress(arrays_blob)), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in cls.ARRAYS if name in npz.files}
        if "erased_t" not in arrays:  # saved before erasure times were kept: the closest known
            arrays["erased_t"] = np.where(arrays["gone"], arrays["deleted_t"], 0).astype(np.int64)
        return cls(
            last_day=date.fromisoformat(doc["last_day"]) if doc["last_day"] else None,
            counters=doc["counters"],
            queue=doc["queue"],
            tickets=doc["tickets"],
            cookies=doc["cookies"],
            **arrays,
        )


def initial_state(world: World) -> State:
    """The state before the first simulated day: accounts and members that already exist."""
    n = world.n
    order = sorted((c, i) for i, c in enumerate(world.account_created) if c is not None)
    customer_id = np.zeros(n, dtype=np.int64)
    created_t = np.zeros(n, dtype=np.int64)
    deleted_t = np.zeros(n, dtype=np.int64)
    account = np.zeros(n, dtype=np.int8)
    for k, (created, i) in enumerate(order):
        customer_id[i] = FIRST_CUSTOMER_ID + k
        created_t[i] = int(created.timestamp())
        closed = world.account_closed[i]
        deleted_t[i] = int(closed.timestamp()) if closed else 0
        account[i] = 2 if closed else 1
    member = world.member_offset < 0
    joined_t = np.array(
        [int(j.timestamp()) if j else 0 for j in world.member_joined], dtype=np.int64
    )
    tier = np.searchsorted(TIER_SPEND_CENTS, world.initial_spend, side="right") - 1
    return State(
        last_day=None,
        customer_id=customer_id,
        account=account,
        created_t=created_t,
        deleted_t=deleted_t,
        shop_district=world.district.astype(np.int16),
        shop_opt=world.shop_opt_in.copy(),
        member=member,
        joined_t=joined_t,
        tier=np.where(member, tier, 0).astype(np.int8),
        spend=world.initial_spend.astype(np.int64),
        member_district=world.district.astype(np.int16),
        member_opt=world.member_opt_in.copy(),
        gone=np.zeros(n, dtype=bool),
        erased_t=np.zeros(n, dtype=np.int64),
        price=world.base_price.copy(),
        active=np.ones(len(world.sku), dtype=bool),
        product_t=np.array([int(t.timestamp()) for t in world.product_since], dtype=np.int64),
        counters={
            "customer_id": FIRST_CUSTOMER_ID + len(order),
            "order_id": FIRST_ORDER_ID,
            "ticket": 1201,
            "privacy": 1,
        },
    )


def identities(world: World, state: State) -> list[tuple[str, str, str]]:
    """Ground truth: (person_id, id_type, id_value) for every identifier seen in a source so far.

    Values are exactly as the sources write them (an email in two cases gives two
    rows). Junk values typed by people who would not give theirs belong to nobody.
    """
    junk = set(ref.JUNK_PHONES) | set(ref.JUNK_EMAILS) | {ref.JUNK_CARD, ""}
    cookies: dict[int, list[str]] = {}
    for owner, cookie_id, *_ in state.cookies:
        cookies.setdefault(owner, []).append(cookie_id)
    rows = set()
    for i in range(world.n):
        ids = [("anonymous_id", c) for c in cookies.get(i, [])]
        if state.customer_id[i]:
            ids += [
                ("shop_customer_id", str(int(state.customer_id[i]))),
                ("email", world.email_shop[i]),
                ("phone", world.phone_shop[i]),
            ]
        if state.member[i]:
            ids += [
                ("loyalty_card_no", world.card_no[i]),
                ("email", world.email_member[i]),
                ("phone", world.phone_member[i]),
            ]
        rows.update((f"P{i + 1:06d}", kind, value) for kind, value in ids if value not in junk)
    return sorted(rows)


BEHAVIOUR_HEADER = [
    "person_id", "channel", "purchase_rate_per_week", "online_orders_per_week",
    "store_visits_per_week", "browse_sessions_per_week", "is_churned", "churned_on", "erased_on",
    "home_store", "favourite_category", "favourite_category_share",
]  # fmt: skip


def behaviour(world: World, state: State) -> list[list[str]]:
    """Ground truth of how each person was generated to behave, one row per person of the world.

    Rates are expected occasions per ordinary week (the weekday rhythm of
    :mod:`~include.simulator.calendar` included, holiday and festival peaks not),
    while the person is able to buy and has not lapsed; see the module docstring
    of :mod:`include.simulator` for each column. ``is_churned`` and ``churned_on``
    say only what has been simulated up to ``state.last_day``.
    """
    w, s = world, state
    last = w.offset(s.last_day) if s.last_day is not None else -1
    online_week = float(sum(cal.ONLINE_WEEKDAY))
    store_week = float(sum(cal.STORE_WEEKDAY))
    shops_in_store = np.isin(w.channel, [STORE, BOTH])
    online = w.rate_online * online_week
    browse = w.rate_browse * online_week
    store = w.rate_store * store_week + np.where(shops_in_store, ROPO_VISIT * browse, 0.0)
    affinity = np.diff(w.affinity_cum, axis=1, prepend=0.0)
    favourite = affinity.argmax(1)
    churned = w.lapse_offset <= last
    rows = []
    for i in range(w.n):
        erased = int(s.erased_t[i])
        rows.append(
            [
                f"P{i + 1:06d}",
                CHANNEL_NAMES[w.channel[i]],
                f"{online[i] + store[i]:.6f}",
                f"{online[i]:.6f}",
                f"{store[i]:.6f}",
                f"{browse[i]:.6f}",
                "true" if churned[i] else "false",
                (w.first_day + timedelta(days=int(w.lapse_offset[i]))).isoformat()
                if churned[i]
                else "",
                cal.hk_day(erased).isoformat() if erased else "",
                w.stores[int(w.home_store[i])].code,
                ref.CATEGORY_NAMES[favourite[i]],
                f"{affinity[i, favourite[i]]:.4f}",
            ]
        )
    return rows
