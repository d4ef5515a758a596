-- The loader's sweeps of a dated source's whole landing history (every
-- CRM_LATE_SWEEP_DAYS, include/loaders.py _candidates), and the files a sweep
-- found that no nightly listing had seen: dated before the late window
-- (CRM_LATE_DAYS) or outside any date folder. The raw gate warns about the late
-- files a night loaded (expectations/raw.py): the published history of their
-- date changed.
create table if not exists ops.landing_sweeps (
    source text not null,
    business_date date not null,
    swept_at timestamptz not null default clock_timestamp(),
    files_found_late integer not null,
    primary key (source, business_date)
);

create table if not exists ops.late_files (
    load_id bigint primary key references ops.load_ledger (load_id),
    source text not null,
    object text not null,
    found_for date not null,
    found_at timestamptz not null default clock_timestamp()
);
