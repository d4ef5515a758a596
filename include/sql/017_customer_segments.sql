-- reporting.customer_segments, created here rather than by its first publication:
-- a migration's table is the admin's, so its department grants are applied at once
-- (include/access.py), and the publisher (include/roles.py) only writes its rows.
create table if not exists reporting.customer_segments (
    as_of_date date not null,
    customer_key text not null,
    recency_days int not null,
    frequency int not null,
    monetary numeric(14, 2) not null,
    r_score smallint not null,
    f_score smallint not null,
    m_score smallint not null,
    segment text not null,
    model_version text not null,
    primary key (as_of_date, customer_key)
);
comment on table reporting.customer_segments is
    'RFM scores and named segment per customer_key (from marts.fct_customer_rfm, rules version in model_version), one publication per as_of_date (HK business date).';
