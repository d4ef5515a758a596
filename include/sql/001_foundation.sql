-- Warehouse schemas and the tables the loaders write. Applied by
-- `crm warehouse start` (idempotent: every statement is IF NOT EXISTS).
-- raw.*        landed as-is, typed, one row per source row, + load lineage
-- ops.*        load ledger and watermarks
-- quarantine.* rows that could not be loaded, with the reason
create schema if not exists raw;
create schema if not exists ops;
create schema if not exists quarantine;
create schema if not exists reporting;

create table if not exists ops.load_ledger (
    load_id bigserial primary key,
    source text not null,
    object text not null,
    object_size bigint,
    checksum text,
    business_date date,
    rows_read bigint not null default 0,
    rows_loaded bigint not null default 0,
    rows_skipped bigint not null default 0,
    rows_quarantined bigint not null default 0,
    status text not null check (status in ('running', 'loaded', 'failed')),
    message text,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz
);
-- A landing file (key + content checksum) loads once. Shop batches are windows
-- of a table, which a re-run may legitimately read again (and skip every row).
-- The store master is replaced whole under one key (Source.replaced_whole in
-- include/loaders.py): a version sent again after another (A, B, A) loads again.
drop index if exists ops.load_ledger_once;
drop index if exists ops.load_ledger_file_once;
create unique index if not exists load_ledger_landing_file_once
    on ops.load_ledger (source, object, checksum)
    where status = 'loaded' and source not in ('shop', 'stores');

create table if not exists ops.watermarks (
    source text primary key,
    high_watermark timestamptz not null,
    updated_at timestamptz not null default clock_timestamp()
);

create table if not exists quarantine.rejected_rows (
    load_id bigint not null,
    source text not null,
    object text not null,
    line_no bigint,
    field text,
    reason text not null,
    raw_content text,
    quarantined_at timestamptz not null default clock_timestamp()
);

-- Online shop (extracted incrementally; one row per version seen)
create table if not exists raw.shop_customers (
    customer_id bigint not null,
    email text,
    phone text,
    full_name text,
    date_of_birth date,
    district text,
    marketing_opt_in boolean,
    created_at timestamptz,
    updated_at timestamptz not null,
    deleted_at timestamptz,
    _load_id bigint not null,
    primary key (customer_id, updated_at)
);
create table if not exists raw.shop_products (
    sku text not null,
    name text,
    category text,
    subcategory text,
    brand text,
    unit_price numeric(12, 2),
    active boolean,
    updated_at timestamptz not null,
    _load_id bigint not null,
    primary key (sku, updated_at)
);
create table if not exists raw.shop_orders (
    order_id bigint not null,
    customer_id bigint,
    order_ts timestamptz,
    status text,
    payment_method text,
    delivery_district text,
    shipping_fee numeric(12, 2),
    discount numeric(12, 2),
    currency text,
    updated_at timestamptz not null,
    _load_id bigint not null,
    primary key (order_id, updated_at)
);
create table if not exists raw.shop_order_items (
    order_id bigint not null,
    line_no int not null,
    sku text,
    quantity int,
    unit_price numeric(12, 2),
    line_discount numeric(12, 2),
    _load_id bigint not null,
    primary key (order_id, line_no)
);
create table if not exists raw.shop_order_status_history (
    order_id bigint not null,
    status text not null,
    changed_at timestamptz not null,
    _load_id bigint not null,
    primary key (order_id, status, changed_at)
);

-- Landing-zone files: every row of every file, with its file and record number.
-- Values are checked against the contract's field types before they reach these
-- tables (include/loaders.py: FieldType, on both load paths); required fields are
-- also NOT NULL. _line counts the file's records from 1.
create table if not exists raw.pos_lines (
    receipt_no text not null,
    store_code text not null,
    txn_ts timestamp not null,          -- Hong Kong local time, as exported
    txn_type text not null,
    line_no int not null,
    sku text not null,
    quantity int not null,
    unit_price numeric(12, 2) not null,
    discount numeric(12, 2),
    payment_method text,
    loyalty_card_no text,
    staff_id text,
    _business_date date not null,   -- from the file path
    _file_store_code text not null, -- from the file name
    _file_seq int not null,         -- from the file name; higher supersedes
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);
create table if not exists raw.stores (
    store_code text not null,
    store_name text,
    district text,
    region text,
    opened_on date,
    closed_on date,
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);
create table if not exists raw.loyalty_members (
    card_no text not null,
    full_name text,
    phone text,
    email text,
    district text,
    tier text,
    joined_on date,
    marketing_opt_in boolean,
    updated_at timestamp not null,      -- Hong Kong local time, as exported
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);
create table if not exists raw.web_events (
    event_id uuid not null,
    event_ts timestamptz not null,
    event_type text not null,
    anonymous_id text,
    customer_id bigint,
    session_id text,
    page_url text,
    referrer text,
    sku text,
    search_query text,
    order_id bigint,
    utm_source text,
    utm_medium text,
    utm_campaign text,
    device_type text,
    ip text,
    user_agent text,
    extra jsonb,               -- fields the contract does not know yet
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);
create table if not exists raw.complaint_tickets (
    ticket_id text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    channel text,
    customer_email text,
    customer_phone text,
    customer_name text,
    customer_loyalty_card_no text,
    order_ref text,
    category text,
    severity text,
    status text not null,
    first_response_at timestamptz,
    resolved_at timestamptz,
    satisfaction_score int,
    assigned_team text,
    description text,
    extra jsonb,
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);
create table if not exists raw.privacy_requests (
    request_id text not null,
    received_at timestamptz not null,
    request_type text not null,
    email text,
    phone text,
    loyalty_card_no text,
    _load_id bigint not null,
    _file text not null,
    _line bigint not null
);

-- Expected files that have not arrived: a store without its POS export for a
-- day it was open, a daily source (loyalty, complaints, privacy) without its
-- file of the day. Resolved when the file is loaded later; never a silent zero.
create table if not exists ops.load_gaps (
    source text not null,
    business_date date not null,
    expected text not null,
    detected_at timestamptz not null default clock_timestamp(),
    resolved_at timestamptz,
    primary key (source, business_date, expected)
);
