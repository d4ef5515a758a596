"""RFM segmentation into ``reporting.customer_segments``.

Recency, frequency and monetary value per customer_key come from the sales
fact as of the business date (an aggregate computed in SQL: the ML side never
reads line-level history). Each is scored 1-5 by quintile over the customers
active in the last 365 days and named with the classic RFM segment map
(Champions, Loyal, At risk, ...). A deliberately simple, explainable first
version; the scoring and names are versioned (``MODEL_VERSION``).

Publishing replaces the rows of that ``as_of_date`` in one transaction, so a
re-run for the same day gives the same table and a failed run leaves the
previous publication in place.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
import psycopg

log = logging.getLogger(__name__)

MODEL_VERSION = "rfm-quintile-v1"
LOOKBACK_DAYS = 365

DDL = """
create schema if not exists reporting;
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
    'RFM scores and named segment per customer_key, one publication per as_of_date (HK business date).';
"""

FEATURES_SQL = """
select customer_key,
       (%(as_of)s::date - max(business_date)) as recency_days,
       count(distinct channel || ':' || order_ref) as frequency,
       sum(net_amount) as monetary
from marts.fct_sales
where customer_key is not null
  and not is_void
  and business_date <= %(as_of)s::date
  and business_date > %(as_of)s::date - %(lookback)s
group by customer_key
"""


def score(features: pd.DataFrame) -> pd.DataFrame:
    """Quintile scores (5 = best) and segment names for each customer."""
    out = features.copy()
    # Rank first so ties and heavy skew still give five populated bins.
    out["r_score"] = _quintile(-out["recency_days"].astype(float))
    out["f_score"] = _quintile(out["frequency"].astype(float))
    out["m_score"] = _quintile(out["monetary"].astype(float))
    out["segment"] = [
        name_segment(r, f, m) for r, f, m in zip(out.r_score, out.f_score, out.m_score, strict=True)
    ]
    return out


def _quintile(values: pd.Series) -> pd.Series:
    if values.empty:
        return values.astype("int64")
    pct = values.rank(method="first", pct=True)
    return np.ceil(pct * 5).clip(1, 5).astype("int64")


def name_segment(r: int, f: int, m: int) -> str:
    """The classic RFM map, on recency and the mean of frequency and monetary."""
    fm = (f + m) / 2
    if r >= 4 and fm >= 4:
        return "Champions"
    if r >= 3 and fm >= 3:
        return "Loyal"
    if r >= 4 and fm < 2:
        return "New"
    if r >= 3:
        return "Potential loyalist"
    if r == 2 and fm >= 3:
        return "At risk"
    if r == 1 and fm >= 4:
        return "Cannot lose them"
    if r == 2:
        return "Need attention"
    return "Hibernating"


def publish_segments(*, warehouse_url: str, as_of: date) -> dict[str, int]:
    """Compute and publish the segments for ``as_of``; returns the segment sizes."""
    with psycopg.connect(warehouse_url) as conn:
        cur = conn.execute(FEATURES_SQL, {"as_of": as_of, "lookback": LOOKBACK_DAYS})
        features = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        if features.empty:
            raise RuntimeError(
                f"no customer sales up to {as_of}: refusing to publish empty segments"
            )
        scored = score(features)
        with conn.transaction():
            conn.execute(DDL)
            conn.execute("delete from reporting.customer_segments where as_of_date = %s", (as_of,))
            with conn.cursor().copy(
                "copy reporting.customer_segments (as_of_date, customer_key, recency_days, frequency,"
                " monetary, r_score, f_score, m_score, segment, model_version) from stdin"
            ) as copy:
                for row in scored.itertuples(index=False):
                    copy.write_row(
                        (
                            as_of,
                            row.customer_key,
                            int(row.recency_days),
                            int(row.frequency),
                            row.monetary,
                            int(row.r_score),
                            int(row.f_score),
                            int(row.m_score),
                            row.segment,
                            MODEL_VERSION,
                        )
                    )
    sizes = scored["segment"].value_counts().sort_index().to_dict()
    log.info("published %d customers for %s: %s", len(scored), as_of, sizes)
    return {str(k): int(v) for k, v in sizes.items()}
