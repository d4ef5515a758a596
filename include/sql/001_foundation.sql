-- Warehouse schemas and the tables the loaders write: the first migration,
-- run once per warehouse by include/warehouse.py apply_schema (its statements
-- are IF NOT EXISTS, so warehouses made before migrations were recorded take it).
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

-- The raw tables of the landing sources and of the shop are not here: they are
-- made from contract/sources.yml (include/contract.py) by include/warehouse.py
-- apply_schema, after these migrations.

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
