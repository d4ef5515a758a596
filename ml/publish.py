"""Stage, check and publish the models' outputs, one as-of date at a time.

Each nightly model task writes its rows for the business date into
``ml_stage.<table>`` (same columns as ``reporting.<table>``; the DDL is
``include/sql/004_reporting_ml.sql``). ``check_staged`` then checks them and
``publish`` copies every staged table's rows of that date to ``reporting`` in
one transaction, replacing the date's previous publication. So a failed check
leaves the previous publication in place, and a re-run replaces rows instead
of adding them.

Checks (each failure is one sentence naming the table):
- coverage: every customer scored by the RFM mart for the date (a purchase in
  the last 365 days) has a churn score, a customer forecast and a segment;
- ranges: probabilities in [0, 1], percentiles in [0, 100], no negative
  expected purchases, intervals that hold their point;
- no personal data: every staged ``customer_key`` is a pseudonymous key known
  to ``marts.dim_customer`` (so no e-mail, phone or card number can have
  slipped in as a key), and no staged column is outside the table's contract.

With the churn scores, the same transaction rebuilds the date's
``reporting.winback_list``: the scored customers in ``ml.churn.WINBACK_BANDS``
who may be sent marketing that night (``marts.dim_customer.is_marketing_opt_in``,
the flag every contact list of the marts uses), highest probability first.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd
import psycopg
from psycopg import sql

from ml.churn import WINBACK_BANDS

log = logging.getLogger(__name__)

#: The tables the models publish, with their columns (as in 004_reporting_ml.sql).
TABLES: dict[str, tuple[str, ...]] = {
    "customer_clusters": (
        "as_of_date", "customer_key", "segment_id", "segment_name", "distance",
        "model_version", "run_id",
    ),
    "customer_cluster_profiles": (
        "as_of_date", "segment_id", "segment_name", "customers", "share", "profile",
        "model_version", "run_id",
    ),
    "churn_scores": (
        "as_of_date", "customer_key", "horizon_days", "churn_probability", "churn_percentile",
        "risk_band", "drivers", "model_version", "run_id",
    ),
    "customer_forecast": (
        "as_of_date", "customer_key", "horizon_days", "period_start", "period_end",
        "expected_purchases", "expected_spend", "model_version", "run_id",
    ),
    "sales_forecast": (
        "as_of_date", "level", "series_key", "target_date", "horizon_day", "point", "lo80",
        "hi80", "lo95", "hi95", "model_version", "run_id",
    ),
}  # fmt: skip

#: Tables keyed by customer: each must cover every customer the RFM mart scores.
CUSTOMER_TABLES = ("customer_clusters", "churn_scores", "customer_forecast")
RFM_POPULATION = "select customer_key from marts.fct_customer_rfm where as_of_date = %(as_of)s"

#: The contact list derived from the churn scores at publication (see the module docstring).
WINBACK_SQL = """
insert into reporting.winback_list (
    as_of_date, customer_key, churn_probability, churn_percentile, risk_band, drivers,
    priority_rank, model_version, run_id
)
select
    s.as_of_date, s.customer_key, s.churn_probability, s.churn_percentile, s.risk_band,
    s.drivers,
    row_number() over (order by s.churn_probability desc, s.customer_key),
    s.model_version, s.run_id
from reporting.churn_scores as s
inner join marts.dim_customer as d on s.customer_key = d.customer_key
where s.as_of_date = %(as_of)s and s.risk_band = any(%(bands)s) and d.is_marketing_opt_in
"""

RANGE_CHECKS = {
    "churn_scores": (
        "churn_probability not between 0 and 1 or churn_percentile not between 0 and 100",
        "a churn probability outside [0, 1] or a percentile outside [0, 100]",
    ),
    "customer_forecast": (
        "expected_purchases < 0 or expected_purchases = 'NaN' or expected_spend = 'NaN'",
        "a negative or NaN expected purchase count or spend",
    ),
    "sales_forecast": (
        "not (lo95 <= lo80 and lo80 <= point and point <= hi80 and hi80 <= hi95)",
        "an interval that does not hold its point (lo95 <= lo80 <= point <= hi80 <= hi95)",
    ),
}


def _ident(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def ensure_stage(conn: psycopg.Connection) -> None:
    """The staging twins of the reporting tables, without their constraints: a bad row
    is staged and then named by ``check_staged``; reporting's constraints stay the last
    line of defence."""
    for table in TABLES:
        conn.execute(
            sql.SQL("create table if not exists {} (like {} including defaults)").format(
                _ident("ml_stage", table), _ident("reporting", table)
            )
        )


def stage(conn: psycopg.Connection, table: str, as_of: date, frame: pd.DataFrame) -> int:
    """Replace ``ml_stage.<table>``'s rows of ``as_of`` with ``frame``; returns the row count."""
    columns = TABLES[table]
    extra = set(frame.columns) - set(columns)
    missing = set(columns) - set(frame.columns)
    if extra or missing:
        raise ValueError(
            f"rows for reporting.{table} do not match its contract: "
            f"missing {sorted(missing)}, not in the table {sorted(extra)}"
        )
    target = _ident("ml_stage", table)
    with conn.transaction():
        ensure_stage(conn)
        conn.execute(sql.SQL("delete from {} where as_of_date = %s").format(target), (as_of,))
        copy = sql.SQL("copy {} ({}) from stdin").format(
            target, sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with conn.cursor().copy(copy) as out:
            for row in zip(*(_values(frame[c]) for c in columns), strict=True):
                out.write_row(row)
    return len(frame)


def _values(column: pd.Series) -> list:
    """The column as plain Python values (one conversion per column, not per value)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return [None if pd.isna(v) else v.date() for v in column]
    if column.dtype == object:
        return [_plain(v) for v in column]
    return column.tolist()


def _plain(value):
    if value is None or (isinstance(value, float) and value != value):
        return value
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.date()
    return value


def staged_counts(conn: psycopg.Connection, as_of: date) -> dict[str, int]:
    ensure_stage(conn)
    return {
        table: conn.execute(
            sql.SQL("select count(*) from {} where as_of_date = %s").format(
                _ident("ml_stage", table)
            ),
            (as_of,),
        ).fetchone()[0]
        for table in TABLES
    }


def check_staged(conn: psycopg.Connection, as_of: date) -> list[str]:
    """What is wrong with the staged rows of ``as_of`` (empty: publishable)."""
    problems: list[str] = []
    counts = staged_counts(conn, as_of)
    population = conn.execute(
        f"select count(*) from ({RFM_POPULATION}) p", {"as_of": as_of}
    ).fetchone()[0]
    for table in CUSTOMER_TABLES:
        if counts[table] == 0:
            continue  # that model did not run tonight (too little history): nothing to publish
        missing = conn.execute(
            sql.SQL(
                "select count(*) from (" + RFM_POPULATION + ") p where not exists"
                " (select 1 from {} s where s.as_of_date = %(as_of)s"
                " and s.customer_key = p.customer_key)"
            ).format(_ident("ml_stage", table)),
            {"as_of": as_of},
        ).fetchone()[0]
        if missing:
            problems.append(
                f"ml_stage.{table}: {missing} of the {population} customers scored by "
                f"marts.fct_customer_rfm on {as_of} have no row"
            )
        unknown = conn.execute(
            sql.SQL(
                "select count(*) from {} s where s.as_of_date = %s and not exists"
                " (select 1 from marts.dim_customer d where d.customer_key = s.customer_key)"
            ).format(_ident("ml_stage", table)),
            (as_of,),
        ).fetchone()[0]
        if unknown:
            problems.append(
                f"ml_stage.{table}: {unknown} rows whose customer_key is not a pseudonymous "
                "key of marts.dim_customer (personal data must never be a key)"
            )
    for table, (condition, what) in RANGE_CHECKS.items():
        bad = conn.execute(
            sql.SQL("select count(*) from {} where as_of_date = %s and (" + condition + ")").format(
                _ident("ml_stage", table)
            ),
            (as_of,),
        ).fetchone()[0]
        if bad:
            problems.append(f"ml_stage.{table}: {bad} rows with {what}")
    return problems


def publish(conn: psycopg.Connection, as_of: date) -> dict[str, int]:
    """Check, then copy every staged table's rows of ``as_of`` to reporting, in one transaction.

    Raises RuntimeError (listing every problem) when a check fails or nothing
    is staged; the previous publication then stays in place.
    """
    problems = check_staged(conn, as_of)
    counts = staged_counts(conn, as_of)
    if not any(counts.values()):
        problems.append(f"no model output is staged for {as_of}: nothing to publish")
    if problems:
        raise RuntimeError(f"model outputs for {as_of} not published: " + "; ".join(problems) + ".")
    published = {}
    with conn.transaction():
        for table, n in counts.items():
            if n == 0:
                continue
            columns = sql.SQL(", ").join(map(sql.Identifier, TABLES[table]))
            target, source = _ident("reporting", table), _ident("ml_stage", table)
            conn.execute(sql.SQL("delete from {} where as_of_date = %s").format(target), (as_of,))
            conn.execute(
                sql.SQL("insert into {} ({}) select {} from {} where as_of_date = %s").format(
                    target, columns, columns, source
                ),
                (as_of,),
            )
            published[table] = n
        if "churn_scores" in published:
            conn.execute("delete from reporting.winback_list where as_of_date = %s", (as_of,))
            cursor = conn.execute(WINBACK_SQL, {"as_of": as_of, "bands": list(WINBACK_BANDS)})
            published["winback_list"] = cursor.rowcount
    log.info("published model outputs for %s: %s", as_of, published)
    return published
