"""Forecast versus actual by period, from the forecast ledger."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ml.accuracy import sales_accuracy


def test_sales_accuracy_by_week_with_hand_checked_numbers():
    # Two forecasts of the total for Mon 2026-11-30 and Tue 12-01 (made on 11-29, days 1
    # and 2), and one for Mon 12-07 (day 8) that has no actual yet.
    forecasts = pd.DataFrame(
        {
            "level": "total",
            "series_key": "total",
            "target_date": [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 7)],
            "horizon_day": [1, 2, 8],
            "point": [100.0, 200.0, 300.0],
            "lo80": [90.0, 150.0, 0.0],
            "hi80": [110.0, 190.0, 1.0],
            "lo95": [80.0, 100.0, 0.0],
            "hi95": [120.0, 260.0, 1.0],
        }
    )
    actuals = pd.DataFrame(
        {
            "level": "total",
            "key": "total",
            "business_date": pd.to_datetime(["2026-11-30", "2026-12-01"]),
            "net_sales": [120.0, 250.0],
        }
    )
    rows = sales_accuracy(forecasts, actuals)
    week = rows[(rows.period_type == "week") & (rows.horizon_bucket == "1-7")]
    (row,) = week.to_dict("records")
    assert row["period_start"] == date(2026, 11, 30)  # the Monday
    assert (row["forecast"], row["actual"], row["points"]) == (300.0, 370.0, 2)
    assert row["abs_error"] == 20.0 + 50.0
    assert row["wape"] == pytest.approx(70 / 370)
    assert row["bias"] == pytest.approx(-70 / 370)
    assert (row["coverage80"], row["coverage95"]) == (0.0, 1.0)
    month = rows[(rows.period_type == "month") & (rows.horizon_bucket == "all")]
    assert sorted(month["period_start"]) == [date(2026, 11, 1), date(2026, 12, 1)]
    assert set(rows["horizon_bucket"]) == {"1-7", "all"}  # day 8 has no actual: left out
