"""Suites for the marts: the grain and the joins every report and model relies on.

Runs after dbt and before anything is published. dbt's own tests already run
after each model; this gate is the last word, written once for both marts and
recorded in Data Docs next to the raw gate.

- ``marts_dim_customer``: one row per customer key, no null key, not empty
  (every valid ``CRM_SOURCES`` declares shop or loyalty, which bring
  customers). A duplicate key double-counts a customer's sales in every join.
- ``marts_fct_sales``: one row per sales line key, not empty, every customer
  key known to ``dim_customer`` (an unknown key drops sales from customer
  reports without an error). An unexpected channel is a warning: the line is
  still counted in totals, but the channel mapping needs extending. So is a
  declared sales channel (``online`` with the shop, ``store`` with POS)
  without a single line: the raw gate already stops a night whose declared
  source loaded nothing, and a new shop may have had only cancelled orders.

Reconciliation, rather than repeating dbt's tests (all critical):

- ``marts_fct_sales`` also holds daily lines and net sales per channel and store
  equal to staging's (``stg_pos__lines``; ``stg_shop__order_items`` of orders not
  cancelled), for every date up to the business date: a join that drops or
  doubles lines, or an incremental model that drifted, differs on some day.
- ``staging_pos_lines``: every store-day's current POS export (its highest
  seq) is in staging with all its raw rows (lines and quantity per load), and
  no superseded export is: staging neither drops a file or a row nor repeats one.
- ``privacy_columns`` and ``privacy_requests`` (expectations/privacy.py): every
  personal-looking column of the warehouse is classified by contract/privacy.yml;
  a privacy request that matched nobody is a warning.
- ``identity_person_map``: no person holds more than
  ``MAX_ACCOUNTS_PER_PERSON`` shop accounts or loyalty cards, the bound of a
  chain of merges the over-merge guards should have stopped.

The declared sources are ``CRM_SOURCES`` (include.config.declared_sources): a
retailer without an online shop has no online sales, one without tills no
store sales; both may have empty web sessions or complaints, which the gate
does not require.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe

from expectations import privacy
from expectations.spec import CRITICAL, WARNING, TableValidation, severity
from include.config import HK_TZ, declared_sources

DIM_CUSTOMER_SUITE = "marts_dim_customer"
FCT_SALES_SUITE = "marts_fct_sales"
STAGING_POS_SUITE = "staging_pos_lines"
PERSON_MAP_SUITE = "identity_person_map"

MAX_ACCOUNTS_PER_PERSON = 3
"""More shop accounts, or more loyalty cards, in one person than this is an over-merge."""

CHANNELS = ("online", "store")

CHANNEL_SOURCES = {"online": "shop", "store": "pos"}
"""The source each sales channel comes from: a declared source's channel should have sales."""

# One row per declared channel without a single line in fct_sales.
_DECLARED_CHANNEL_WITHOUT_SALES = """
select declared.channel
from (values {channels}) as declared (channel)
where not exists (
    select 1 from (select * from {batch}) as sales where sales.channel = declared.channel
)
"""

# `{batch}` is GX's placeholder for fct_sales and is already an aliased
# subquery, hence the extra `select * from` to give it a name the correlated
# subquery can refer to.
_SALES_WITH_UNKNOWN_CUSTOMER = """
select sales.sales_line_key, sales.customer_key
from (select * from {batch}) as sales
where sales.customer_key is not null
  and not exists (
    select 1
    from marts.dim_customer as customer
    where customer.customer_key = sales.customer_key
  )
"""


# Daily lines and net sales per channel and store: fct_sales against staging.
# Staging's money for online lines is restated here on purpose (quantity x price
# less the line discount, cancelled orders excluded, a line removed from its order
# kept without money: DECISIONLOG "Sales"), so a
# reconciliation does not share the code it checks.
_SALES_NOT_RECONCILED = f"""
with facts as (
    select sales.channel, sales.store_code, sales.business_date,
        count(*) as lines, sum(sales.net_amount) as net_amount
    from (select * from {{batch}}) as sales
    group by 1, 2, 3
),
staged as (
    select 'store' as channel, pos.store_code,
        (pos.sold_at at time zone '{HK_TZ}')::date as business_date,
        count(*) as lines, sum(pos.net_amount) as net_amount
    from staging.stg_pos__lines as pos
    group by 1, 2, 3
    union all
    select 'online', null, (orders.ordered_at at time zone '{HK_TZ}')::date, count(*),
        sum(case when items.is_deleted_in_shop then 0 else
            (items.quantity * items.unit_price)::numeric(12, 2)
            - items.discount_amount::numeric(12, 2) end)
    from staging.stg_shop__order_items as items
    inner join staging.stg_shop__orders as orders on items.order_id = orders.order_id
    where not orders.is_cancelled
    group by 1, 2, 3
)
select coalesce(facts.channel, staged.channel) as channel,
    coalesce(facts.store_code, staged.store_code) as store_code,
    coalesce(facts.business_date, staged.business_date) as business_date,
    staged.lines as staged_lines, facts.lines as fact_lines,
    staged.net_amount as staged_net_amount, facts.net_amount as fact_net_amount
from facts
full join staged
    on facts.channel = staged.channel
    and facts.store_code is not distinct from staged.store_code
    and facts.business_date = staged.business_date
where (facts.lines is distinct from staged.lines
       or facts.net_amount is distinct from staged.net_amount){{date_filter}}
"""

# Every store-day's current POS export (the highest seq, of it the latest load, as
# stg_pos__lines ranks them: restated, not shared) is in staging whole, and staging
# holds no other file: a file dropped whole, a row lost or repeated, or a superseded
# export kept, shows as a load whose lines or quantity differ.
_POS_EXPORTS_NOT_STAGED = """
with staged as (
    select pos.load_id, count(*) as lines, sum(pos.quantity) as quantity
    from (select * from {batch}) as pos
    where true{staged_filter}
    group by 1
),
loads as (
    select lines._business_date, lines._file_store_code, lines._file_seq,
        lines._load_id as load_id, count(*) as lines, sum(lines.quantity) as quantity
    from raw.pos_lines as lines
    where true{raw_filter}
    group by 1, 2, 3, 4
),
landed as (
    select distinct on (loads._business_date, loads._file_store_code)
        loads.load_id, loads.lines, loads.quantity, loads._file_store_code as store_code,
        loads._business_date as business_date
    from loads
    order by loads._business_date, loads._file_store_code, loads._file_seq desc, loads.load_id desc
)
select coalesce(staged.load_id, landed.load_id) as load_id, landed.store_code,
    landed.business_date, staged.lines as staged_lines, landed.lines as raw_lines,
    staged.quantity as staged_quantity, landed.quantity as raw_quantity
from staged
full join landed on staged.load_id = landed.load_id
where staged.lines is distinct from landed.lines or staged.quantity is distinct from landed.quantity
"""

_OVER_MERGED_PERSONS = f"""
select persons.customer_key, persons.shop_accounts, persons.loyalty_cards
from (
    select identities.customer_key,
        count(*) filter (where identities.identity_type = 'shop') as shop_accounts,
        count(*) filter (where identities.identity_type = 'loyalty') as loyalty_cards
    from (select * from {{batch}}) as identities
    group by 1
) as persons
where persons.shop_accounts > {MAX_ACCOUNTS_PER_PERSON}
   or persons.loyalty_cards > {MAX_ACCOUNTS_PER_PERSON}
"""


def dim_customer_suite() -> list[gxe.Expectation]:
    """Grain of the customer dimension: customer_key is present and unique.

    Not empty, whatever the sources: every valid ``CRM_SOURCES`` has shop or loyalty.
    """
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="customer_key", **severity(CRITICAL)),
        gxe.ExpectColumnValuesToBeUnique(column="customer_key", **severity(CRITICAL)),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1,
            notes="An empty customer dimension would publish empty segments.",
            **severity(CRITICAL),
        ),
    ]


def fct_sales_suite(
    sources: tuple[str, ...] | None = None, business_date: date | None = None
) -> list[gxe.Expectation]:
    """Grain, channel values, the customer foreign key and the reconciliation with staging.

    Every channel of ``sources`` (default: the declared ones) should have sales (a warning).
    Daily sales are reconciled for every date up to ``business_date`` (all when None).
    """
    sources = declared_sources() if sources is None else sources
    channels = [channel for channel in CHANNELS if CHANNEL_SOURCES[channel] in sources]
    expectations: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(column="sales_line_key", **severity(CRITICAL)),
        gxe.ExpectColumnValuesToBeUnique(column="sales_line_key", **severity(CRITICAL)),
        gxe.ExpectColumnValuesToBeInSet(
            column="channel",
            value_set=list(CHANNELS),
            notes="A new channel is still counted in totals; extend the mapping in dbt.",
            **severity(WARNING),
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, **severity(CRITICAL)),
    ]
    if channels:
        expectations.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=_DECLARED_CHANNEL_WITHOUT_SALES.replace(
                    "{channels}", ", ".join(f"('{channel}')" for channel in channels)
                ),
                description=(
                    "Every declared sales channel has lines in fct_sales ("
                    + ", ".join(f"{c} from {CHANNEL_SOURCES[c]}" for c in channels)
                    + ")"
                ),
                notes="Listed, never blocking: check the channel's source and its mapping in dbt.",
                **severity(WARNING),
            )
        )
    expectations.append(
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=_SALES_WITH_UNKNOWN_CUSTOMER,
            description=(
                "Every fct_sales.customer_key that is not null exists in marts.dim_customer"
            ),
            **severity(CRITICAL),
        )
    )
    date_filter = (
        ""
        if business_date is None
        else "\n  and coalesce(facts.business_date, staged.business_date)"
        f" <= date '{business_date.isoformat()}'"
    )
    expectations.append(
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=_SALES_NOT_RECONCILED.replace("{date_filter}", date_filter),
            description="Daily lines and net sales per channel and store equal staging's"
            " (POS lines; shop order items of orders not cancelled)",
            **severity(CRITICAL),
        )
    )
    return expectations


def staging_pos_suite(business_date: date | None = None) -> list[gxe.Expectation]:
    """Every store-day's current POS export, dated up to ``business_date`` (all when
    None), is in staging with all its raw rows, once; no other export is."""
    staged_filter = raw_filter = ""
    if business_date is not None:
        day = f"date '{business_date.isoformat()}'"
        staged_filter = f" and pos.file_business_date <= {day}"
        raw_filter = f" and lines._business_date <= {day}"
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=_POS_EXPORTS_NOT_STAGED.replace(
                "{staged_filter}", staged_filter
            ).replace("{raw_filter}", raw_filter),
            description="Every store-day's current POS export (highest seq) is in staging with"
            " all its raw lines and quantity, and no superseded export is",
            **severity(CRITICAL),
        )
    ]


def person_map_suite() -> list[gxe.Expectation]:
    """Identity merges inside their bound."""
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=_OVER_MERGED_PERSONS,
            description=f"No person holds more than {MAX_ACCOUNTS_PER_PERSON} shop accounts"
            " or loyalty cards (a chain of merges: see int_identity__person_links)",
            **severity(CRITICAL),
        )
    ]


def validations(
    business_date: date | None = None, sources: tuple[str, ...] | None = None
) -> list[TableValidation]:
    """Everything the marts gate validates: the marts whole, sales reconciled up to the date.

    ``sources`` defaults to the declared ones (``CRM_SOURCES``).
    """
    sources = declared_sources() if sources is None else sources
    return [
        TableValidation("marts", "dim_customer", DIM_CUSTOMER_SUITE, dim_customer_suite()),
        TableValidation(
            "marts", "fct_sales", FCT_SALES_SUITE, fct_sales_suite(sources, business_date)
        ),
        TableValidation(
            "staging", "stg_pos__lines", STAGING_POS_SUITE, staging_pos_suite(business_date)
        ),
        TableValidation(
            "intermediate", "int_identity__person_map", PERSON_MAP_SUITE, person_map_suite()
        ),
        *privacy.validations(business_date),
    ]
