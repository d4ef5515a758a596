"""The warehouse tables ml/features.py reads, as minimal real tables."""

from __future__ import annotations

import psycopg
import pytest

FEATURE_TABLES_DDL = """
create schema if not exists intermediate;
create schema if not exists marts;
create table intermediate.int_customers__orders (
    customer_key text, channel text, order_ref text, business_date date,
    is_purchase boolean, has_return boolean, net_amount numeric(14, 2));
create table marts.fct_sales (
    customer_key text, business_date date, category text,
    is_return boolean, is_void boolean, is_unknown_sku boolean);
create table marts.fct_complaints (customer_key text, business_date date);
create table marts.fct_web_sessions (customer_key text, business_date date, is_logged_in boolean);
create table intermediate.int_customers__loyalty_tier_history (
    customer_key text, tier_date date, to_tier text);
"""


@pytest.fixture
def feature_db(fresh_db_url) -> str:
    """An empty database holding the (empty) tables the feature queries read."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(FEATURE_TABLES_DDL)
    return fresh_db_url
