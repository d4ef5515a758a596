"""The online shop's database (SOURCES.md section 1) and the simulator's own ``sim`` schema.

The shop tables are created if missing, with exactly the contract's columns.
Each simulated day is written in one transaction together with the
simulator's state, so a crash leaves the database at the end of a whole day
and the next call continues from there. ``sim`` is the simulator's
bookkeeping; the pipeline never reads it.
"""

from __future__ import annotations

from datetime import date

import psycopg

from include.simulator.days import DayResult
from include.simulator.world import State

SHOP_DDL = """
create table if not exists public.customers (
    customer_id bigint primary key,
    email text not null unique,
    phone text,
    full_name text,
    date_of_birth date,
    district text,
    marketing_opt_in boolean not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);
create table if not exists public.products (
    sku text primary key,
    name text not null,
    category text not null,
    subcategory text not null,
    brand text not null,
    unit_price numeric(12,2) not null,
    active boolean not null,
    updated_at timestamptz not null
);
create table if not exists public.orders (
    order_id bigint primary key,
    customer_id bigint not null references public.customers (customer_id),
    order_ts timestamptz not null,
    status text not null,
    payment_method text,
    delivery_district text,
    shipping_fee numeric(12,2) not null,
    discount numeric(12,2) not null,
    currency text not null,
    updated_at timestamptz not null
);
create table if not exists public.order_items (
    order_id bigint not null references public.orders (order_id),
    line_no int not null,
    sku text not null,
    quantity int not null,
    unit_price numeric(12,2) not null,
    line_discount numeric(12,2) not null,
    primary key (order_id, line_no)
);
create table if not exists public.order_status_history (
    order_id bigint not null references public.orders (order_id),
    status text not null,
    changed_at timestamptz not null
);
create index if not exists customers_updated_at on public.customers (updated_at);
create index if not exists products_updated_at on public.products (updated_at);
create index if not exists orders_updated_at on public.orders (updated_at);
create index if not exists order_status_history_changed_at on public.order_status_history (changed_at);
create schema if not exists sim;
create table if not exists sim.state (
    id int primary key default 1 check (id = 1),  -- one simulated world per shop database
    seed bigint not null,
    customers int not null,
    stores int not null,
    first_day date not null,
    last_day date not null,
    state_doc bytea not null,    -- queue, open tickets, cookies, counters (see world.State); zlib
    state_arrays bytea not null  -- per-person and per-product arrays, numpy .npz; zlib
);
-- already compressed: store as is, do not let TOAST compress again
alter table sim.state alter column state_doc set storage external,
    alter column state_arrays set storage external;
"""

CUSTOMER_COLS = "customer_id, email, phone, full_name, date_of_birth, district, marketing_opt_in, created_at, updated_at, deleted_at"
PRODUCT_COLS = "sku, name, category, subcategory, brand, unit_price, active, updated_at"
ORDER_COLS = "order_id, customer_id, order_ts, status, payment_method, delivery_district, shipping_fee, discount, currency, updated_at"
ITEM_COLS = "order_id, line_no, sku, quantity, unit_price, line_discount"


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crm simulator schema'))")
        conn.execute(SHOP_DDL)


def lock(conn: psycopg.Connection) -> None:
    """One simulator per shop database at a time (held until the connection closes)."""
    (free,) = conn.execute("select pg_try_advisory_lock(hashtext('crm simulator run'))").fetchone()
    if not free:
        raise RuntimeError(
            "Another simulator run is writing to this shop database; try again later."
        )


def load_state(conn: psycopg.Connection) -> tuple[dict, State] | None:
    row = conn.execute(
        "select seed, customers, stores, first_day, last_day, state_doc, state_arrays from sim.state"
    ).fetchone()
    if row is None:
        return None
    seed, customers, stores, first_day, last_day, doc, arrays = row
    meta = dict(
        seed=seed, customers=customers, stores=stores, first_day=first_day, last_day=last_day
    )
    return meta, State.loads(bytes(doc), bytes(arrays))


def shop_has_rows(conn: psycopg.Connection) -> bool:
    return conn.execute("select exists (select 1 from public.customers)").fetchone()[0]


def _copy(cur: psycopg.Cursor, table: str, cols: str, rows) -> None:
    if not rows:
        return
    with cur.copy(f"copy {table} ({cols}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def write_day(
    conn: psycopg.Connection, result: DayResult, state_doc: bytes, state_arrays: bytes, meta: dict
) -> None:
    """The day's shop changes and the simulator state, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "public.products", PRODUCT_COLS, result.products_new)
        if result.products_changed:
            cur.executemany(
                "update public.products set unit_price = %s, active = %s, updated_at = %s where sku = %s",
                [(r[5], r[6], r[7], r[0]) for r in result.products_changed],
            )
        _copy(cur, "public.customers", CUSTOMER_COLS, result.customers_new)
        if result.customers_changed:
            cur.executemany(
                "update public.customers set district = %s, marketing_opt_in = %s, updated_at = %s,"
                " deleted_at = %s where customer_id = %s",
                [(r[5], r[6], r[8], r[9], r[0]) for r in result.customers_changed],
            )
        _copy(cur, "public.orders", ORDER_COLS, list(result.orders_new.values()))
        _copy(cur, "public.order_items", ITEM_COLS, result.order_items)
        if result.orders_changed:
            cur.execute(
                "create temp table if not exists sim_order_changes"
                " (order_id bigint, status text, updated_at timestamptz) on commit delete rows"
            )
            _copy(
                cur,
                "sim_order_changes",
                "order_id, status, updated_at",
                [(oid, st, ts) for oid, (st, ts) in result.orders_changed.items()],
            )
            cur.execute(
                "update public.orders o set status = c.status, updated_at = c.updated_at"
                " from sim_order_changes c where o.order_id = c.order_id"
            )
        _copy(
            cur,
            "public.order_status_history",
            "order_id, status, changed_at",
            result.status_history,
        )
        cur.execute(
            "insert into sim.state (id, seed, customers, stores, first_day, last_day, state_doc, state_arrays)"
            " values (1, %(seed)s, %(customers)s, %(stores)s, %(first_day)s, %(last_day)s, %(doc)s, %(arrays)s)"
            " on conflict (id) do update set last_day = excluded.last_day, state_doc = excluded.state_doc,"
            " state_arrays = excluded.state_arrays",
            {**meta, "last_day": result.day, "doc": state_doc, "arrays": state_arrays},
        )


def last_day(conn: psycopg.Connection) -> date | None:
    row = conn.execute("select last_day from sim.state").fetchone()
    return row[0] if row else None
