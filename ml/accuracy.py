"""``reporting.forecast_accuracy``: the forecast ledger against what actually happened.

Rebuilt after every publication from every forecast whose target has been
observed, so anyone can see how right last week's, last month's or last
quarter's forecasts were:

- **sales** (``forecast_kind = 'sales'``): every (forecast date, target date)
  point of ``reporting.sales_forecast`` with a target on or before the
  business date, against the day's actual net sales of the same series
  (``ml.sales_forecast.daily_sales``, the forecast's own definition), grouped
  by the calendar week (Monday), month and quarter of the target date, the
  level and series, and the horizon bucket (days 1-7, 8-14, 15-28) and
  ``all``;
- **customers** (``forecast_kind = 'customer_purchases'`` and
  ``'customer_spend'``): each as-of date's 13-week customer forecast whose
  window has ended, summed over customers, against what they did
  (``ml.features.future_outcomes``), as one ``quarter`` row whose
  ``period_start`` is the window's first day (level ``customer``).

Columns: forecast and actual totals, abs_error = sum |forecast - actual| over
the points, wape = abs_error / sum |actual|, bias = (forecast - actual) /
sum |actual| (negative: under-forecast), points, and the share of actuals
inside the 80% and 95% intervals (sales only).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import psycopg

COLUMNS = (
    "forecast_kind", "period_type", "period_start", "level", "series_key", "horizon_bucket",
    "forecast", "actual", "abs_error", "wape", "bias", "points", "coverage80", "coverage95",
)  # fmt: skip
PERIODS = {"week": "W-SUN", "month": "M", "quarter": "Q"}


def _summary(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.assign(
        abs_error=(frame["forecast"] - frame["actual"]).abs(),
        abs_actual=frame["actual"].abs(),
    )
    grouped = frame.groupby(keys, sort=True)
    out = grouped.agg(
        forecast=("forecast", "sum"),
        actual=("actual", "sum"),
        abs_error=("abs_error", "sum"),
        abs_actual=("abs_actual", "sum"),
        points=("forecast", "size"),
        coverage80=("in80", "mean"),
        coverage95=("in95", "mean"),
    ).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = out["abs_actual"].where(out["abs_actual"] > 0)
        out["wape"] = out["abs_error"] / scale
        out["bias"] = (out["forecast"] - out["actual"]) / scale
    return out.drop(columns="abs_actual")


def sales_accuracy(forecasts: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Rows of forecast_accuracy from sales forecast points and daily actuals (pure).

    ``forecasts``: level, series_key, target_date, horizon_day, point, lo80, hi80,
    lo95, hi95. ``actuals``: level, key, business_date, net_sales. Points
    without an actual (not observed yet, or a series with no sales that day
    and no row) are left out.
    """
    from ml.sales_forecast import HORIZON_BUCKETS

    if forecasts.empty or actuals.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    act = actuals.rename(columns={"key": "series_key", "business_date": "target_date"})
    act["target_date"] = pd.to_datetime(act["target_date"])
    points = forecasts.assign(target_date=pd.to_datetime(forecasts["target_date"])).merge(
        act[["level", "series_key", "target_date", "net_sales"]],
        on=["level", "series_key", "target_date"],
        how="inner",
    )
    points = points.rename(columns={"point": "forecast", "net_sales": "actual"})
    points["in80"] = (points["lo80"] <= points["actual"]) & (points["actual"] <= points["hi80"])
    points["in95"] = (points["lo95"] <= points["actual"]) & (points["actual"] <= points["hi95"])
    bucket = pd.Series("other", index=points.index)
    for lo, hi in HORIZON_BUCKETS:
        bucket[(points["horizon_day"] >= lo) & (points["horizon_day"] <= hi)] = f"{lo}-{hi}"
    frames = []
    for period_type, freq in PERIODS.items():
        start = points["target_date"].dt.to_period(freq).dt.start_time.dt.date
        for label in ("by bucket", "all"):
            part = points.assign(
                period_type=period_type,
                period_start=start,
                horizon_bucket=bucket if label == "by bucket" else "all",
            )
            frames.append(
                _summary(
                    part, ["period_type", "period_start", "level", "series_key", "horizon_bucket"]
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "forecast_kind", "sales")
    return out.loc[:, list(COLUMNS)]


def customer_accuracy(conn: psycopg.Connection, until: date) -> pd.DataFrame:
    """forecast_accuracy rows of every customer forecast whose window ended by ``until``."""
    from ml.features import future_outcomes

    origins = conn.execute(
        "select as_of_date, horizon_days, min(period_start) from reporting.customer_forecast"
        " where period_end <= %s group by 1, 2 order by 1",
        (until,),
    ).fetchall()
    frames = []
    for as_of, horizon, start in origins:
        predicted = pd.DataFrame(
            conn.execute(
                "select customer_key, expected_purchases, expected_spend"
                " from reporting.customer_forecast where as_of_date = %s",
                (as_of,),
            ).fetchall(),
            columns=["customer_key", "expected_purchases", "expected_spend"],
        ).set_index("customer_key")
        actual = future_outcomes(conn, as_of, horizon).reindex(predicted.index)
        for kind, p_col, a_col in (
            ("customer_purchases", "expected_purchases", "purchases"),
            ("customer_spend", "expected_spend", "spend"),
        ):
            frames.append(
                pd.DataFrame(
                    {
                        "forecast_kind": kind,
                        "period_type": "quarter",
                        "period_start": start,
                        "level": "customer",
                        "series_key": "all customers",
                        "horizon_bucket": f"{horizon} days",
                        "forecast": predicted[p_col].astype(float),
                        "actual": actual[a_col].fillna(0).astype(float),
                        "in80": np.nan,
                        "in95": np.nan,
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    keys = ["forecast_kind", "period_type", "period_start", "level", "series_key", "horizon_bucket"]
    return _summary(pd.concat(frames, ignore_index=True), keys).loc[:, list(COLUMNS)]


def refresh(conn: psycopg.Connection, until: date) -> int:
    """Rebuild reporting.forecast_accuracy from the ledger, actuals up to ``until``."""
    from ml.sales_forecast import daily_sales

    forecasts = pd.DataFrame(
        conn.execute(
            "select level, series_key, target_date, horizon_day, point, lo80, hi80, lo95, hi95"
            " from reporting.sales_forecast where target_date <= %s",
            (until,),
        ).fetchall(),
        columns=[
            "level", "series_key", "target_date", "horizon_day", "point", "lo80", "hi80",
            "lo95", "hi95",
        ],
    )  # fmt: skip
    parts = [
        sales_accuracy(forecasts, daily_sales(conn, until=until)),
        customer_accuracy(conn, until),
    ]
    parts = [part for part in parts if len(part)]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
    with conn.transaction():
        conn.execute("delete from reporting.forecast_accuracy")
        if len(rows):
            # COPY cannot write a table under row-level security (store operations
            # reads its region's rows): copied into a twin, inserted from there
            columns = ", ".join(COLUMNS)
            conn.execute(
                "create temp table _forecast_accuracy on commit drop as"
                f" select {columns} from reporting.forecast_accuracy with no data"
            )
            with conn.cursor().copy(f"copy _forecast_accuracy ({columns}) from stdin") as copy:
                for row in rows.itertuples(index=False, name=None):
                    copy.write_row(
                        tuple(None if isinstance(v, float) and v != v else v for v in row)
                    )
            conn.execute(
                f"insert into reporting.forecast_accuracy ({columns})"
                f" select {columns} from _forecast_accuracy"
            )
    return len(rows)
