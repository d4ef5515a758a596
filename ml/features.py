"""Point-in-time customer features and outcomes for ML (churn, CLV, BTYD).

Everything is computed in SQL on the warehouse; pandas only receives one row
per customer. Every function takes a psycopg connection and a Hong Kong
business date ``as_of``, and reads only rows whose ``business_date`` is on or
before it ("known at the end of as_of"): features for a past date are what
the warehouse would have said that evening, and adding rows dated later
changes nothing (``tests/ml/test_features.py`` proves it).

Definitions
-----------
- **Purchase**: a row of ``intermediate.int_customers__orders`` with
  ``is_purchase`` (an online order or till receipt with at least one sold
  line), the one definition shared with dbt. Recency, frequency, tenure,
  online share and every BTYD count use purchase rows only: a receipt of
  returns only does not reset recency and is not a purchase.
- **Monetary** values are net: the sum of ``net_amount`` of *all* the
  customer's orders and receipts in the window, so a return-only receipt
  counts negative (returns lower spend, as everywhere in the warehouse).
  ``avg_order_value`` = lifetime net / lifetime purchases.
- **Windows**: "last N days" is ``business_date`` in ``(as_of - N, as_of]``,
  the N calendar days ending with as_of, as_of included (as in
  ``ml/segmentation.py`` and the dbt marts). "Lifetime" means every row up
  to as_of (the warehouse's history may be shorter than the customer's).
- **Day counts** are date differences: a purchase on as_of has
  ``recency_days = 0``; a first purchase on as_of has ``tenure_days = 0``.
- **"Never" fill**: ``days_since_last_complaint`` and
  ``days_since_last_web_session`` of a customer with no complaint / no
  logged-in session up to as_of are ``NEVER_DAYS`` (3650, ten years): later
  than any real gap, so tree models sort "never" after "long ago". There is
  no NaN in the features.

Point-in-time choices (what would leak, and what is left out)
-------------------------------------------------------------
- Web sessions count only ``is_logged_in`` sessions. ``fct_web_sessions``
  attributes anonymous sessions through *today's* identity map: a cookie
  that first logs in after as_of gets its earlier anonymous sessions
  attributed retroactively, which the business did not know at as_of. A
  logged-in session was attributable when it happened.
- Loyalty tier comes from ``intermediate.int_customers__loyalty_tier_history``
  (the tier that held at the end of as_of: latest ``tier_date <= as_of``;
  ``next_tier_date`` is never read), not from ``dim_customer.loyalty_tier``
  (today's tier) and not from ``dim_customer_history`` (the snapshot only
  starts the night it was first run).
- Not used, because they are current state: ``dim_customer`` attributes
  (tier, consent, district, ``is_account_closed``), ``fct_complaints`` status
  fields (``is_open``, ``status``, ``resolved_at``, satisfaction, SLA flags:
  the latest ticket version), ``fct_sales.order_status``.
- Known residual leaks of the marts themselves: customer keys and product
  categories are today's (a person merge or a re-categorisation reaches past
  rows); online orders cancelled after as_of are already missing from
  ``fct_sales``; rows that arrived late (a POS file loaded days after its
  date) are present for an as_of they were not yet loaded on.

Schemas are used exactly as dbt names them (``dbt_project.yml``: staging,
intermediate, marts); the tables read are the module constants below.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from datetime import date, datetime, timedelta

import pandas as pd
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

INTERMEDIATE_SCHEMA = "intermediate"
MARTS_SCHEMA = "marts"

#: One row per order/receipt of a known customer: the definition of a purchase.
ORDERS_TABLE = (INTERMEDIATE_SCHEMA, "int_customers__orders")
#: Sales lines (category per line).
SALES_TABLE = (MARTS_SCHEMA, "fct_sales")
#: One row per complaint ticket, dated at its creation (business_date).
COMPLAINTS_TABLE = (MARTS_SCHEMA, "fct_complaints")
#: One row per web session, dated at its start (business_date).
WEB_SESSIONS_TABLE = (MARTS_SCHEMA, "fct_web_sessions")
#: Loyalty tier per person and day it changed (business time).
LOYALTY_TIERS_TABLE = (INTERMEDIATE_SCHEMA, "int_customers__loyalty_tier_history")

SHORT_WINDOW_DAYS = 90
YEAR_WINDOW_DAYS = 365
#: Fill of the days-since columns for "never happened up to as_of".
NEVER_DAYS = 3650
#: loyalty_tier_rank values; 0 = no tier held at the end of as_of.
TIER_RANKS = {"classic": 1, "silver": 2, "gold": 3, "platinum": 4}

#: Columns of customer_features (index: customer_key), with their dtypes.
FEATURE_DTYPES: dict[str, str] = {
    "recency_days": "int64",  # as_of - last purchase date
    "frequency": "int64",  # purchases (orders/receipts with a sold line), lifetime
    "frequency_90d": "int64",
    "frequency_365d": "int64",
    "monetary_90d": "float64",  # net HKD, all rows (returns negative)
    "monetary_365d": "float64",
    "monetary_lifetime": "float64",
    "avg_order_value": "float64",  # monetary_lifetime / frequency
    "tenure_days": "int64",  # as_of - first purchase date
    "online_share": "float64",  # online purchases / purchases, lifetime
    "category_breadth_365d": "int64",  # distinct categories with a sold line, known skus
    "returns_365d": "int64",  # orders/receipts with a RETURN line
    "complaints_365d": "int64",  # complaint tickets created in the window
    "days_since_last_complaint": "int64",  # NEVER_DAYS without one
    "web_sessions_90d": "int64",  # logged-in web sessions started in the window
    "days_since_last_web_session": "int64",  # logged-in; NEVER_DAYS without one
    "loyalty_tier_rank": "int64",  # 0 none, 1 classic .. 4 platinum, at the end of as_of
}
FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_DTYPES)

BTYD_DTYPES: dict[str, str] = {
    "x": "int64",
    "t_x": "float64",
    "T": "float64",
    "monetary_value": "float64",
}
OUTCOME_DTYPES: dict[str, str] = {"purchases": "int64", "spend": "float64", "purchased": "bool"}

_FEATURES_SQL = """
with

orders as (
    select customer_key, channel, business_date, is_purchase, has_return,
           net_amount::float8 as net_amount
    from {orders}
    where business_date <= %(as_of)s::date
),

order_stats as (
    select
        customer_key,
        min(business_date) filter (where is_purchase) as first_purchase_date,
        max(business_date) filter (where is_purchase) as last_purchase_date,
        count(*) filter (where is_purchase) as frequency,
        count(*) filter (
            where is_purchase and business_date > %(as_of)s::date - %(short_days)s
        ) as frequency_90d,
        count(*) filter (
            where is_purchase and business_date > %(as_of)s::date - %(year_days)s
        ) as frequency_365d,
        count(*) filter (where is_purchase and channel = 'online') as online_purchases,
        coalesce(
            sum(net_amount) filter (where business_date > %(as_of)s::date - %(short_days)s), 0
        ) as monetary_90d,
        coalesce(
            sum(net_amount) filter (where business_date > %(as_of)s::date - %(year_days)s), 0
        ) as monetary_365d,
        sum(net_amount) as monetary_lifetime,
        count(*) filter (
            where has_return and business_date > %(as_of)s::date - %(year_days)s
        ) as returns_365d
    from orders
    group by customer_key
    having bool_or(is_purchase)
),

categories as (
    select customer_key, count(distinct category) as category_breadth_365d
    from {sales}
    where customer_key is not null
      and business_date <= %(as_of)s::date
      and business_date > %(as_of)s::date - %(year_days)s
      and not is_return
      and not is_void
      and not is_unknown_sku
    group by customer_key
),

complaints as (
    select
        customer_key,
        count(*) filter (
            where business_date > %(as_of)s::date - %(year_days)s
        ) as complaints_365d,
        max(business_date) as last_complaint_date
    from {complaints}
    where customer_key is not null
      and business_date <= %(as_of)s::date
    group by customer_key
),

sessions as (
    select
        customer_key,
        count(*) filter (
            where business_date > %(as_of)s::date - %(short_days)s
        ) as web_sessions_90d,
        max(business_date) as last_session_date
    from {sessions}
    where customer_key is not null
      and is_logged_in
      and business_date <= %(as_of)s::date
    group by customer_key
),

tiers as (
    select distinct on (customer_key) customer_key, to_tier
    from {tiers}
    where tier_date <= %(as_of)s::date
    order by customer_key, tier_date desc
)

select
    o.customer_key,
    %(as_of)s::date - o.last_purchase_date as recency_days,
    o.frequency,
    o.frequency_90d,
    o.frequency_365d,
    o.monetary_90d,
    o.monetary_365d,
    o.monetary_lifetime,
    o.monetary_lifetime / o.frequency as avg_order_value,
    %(as_of)s::date - o.first_purchase_date as tenure_days,
    o.online_purchases::float8 / o.frequency as online_share,
    coalesce(c.category_breadth_365d, 0) as category_breadth_365d,
    o.returns_365d,
    coalesce(q.complaints_365d, 0) as complaints_365d,
    coalesce(%(as_of)s::date - q.last_complaint_date, %(never_days)s) as days_since_last_complaint,
    coalesce(s.web_sessions_90d, 0) as web_sessions_90d,
    coalesce(%(as_of)s::date - s.last_session_date, %(never_days)s)
        as days_since_last_web_session,
    case t.to_tier
        when 'classic' then 1 when 'silver' then 2 when 'gold' then 3 when 'platinum' then 4
        else 0
    end as loyalty_tier_rank
from order_stats as o
left join categories as c on c.customer_key = o.customer_key
left join complaints as q on q.customer_key = o.customer_key
left join sessions as s on s.customer_key = o.customer_key
left join tiers as t on t.customer_key = o.customer_key
order by o.customer_key collate "C"
"""

_BTYD_SQL = """
with

occasions as (
    -- one row per purchase day: its value is the net of that day's purchases
    -- (a purchase receipt's own RETURN lines included, return-only receipts not)
    select customer_key, business_date, sum(net_amount)::float8 as amount
    from {orders}
    where is_purchase and business_date <= %(as_of)s::date
    group by customer_key, business_date
),

ranked as (
    select occasions.*,
           min(business_date) over (partition by customer_key) as first_day
    from occasions
)

select
    customer_key,
    count(*) - 1 as x,
    (max(business_date) - min(business_date))::float8 / %(unit_days)s as t_x,
    (%(as_of)s::date - min(business_date))::float8 / %(unit_days)s as "T",
    coalesce(avg(amount) filter (where business_date > first_day), 0) as monetary_value,
    min(business_date) as first_purchase
from ranked
group by customer_key
order by customer_key collate "C"
"""

_OUTCOMES_SQL = """
with

population as (
    select distinct customer_key
    from {orders}
    where is_purchase and business_date <= %(as_of)s::date
),

future as (
    select
        customer_key,
        count(distinct business_date) filter (where is_purchase) as purchases,
        sum(net_amount)::float8 as spend
    from {orders}
    where business_date > %(as_of)s::date
      and business_date <= %(as_of)s::date + %(horizon_days)s
    group by customer_key
)

select
    p.customer_key,
    coalesce(f.purchases, 0) as purchases,
    coalesce(f.spend, 0) as spend,
    coalesce(f.purchases, 0) > 0 as purchased
from population as p
left join future as f on f.customer_key = p.customer_key
order by p.customer_key collate "C"
"""

_RANGE_SQL = """
select min(business_date) filter (where is_purchase), max(business_date)
from {orders}
"""


def customer_features(conn: psycopg.Connection, as_of: date) -> pd.DataFrame:
    """Features of every customer with a purchase on or before ``as_of``.

    Index ``customer_key`` (sorted), columns ``FEATURE_COLUMNS`` (int64 or
    float64, no NaN). Nothing dated after ``as_of`` is read. Warns when the
    warehouse's purchases end before ``as_of`` (recency would be inflated).
    """
    _check_date(as_of)
    with conn.transaction():
        _, last = _purchase_range(conn)
        if last is not None and last < as_of:
            warnings.warn(
                f"the warehouse holds purchases only up to {last}, before as_of {as_of}: "
                "recency and the windows ending at as_of see days with no data",
                stacklevel=2,
            )
        frame = _query(
            conn,
            _FEATURES_SQL,
            {
                "as_of": as_of,
                "short_days": SHORT_WINDOW_DAYS,
                "year_days": YEAR_WINDOW_DAYS,
                "never_days": NEVER_DAYS,
            },
        )
    return _typed(frame, FEATURE_DTYPES)


def btyd_summary(conn: psycopg.Connection, as_of: date, *, unit_days: int = 7) -> pd.DataFrame:
    """BTYD (BG/NBD, Pareto/NBD) and Gamma-Gamma inputs per customer at ``as_of``.

    Index ``customer_key``; columns, in units of ``unit_days`` days (float):

    - ``x``: repeat purchase occasions, distinct purchase days - 1 (int64);
    - ``t_x``: last purchase day - first purchase day;
    - ``T``: as_of - first purchase day. Date differences: a first purchase
      on as_of gives T = 0 (the lifetimes convention,
      ``summary_data_from_transaction_data(..., observation_period_end=as_of)``);
    - ``monetary_value``: mean net amount of the *repeat* occasions (first
      purchase day excluded; an occasion's value is the net of its purchase
      rows, a return-only receipt is no occasion), 0 when x = 0, as in
      lifetimes. Fit Gamma-Gamma on ``x > 0 and monetary_value > 0``;
    - ``first_purchase``: the first purchase day (datetime64).
    """
    _check_date(as_of)
    _check_positive(unit_days=unit_days)
    with conn.transaction():
        frame = _query(conn, _BTYD_SQL, {"as_of": as_of, "unit_days": int(unit_days)})
    frame["first_purchase"] = pd.to_datetime(frame["first_purchase"])
    return _typed(frame, BTYD_DTYPES)


def future_outcomes(conn: psycopg.Connection, as_of: date, horizon_days: int) -> pd.DataFrame:
    """What each customer of ``customer_features(conn, as_of)`` did in ``(as_of, as_of + horizon]``.

    Index ``customer_key`` (the same customers, same order); columns
    ``purchases`` (distinct purchase days in the window, int64), ``spend``
    (net HKD of all their rows in the window, returns negative, float64) and
    ``purchased`` (bool, purchases > 0).

    Raises ValueError when the warehouse does not hold purchases up to
    ``as_of + horizon_days``: an outcome window that is not fully observed
    would pass customers who will buy as churned.
    """
    _check_date(as_of)
    _check_positive(horizon_days=horizon_days)
    end = as_of + timedelta(days=int(horizon_days))
    with conn.transaction():
        _, last = _purchase_range(conn)
        if last is None or last < end:
            raise ValueError(
                f"the warehouse does not yet hold data up to {end} (as_of {as_of} + "
                f"{horizon_days} days; its latest purchase is dated {last}), so the outcome "
                "window is not fully observed and must not be used to train or validate"
            )
        frame = _query(conn, _OUTCOMES_SQL, {"as_of": as_of, "horizon_days": int(horizon_days)})
    return _typed(frame, OUTCOME_DTYPES)


def as_of_dates(
    conn: psycopg.Connection,
    *,
    horizon_days: int,
    n: int,
    step_days: int,
    min_history_days: int = 0,
) -> list[date]:
    """The latest ``n`` as-of dates whose ``horizon_days`` outcome window is fully observed.

    Dates are ``step_days`` apart, oldest first, the latest being the last
    purchase date in the warehouse minus ``horizon_days``. Each one is at
    least ``min_history_days`` after the first purchase in the warehouse (0:
    on or after it). With a shorter history it returns the dates that fit
    and warns why there are fewer; with none, it raises ValueError.
    """
    _check_positive(horizon_days=horizon_days, n=n, step_days=step_days)
    if min_history_days < 0:
        raise ValueError(f"min_history_days must be 0 or more (got {min_history_days})")
    with conn.transaction():
        first, last = _purchase_range(conn)
    if first is None or last is None:
        raise ValueError("the warehouse holds no purchases: there is no as-of date to train on")
    latest = last - timedelta(days=int(horizon_days))
    earliest = first + timedelta(days=int(min_history_days))
    dates = [latest - timedelta(days=k * int(step_days)) for k in range(int(n))]
    dates = sorted(d for d in dates if d >= earliest)
    if not dates:
        raise ValueError(
            f"the warehouse's purchases run from {first} to {last}: too short for a "
            f"{horizon_days}-day outcome window after {min_history_days} days of history"
        )
    if len(dates) < n:
        msg = (
            f"only {len(dates)} of the {n} as-of dates requested: the warehouse's purchases "
            f"run from {first} to {last}, and a date needs {min_history_days} days of "
            f"history before it and a {horizon_days}-day outcome window after it"
        )
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)
    return dates


def _check_date(as_of: date) -> None:
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise TypeError(f"as_of must be a Hong Kong business date (datetime.date), got {as_of!r}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive whole number (got {value!r})")


def _tables() -> dict[str, sql.Identifier]:
    return {
        "orders": sql.Identifier(*ORDERS_TABLE),
        "sales": sql.Identifier(*SALES_TABLE),
        "complaints": sql.Identifier(*COMPLAINTS_TABLE),
        "sessions": sql.Identifier(*WEB_SESSIONS_TABLE),
        "tiers": sql.Identifier(*LOYALTY_TIERS_TABLE),
    }


def _purchase_range(conn: psycopg.Connection) -> tuple[date | None, date | None]:
    """First purchase date and latest business date of the purchases table."""
    row = conn.execute(sql.SQL(_RANGE_SQL).format(**_tables())).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _query(conn: psycopg.Connection, template: str, params: dict) -> pd.DataFrame:
    query = sql.SQL(template).format(**_tables())
    with conn.cursor() as cur:
        cur.execute(query, params)
        columns = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _typed(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    frame = frame.astype(dtypes)
    frame["customer_key"] = frame["customer_key"].astype(str)
    return frame.set_index("customer_key")


def training_frame(
    conn: psycopg.Connection, as_of_list: list[date], horizon_days: int
) -> pd.DataFrame:
    """Features and outcomes stacked over several as-of dates: the rows a model learns from.

    One row per (``as_of``, customer): ``customer_features`` at that date
    joined to its ``future_outcomes`` over ``horizon_days``. Index
    (``as_of``, ``customer_key``). Scoring uses ``customer_features`` alone,
    so training and scoring share one feature path.
    """
    frames = []
    for as_of in as_of_list:
        features = customer_features(conn, as_of)
        outcomes = future_outcomes(conn, as_of, horizon_days)
        frame = features.join(outcomes, how="inner")
        frame.insert(0, "as_of", pd.Timestamp(as_of))
        frames.append(frame.reset_index())
    if not frames:
        raise ValueError("no as-of date given: nothing to train on")
    return pd.concat(frames, ignore_index=True).set_index(["as_of", "customer_key"])
