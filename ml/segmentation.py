"""Publish the rule-based RFM segments into ``reporting.customer_segments``.

The segmentation itself is dbt's: ``marts.fct_customer_rfm`` scores recency,
frequency and monetary value against the versioned cut-points of the seed
``rfm_score_cutpoints`` and names each cell with ``rfm_segment_rules``
(DECISIONLOG.md, "Customers and marketing"). This module only copies that
mart's rows for the business date into the reporting table the campaign and
BI tools read, so there is one definition of every segment name and of a
purchase (``int_customers__orders.is_purchase``).

Publishing replaces the rows of that ``as_of_date`` in one transaction: a
re-run for the same day gives the same table, and a failed run leaves the
previous publication in place.
"""

from __future__ import annotations

import logging
from datetime import date

import psycopg

log = logging.getLogger(__name__)

SOURCE = "marts.fct_customer_rfm"


COLUMNS = (
    "as_of_date, customer_key, recency_days, frequency, monetary, r_score, f_score, m_score,"
    " segment, model_version"
)

PUBLISH_SQL = f"""
insert into reporting.customer_segments ({COLUMNS})
select as_of_date, customer_key, recency_days, frequency, monetary, r_score, f_score, m_score,
       segment_name, 'rfm-' || rules_version
from {SOURCE}
where as_of_date = %(as_of)s
"""


def publish_segments(*, warehouse_url: str, as_of: date) -> dict[str, int]:
    """Publish the RFM segments of ``as_of``; returns the segment sizes.

    Refuses when the mart holds another business date (the marts were built
    for a different night) or no customer: an empty publication would read as
    "no customers" to every tool downstream.
    """
    with psycopg.connect(warehouse_url) as conn:
        built = [
            row[0] for row in conn.execute(f"select distinct as_of_date from {SOURCE} order by 1")
        ]
        if built != [as_of]:
            found = ", ".join(str(d) for d in built) or "no rows"
            raise RuntimeError(
                f"{SOURCE} holds {found}, not business date {as_of}: refusing to publish "
                "segments of another day (build the marts for that date first)"
            )
        with conn.transaction():
            conn.execute("delete from reporting.customer_segments where as_of_date = %s", (as_of,))
            conn.execute(PUBLISH_SQL, {"as_of": as_of})
            sizes = dict(
                conn.execute(
                    "select segment, count(*) from reporting.customer_segments"
                    " where as_of_date = %s group by segment order by segment",
                    (as_of,),
                ).fetchall()
            )
    log.info("published %d customers for %s: %s", sum(sizes.values()), as_of, sizes)
    return {str(k): int(v) for k, v in sizes.items()}
