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

The declared sources are ``CRM_SOURCES`` (include.config.declared_sources): a
retailer without an online shop has no online sales, one without tills no
store sales; both may have empty web sessions or complaints, which the gate
does not require.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe

from expectations.spec import CRITICAL, WARNING, TableValidation, severity
from include.config import declared_sources

DIM_CUSTOMER_SUITE = "marts_dim_customer"
FCT_SALES_SUITE = "marts_fct_sales"

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


def fct_sales_suite(sources: tuple[str, ...] | None = None) -> list[gxe.Expectation]:
    """Grain, channel values and the customer foreign key of the sales fact.

    Every channel of ``sources`` (default: the declared ones) should have sales (a warning).
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
    return expectations


def validations(
    business_date: date | None = None, sources: tuple[str, ...] | None = None
) -> list[TableValidation]:
    """Everything the marts gate validates. The marts are validated whole, whatever the date.

    ``sources`` defaults to the declared ones (``CRM_SOURCES``).
    """
    del business_date  # same signature as raw.validations; the checks are not date-bound
    sources = declared_sources() if sources is None else sources
    return [
        TableValidation("marts", "dim_customer", DIM_CUSTOMER_SUITE, dim_customer_suite()),
        TableValidation("marts", "fct_sales", FCT_SALES_SUITE, fct_sales_suite(sources)),
    ]
