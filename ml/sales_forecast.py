"""Daily net sales forecasts by channel, store and category, with rolling-origin backtests.

Data
    ``daily_sales`` reads one SQL aggregate of ``marts.fct_sales`` (grouping sets, so the
    ML side never reads line-level rows): net sales per business date for the series
    ``total`` / ``total``, ``channel`` / online|store, ``store`` / store_code (till lines;
    online has no store) and ``category`` / category (both channels). Net sales is the
    project's revenue, ``metric_revenue`` in ``dbt_project/macros/metrics_management.sql``:
    ``sum(net_amount)``, returns negative, VOID lines zero (they carry no money in the fact).
    Each series runs from its first day with a line to the last loaded date (at most
    ``until``); days without a line are 0.

Series status at a cutoff (``series_status``)
    *active* series are forecast. A series without a positive sales day in the
    ``CLOSED_AFTER_DAYS`` days up to the cutoff is *closed*, one with less than
    ``MIN_HISTORY_DAYS`` days since its first sale is *too_short*; neither is forecast
    (they are logged and listed in ``forecast(...).attrs["skipped"]``).

Model (``MODEL_VERSION``): per series, a multiplicative weekday profile times a robust,
damped local trend, times calendar factors learnt from the same days a year earlier.
Everything is estimated from data up to the cutoff with fixed settings (the constants
below, chosen a priori: nothing is tuned on the backtest). For cutoff T and h = 1..28:

    forecast(T + h) = max(0, level_T + slope_T * sum(phi^i, i=1..h)) * profile[weekday]
                      * day_factor(T + h)

    * profile: mean sales per weekday over the last ``PROFILE_WINDOW_DAYS`` (values
      clipped at median +- 3 MAD, public holidays left out, one-day factors divided out),
      divided by their mean; shrunk towards the sales-weighted profile of the series'
      level with a prior of ``PROFILE_PRIOR_WEEKS`` weeks (matters for young series).
    * level and slope: weighted least squares on the deseasonalised sales of the last
      ``LEVEL_WINDOW_DAYS`` (exponential weights, half-life ``LEVEL_HALFLIFE_DAYS``),
      refitted once with Huber weights so a promotion spike or a closed day does not
      move the level. The slope is shrunk by its own t statistic
      (``slope * max(0, 1 - SLOPE_SHRINKAGE / t^2)``: noise-only trends vanish) and
      damped by ``TREND_DAMPING`` per day.
    * calendar, once a series has a year of history (both parts are estimated on data
      at least 14 days before the origin, and shrunk so that noise does not count):
      - one-day factors: the day a year earlier with the same calendar key (the same
        offset from the Lunar New Year within LNY_WINDOW, else the same named HK public
        holiday, else the same month and day) gives the ratio of its sales to a centred
        same-weekday baseline (median of the days 14 and 7 before and after). Its
        deviation from 1 is kept only above ``YEARLY_SIGNIFICANCE`` noise standard
        deviations (the series' robust spread of that ratio over ordinary days) and
        shrunk James-Stein style, ``d * (1 - noise_var / d^2)``. A public holiday in the
        horizon without such a match gets the series' median holiday ratio of the last
        year, shrunk towards 1 with a prior of ``HOLIDAY_PRIOR_COUNT`` holidays. The same
        factors are divided out of the history before fitting, and public holidays are
        left out of the fit.
      - the yearly path: last year's 28-day centred mean (holidays and one-day events
        replaced by their baseline) from T-364 to T+h-364, relative to its value at
        T-364, shrunk the same way, replaces the trend extrapolation (so it needs 378 days
        of history).
      Public holidays: ``HK_PUBLIC_HOLIDAYS`` (gazetted general holidays 2024-2027,
      extend the table for later years; outside it no day counts as a holiday).

    A holiday or event never seen a year earlier (the first Lunar New Year in the data, a
    new promotion) is not anticipated.
    Forecasts of different levels are not reconciled (the stores do not add up exactly
    to the ``store`` channel).

Prediction intervals (80% and 95%): split-conformal on the model's own recent errors.
For a forecast at cutoff T the model is refitted at ``CALIBRATION_ORIGINS`` earlier
origins T-7, T-14, ... (each using only data up to that origin) and its errors on the
days up to T are scaled, ``e = (actual - point) / s`` with ``s = max(point,
SCALE_FLOOR * mean |daily sales| of the 28 days before the origin)``. Per level and
horizon bucket the interval is ``point + s * [e_(k_lo), e_(k_hi)]`` with the finite-sample
conformal order statistics ``k_lo = floor((n + 1) * a / 2)``, ``k_hi = ceil((n + 1) *
(1 - a / 2))`` of the n pooled errors (clipped to the sample). With fewer than
``MIN_CALIBRATION_RESIDUALS`` errors the bucket pools all levels, then all levels and
horizons; with none the interval is empty (NaN). The column ``interval_basis`` says
which was used. Intervals are empirical, not model-based: they are as good as the recent
past is a guide (a first Lunar New Year or a new promotion is not in them).

Backtest (``backtest``): rolling origin. By default ``n_cutoffs`` cutoffs one week apart,
the latest ``horizon`` days before the last date, so every cutoff is scored over the whole
horizon. When the history is too short for that, the cutoffs that fit are used (each needs
``MIN_BACKTEST_TRAIN_DAYS`` days of history), completed with later cutoffs whose horizon
is cut at the last date; the metrics say how many cutoffs each bucket has (``n_cutoffs``,
``cutoffs_requested``), ``metrics.attrs["note"]`` says why, and it is logged. With no
possible cutoff, ``backtest`` raises ``ValueError`` naming the days missing.

Metrics (``score_backtest``), per level and horizon bucket (days 1-7, 8-14, 15-28, all),
over the backtest points (series x cutoff x target day) with y actual, f the forecast and
n the seasonal naive forecast:

    * seasonal naive: the value of the same weekday in the last observed week,
      ``n(T + h) = y(T + h - 7 * ceil(h / 7))``;
    * WAPE = sum|y - f| / sum|y|;  bias = sum(f - y) / sum|y| (positive: over-forecast);
    * MAE = mean|y - f|;  rel_mae = MAE / MAE of seasonal naive over the same points;
    * MASE (Hyndman & Koehler, seasonal period 7) = mean over points of |y - f| / scale,
      scale = the in-sample MAE of the one-week seasonal naive, mean|y_t - y_{t-7}| over
      the series' history up to the cutoff; ``mase_naive`` is the same for the seasonal
      naive forecast (its MASE exceeds 1 at longer horizons, where it repeats older weeks).
      The goal "beats seasonal naive" is ``rel_mae < 1`` (and ``mase < mase_naive``);
    * coverage80 / coverage95: the share of actuals inside the 80% / 95% intervals.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MODEL_VERSION = "weekday-profile-damped-trend-v1"

HORIZON_DAYS = 28
HORIZON_BUCKETS = ((1, 7), (8, 14), (15, 28))
INTERVAL_LEVELS = (0.80, 0.95)
LEVELS = ("total", "channel", "store", "category")

# Series and backtest rules
CLOSED_AFTER_DAYS = 28  # no positive sales day in this many days up to the cutoff: closed
MIN_HISTORY_DAYS = 14  # days since the first sale before a series is forecast
N_CUTOFFS = 6
CUTOFF_STEP_DAYS = 7
MIN_BACKTEST_TRAIN_DAYS = 21  # history a backtest cutoff needs

# Model settings (fixed a priori, not tuned on the backtest)
PROFILE_WINDOW_DAYS = 84
PROFILE_PRIOR_WEEKS = 2.0
LEVEL_WINDOW_DAYS = 56
LEVEL_HALFLIFE_DAYS = 21.0
HUBER_K = 2.5
SLOPE_SHRINKAGE = 2.0
TREND_DAMPING = 0.98
YEARLY_SIGNIFICANCE = 2.0
HOLIDAY_PRIOR_COUNT = 3.0
LNY_WINDOW = (-21, 14)  # days around the first day of the Lunar New Year keyed by offset

# Interval calibration
CALIBRATION_ORIGINS = 10
MIN_CALIBRATION_RESIDUALS = 20
SCALE_FLOOR = 0.1

# First day of the Lunar New Year (Hong Kong Observatory calendar).
LUNAR_NEW_YEAR = {
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
}


def _holidays(year: int, days: str) -> dict[date, str]:
    out = {}
    for item in days.split():
        month_day, name = item.split("=")
        month, day = month_day.split("-")
        out[date(year, int(month), int(day))] = name
    return out


# Hong Kong general holidays as gazetted (the observed day: a holiday on a Sunday moves to
# the next day). Named, so that a moving holiday is matched with the same holiday a year
# earlier. Sundays are not listed: the weekday profile covers them.
HK_PUBLIC_HOLIDAYS: dict[date, str] = {
    **_holidays(
        2024,
        "01-01=new_year 02-10=lny_1 02-12=lny_3 02-13=lny_4 03-29=good_friday"
        " 03-30=good_saturday 04-01=easter_monday 04-04=ching_ming 05-01=labour_day"
        " 05-15=buddha 06-10=tuen_ng 07-01=hksar_day 09-18=mid_autumn 10-01=national_day"
        " 10-11=chung_yeung 12-25=christmas 12-26=christmas_2",
    ),
    **_holidays(
        2025,
        "01-01=new_year 01-29=lny_1 01-30=lny_2 01-31=lny_3 04-04=ching_ming"
        " 04-18=good_friday 04-19=good_saturday 04-21=easter_monday 05-01=labour_day"
        " 05-05=buddha 05-31=tuen_ng 07-01=hksar_day 10-01=national_day 10-07=mid_autumn"
        " 10-29=chung_yeung 12-25=christmas 12-26=christmas_2",
    ),
    **_holidays(
        2026,
        "01-01=new_year 02-17=lny_1 02-18=lny_2 02-19=lny_3 04-03=good_friday"
        " 04-04=good_saturday 04-06=ching_ming 04-07=easter_monday 05-01=labour_day"
        " 05-25=buddha 06-19=tuen_ng 07-01=hksar_day 09-26=mid_autumn 10-01=national_day"
        " 10-19=chung_yeung 12-25=christmas 12-26=christmas_2",
    ),
    **_holidays(
        2027,
        "01-01=new_year 02-06=lny_1 02-08=lny_3 02-09=lny_4 03-26=good_friday"
        " 03-27=good_saturday 03-29=easter_monday 04-05=ching_ming 05-01=labour_day"
        " 05-13=buddha 06-09=tuen_ng 07-01=hksar_day 09-16=mid_autumn 10-01=national_day"
        " 10-08=chung_yeung 12-25=christmas 12-27=christmas_2",
    ),
}

HISTORY_COLUMNS = ["level", "key", "business_date", "net_sales"]
FORECAST_COLUMNS = [
    "level",
    "key",
    "cutoff",
    "target_date",
    "horizon_day",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "model_version",
    "interval_basis",
]

DAILY_SALES_SQL = """
select
    case
        when grouping(channel) = 0 then 'channel'
        when grouping(store_code) = 0 then 'store'
        when grouping(category) = 0 then 'category'
        else 'total'
    end as level,
    case
        when grouping(channel) = 0 then channel
        when grouping(store_code) = 0 then store_code
        when grouping(category) = 0 then category
        else 'total'
    end as key,
    business_date,
    coalesce(sum(net_amount), 0) as net_sales
from marts.fct_sales
where business_date <= %(until)s::date
group by grouping sets (
    (business_date),
    (business_date, channel),
    (business_date, store_code),
    (business_date, category)
)
having grouping(store_code) = 1 or store_code is not null
order by level, key, business_date
"""


# --------------------------------------------------------------------------------------
# Data


def daily_sales(conn: Any, *, until: date) -> pd.DataFrame:
    """Daily net sales per series up to ``until`` (inclusive), from ``marts.fct_sales``.

    ``conn`` is an open psycopg connection to the warehouse. Returns the long frame
    level, key, business_date (datetime64, a HK business date), net_sales (float),
    one row per series and day from the series' first line to the last loaded date
    (not after ``until``), days without a line filled with 0.
    """
    cur = conn.execute(DAILY_SALES_SQL, {"until": until})
    rows = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    if rows.empty:
        return pd.DataFrame(
            {
                "level": pd.Series([], dtype="str"),
                "key": pd.Series([], dtype="str"),
                "business_date": pd.Series([], dtype="datetime64[ns]"),
                "net_sales": pd.Series([], dtype="float64"),
            }
        )
    rows["business_date"] = pd.to_datetime(rows["business_date"])
    rows["net_sales"] = rows["net_sales"].astype("float64")
    end = rows["business_date"].max()
    frames = []
    for (level, key), group in rows.groupby(["level", "key"], sort=False):
        days = pd.date_range(group["business_date"].min(), end, freq="D")
        values = group.set_index("business_date")["net_sales"].reindex(days, fill_value=0.0)
        frames.append(
            pd.DataFrame(
                {"level": level, "key": key, "business_date": days, "net_sales": values.values}
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return _sort_series(out, ["business_date"]).reset_index(drop=True)


def _sort_series(frame: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    order = {level: i for i, level in enumerate(LEVELS)}
    rank = frame["level"].map(order).fillna(len(LEVELS))
    return (
        frame.assign(_rank=rank)
        .sort_values(["_rank", "key", *then], kind="stable")
        .drop(columns="_rank")
    )


def _timestamp(day: date | pd.Timestamp | str) -> pd.Timestamp:
    return pd.Timestamp(day).normalize()


def _normalise(history: pd.DataFrame) -> pd.DataFrame:
    missing = set(HISTORY_COLUMNS) - set(history.columns)
    if missing:
        raise ValueError(f"history lacks the columns {sorted(missing)}")
    out = history[HISTORY_COLUMNS].copy()
    out["business_date"] = pd.to_datetime(out["business_date"]).dt.normalize()
    out["net_sales"] = out["net_sales"].astype("float64")
    return out


@dataclass
class _Panel:
    """The history as a (day x series) matrix: NaN before a series' first sale, else 0-filled."""

    dates: pd.DatetimeIndex
    keys: list[tuple[str, str]]
    level_codes: np.ndarray  # int per series, an index into `level_names`
    level_names: list[str]
    values: np.ndarray  # (n_days, n_series)
    start: np.ndarray  # index of each series' first non-zero day


def _build_panel(history: pd.DataFrame, end: pd.Timestamp) -> _Panel:
    if history.empty:
        raise ValueError(f"no sales history up to {end.date()}")
    last = history["business_date"].max()
    if last < end:
        raise ValueError(
            f"the history ends {last.date()}, before the cutoff {end.date()}: the days in"
            " between would count as days without sales"
        )
    history = history[history["business_date"] <= end]
    dates = pd.date_range(history["business_date"].min(), end, freq="D")
    wide = history.pivot_table(
        index="business_date", columns=["level", "key"], values="net_sales", aggfunc="sum"
    ).reindex(dates)
    keys = [(str(level), str(key)) for level, key in wide.columns]
    order = sorted(
        range(len(keys)),
        key=lambda i: (LEVELS.index(keys[i][0]) if keys[i][0] in LEVELS else len(LEVELS), keys[i]),
    )
    raw = wide.to_numpy(dtype="float64")[:, order]
    keys = [keys[i] for i in order]
    nonzero = np.nan_to_num(raw) != 0
    sold = nonzero.any(axis=0)
    raw, nonzero = raw[:, sold], nonzero[:, sold]
    keys = [k for k, keep in zip(keys, sold, strict=True) if keep]
    start = nonzero.argmax(axis=0)
    days = np.arange(len(dates))[:, None]
    values = np.where(days >= start[None, :], np.nan_to_num(raw), np.nan)
    level_names = list(dict.fromkeys(level for level, _ in keys))
    codes = np.array([level_names.index(level) for level, _ in keys], dtype=int)
    return _Panel(dates, keys, codes, level_names, values, start)


# --------------------------------------------------------------------------------------
# Calendar


def _calendar_key(day: date, holidays: Mapping[date, str]) -> tuple:
    """What makes a day comparable with a day a year earlier: a named public holiday
    (other than the Lunar New Year days), else the offset from the first day of the Lunar
    New Year inside LNY_WINDOW, else the month and day."""
    name = holidays.get(day)
    if name is not None and not name.startswith("lny"):
        return ("holiday", name)
    for year in (day.year, day.year + 1):
        lny = LUNAR_NEW_YEAR.get(year)
        if lny is not None and LNY_WINDOW[0] <= (day - lny).days <= LNY_WINDOW[1]:
            return ("lny", (day - lny).days)
    if name is not None:
        return ("holiday", name)
    return ("date", day.month, day.day)


@dataclass
class _Calendar:
    weekday: np.ndarray
    is_holiday: np.ndarray
    year_ago: np.ndarray  # index of the same calendar day a year earlier, -1 if none


def _calendar(first: pd.Timestamp, last: pd.Timestamp, holidays: Mapping[date, str]):
    days = pd.date_range(first, last, freq="D")
    py_days = [d.date() for d in days]
    keys = [_calendar_key(d, holidays) for d in py_days]
    seen: dict[tuple, list[int]] = {}
    year_ago = np.full(len(days), -1, dtype=int)
    for i, key in enumerate(keys):
        candidates = [j for j in seen.get(key, ()) if 340 <= i - j <= 390]
        if candidates:
            year_ago[i] = min(candidates, key=lambda j: abs(i - j - 364))
        seen.setdefault(key, []).append(i)
    return _Calendar(
        weekday=days.day_of_week.to_numpy(),
        is_holiday=np.array([d in holidays for d in py_days], dtype=bool),
        year_ago=year_ago,
    )


# --------------------------------------------------------------------------------------
# Model


def _nanmedian(x: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)


def _nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


class _Model:
    """The point model on a panel (which ends at the cutoff). Every estimate at origin
    ``o`` reads sales up to ``o`` only; the noise level of the calendar ratios is
    estimated once per panel, from data up to the cutoff."""

    def __init__(self, panel: _Panel, calendar: _Calendar):
        self.y = panel.values
        self.n, self.n_series = self.y.shape
        self.start = panel.start
        self.groups = panel.level_codes
        self.weekday = calendar.weekday
        self.is_holiday = calendar.is_holiday
        self.ordinary = ~calendar.is_holiday
        self.year_ago = calendar.year_ago
        self._calendar_ratios()

    def _calendar_ratios(self) -> None:
        """Day ratios to a centred same-weekday baseline, their noise and a smooth level.

        baseline(i) = median of the sales on i-14, i-7, i+7, i+14 (not holidays);
        ratio(i) = sales / baseline; noise = robust variance of ratio - 1 on ordinary days
        of the last year; smooth(i) = mean over the 28 days i-13..i+14 of the sales with
        holidays and significant one-day deviations replaced by their baseline. ratio(i)
        reads data up to i+14 and smooth(i) up to i+28, so at origin o ratios are read for
        days up to o-14 only, and the smooth level only for days a year back.
        """
        n, y = self.n, self.y
        ordinary_y = np.where(self.ordinary[:n, None], y, np.nan)
        around = np.full((4, n, self.n_series), np.nan)
        for slot, lag in enumerate((-14, -7, 7, 14)):
            if lag < 0 and -lag < n:
                around[slot, -lag:] = ordinary_y[: n + lag]
            elif 0 < lag < n:
                around[slot, : n - lag] = ordinary_y[lag:]
        count = (~np.isnan(around)).sum(axis=0)
        baseline = _nanmedian(around, axis=0)
        baseline[count < 2] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(baseline > 0, y / baseline, np.nan)
        self.ratio = ratio
        rows = np.arange(max(0, n - 15 - 364), max(0, n - 14))
        dev = ratio[rows][self.ordinary[rows]] - 1.0
        mad = _nanmedian(np.abs(dev - _nanmedian(dev)))
        noise = (1.4826 * mad) ** 2
        self.noise = np.where(np.isnan(noise), np.inf, np.maximum(noise, 1e-4))
        unusual = ~self.ordinary[:n, None] | (
            (ratio - 1.0) ** 2 > YEARLY_SIGNIFICANCE**2 * self.noise
        )
        clean = np.where(unusual, baseline, y)
        valid = ~np.isnan(clean)
        csum = np.concatenate(
            [np.zeros((1, self.n_series)), np.cumsum(np.nan_to_num(clean), axis=0)]
        )
        ccount = np.concatenate([np.zeros((1, self.n_series)), np.cumsum(valid, axis=0)])
        smooth = np.full((n, self.n_series), np.nan)
        mid = np.arange(13, n - 14)
        total, k = csum[mid + 15] - csum[mid - 13], ccount[mid + 15] - ccount[mid - 13]
        smooth[mid] = np.where(k >= 21, total / np.maximum(k, 1), np.nan)
        self.smooth = smooth

    def _holiday_factor(self, o: int) -> np.ndarray:
        rows = np.arange(max(0, o - 364), max(0, o - 13))
        rows = rows[self.is_holiday[rows]]
        if rows.size == 0:
            return np.ones(self.n_series)
        ratios = self.ratio[rows]
        count = (~np.isnan(ratios)).sum(axis=0)
        median = np.nan_to_num(_nanmedian(ratios), nan=1.0)
        return 1.0 + (median - 1.0) * count / (count + HOLIDAY_PRIOR_COUNT)

    def factors(self, o: int, lo: int, hi: int) -> np.ndarray:
        """One-day calendar multipliers for days lo..hi (hi may be after o): the
        significant, shrunk ratio of the same calendar day a year earlier, else for a
        future public holiday the series' shrunk median holiday ratio, else 1."""
        days = np.arange(lo, hi + 1)
        match = self.year_ago[days]
        dev = np.full((days.size, self.n_series), np.nan)
        known = (match >= 0) & (match <= o - 14)
        dev[known] = self.ratio[match[known]] - 1.0
        noise = self.noise[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = dev**2 > YEARLY_SIGNIFICANCE**2 * noise
            factor = np.where(keep, 1.0 + dev * (1.0 - noise / dev**2), 1.0)
        future_holiday = (days > o) & self.is_holiday[days]
        if future_holiday.any():
            generic = np.broadcast_to(self._holiday_factor(o), factor.shape)
            use = future_holiday[:, None] & np.isnan(dev)
            factor = np.where(use, generic, factor)
        return np.clip(factor, 0.0, 10.0)

    def yearly_path(self, o: int, horizon: int) -> np.ndarray | None:
        """Last year's smooth level from o-364 to o+h-364, relative to its value at o-364
        (horizon x series; 1 where unknown), shrunk James-Stein style; None without a year
        of history for any series."""
        base_row = o - 364
        if base_row - 13 < 0:
            return None
        base = self.smooth[base_row]
        later = self.smooth[base_row + 1 : base_row + horizon + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = np.where(base > 0, later / base - 1.0, np.nan)
        noise = self.noise[None, :] / 14.0
        with np.errstate(divide="ignore", invalid="ignore"):
            shrunk = dev * np.maximum(0.0, 1.0 - noise / dev**2)
        known = ~np.isnan(dev).any(axis=0) & (self.start <= base_row - 13)
        if not known.any():
            return None
        path = np.ones((horizon, self.n_series))
        path[:, known] = 1.0 + np.nan_to_num(shrunk[:, known])
        path[:, ~known] = np.nan
        return path

    def _profile(self, o: int) -> np.ndarray:
        """Multiplicative weekday profile (7 x series), mean 1."""
        lo = max(0, o - PROFILE_WINDOW_DAYS + 1)
        rows = np.arange(lo, o + 1)
        factor = self.factors(o, lo, o)
        x = np.where(factor > 0.05, self.y[rows] / np.maximum(factor, 0.05), np.nan)
        x[~self.ordinary[rows]] = np.nan
        means = np.full((7, self.n_series), np.nan)
        counts = np.zeros((7, self.n_series))
        for w in range(7):
            xw = x[self.weekday[rows] == w]
            if xw.shape[0] == 0:
                continue
            med = _nanmedian(xw)
            spread = 3 * 1.4826 * _nanmedian(np.abs(xw - med))
            clipped = np.clip(xw, med - spread, med + spread)
            means[w] = _nanmean(clipped)
            counts[w] = (~np.isnan(xw)).sum(axis=0)
        overall = _nanmean(means)
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(overall > 0, means / overall, np.nan)
        profile = np.ones((7, self.n_series))
        for g in np.unique(self.groups):
            members = self.groups == g
            usable = members & (overall > 0) & ~np.isnan(own).any(axis=0)
            if usable.any():
                weight = overall[usable]
                pooled = (own[:, usable] * weight).sum(axis=1) / weight.sum()
            else:
                pooled = np.ones(7)
            own_g = own[:, members]
            n_g = np.where(np.isnan(own_g), 0.0, counts[:, members])
            blended = (
                n_g * np.nan_to_num(own_g, nan=1.0) + PROFILE_PRIOR_WEEKS * pooled[:, None]
            ) / (n_g + PROFILE_PRIOR_WEEKS)
            profile[:, members] = blended
        profile = np.maximum(profile, 0.0)
        mean = profile.mean(axis=0)
        return np.where(mean > 0, profile / np.where(mean > 0, mean, 1.0), 1.0)

    def predict(self, o: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts for o+1..o+horizon (horizon x series) and the series' scale."""
        profile = self._profile(o)
        lo = max(0, o - LEVEL_WINDOW_DAYS + 1)
        rows = np.arange(lo, o + 1)
        factor = self.factors(o, lo, o + horizon)
        past_factor, future_factor = factor[: rows.size], factor[rows.size :]
        seasonal = profile[self.weekday[rows], :] * past_factor
        ok = (
            self.ordinary[rows, None]
            & (seasonal > 0.05)
            & ~np.isnan(self.y[rows])
            & (past_factor > 0.05)
        )
        z = np.where(ok, self.y[rows] / np.where(ok, seasonal, 1.0), 0.0)
        t = (rows - o).astype("float64")[:, None]
        weight = np.where(ok, 0.5 ** (-t / LEVEL_HALFLIFE_DAYS), 0.0)

        def fit(w: np.ndarray):
            s0 = w.sum(axis=0)
            s0_safe = np.where(s0 > 0, s0, 1.0)
            t_bar = (w * t).sum(axis=0) / s0_safe
            z_bar = (w * z).sum(axis=0) / s0_safe
            dt = t - t_bar
            sxx = (w * dt**2).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.where(sxx > 1e-9, (w * dt * (z - z_bar)).sum(axis=0) / sxx, 0.0)
            return z_bar, t_bar, slope, dt, sxx

        z_bar, t_bar, slope, dt, sxx = fit(weight)
        resid = np.where(ok, z - z_bar - slope * dt, np.nan)
        sigma = 1.4826 * _nanmedian(np.abs(resid))
        with np.errstate(divide="ignore", invalid="ignore"):
            huber = np.where(np.abs(resid) > HUBER_K * sigma, HUBER_K * sigma / np.abs(resid), 1.0)
        weight = weight * np.nan_to_num(huber, nan=0.0)
        z_bar, t_bar, slope, dt, sxx = fit(weight)
        resid = np.where(ok, z - z_bar - slope * dt, np.nan)
        sigma = 1.4826 * _nanmedian(np.abs(resid))
        with np.errstate(divide="ignore", invalid="ignore"):
            slope_var = sigma**2 * (weight**2 * dt**2).sum(axis=0) / sxx**2
            t2 = np.where(slope_var > 0, slope**2 / slope_var, 0.0)
            shrink = np.where(t2 > 0, np.maximum(0.0, 1.0 - SLOPE_SHRINKAGE / t2), 0.0)
        slope = np.nan_to_num(slope * shrink)
        level = z_bar - slope * t_bar
        steps = np.arange(1, horizon + 1, dtype="float64")
        damped = TREND_DAMPING * (1 - TREND_DAMPING**steps) / (1 - TREND_DAMPING)
        path = level[None, :] + slope[None, :] * damped[:, None]
        yearly = self.yearly_path(o, horizon)
        if yearly is not None:
            # With a year of history, last year's smooth path replaces the local trend.
            known = ~np.isnan(yearly).any(axis=0)
            path[:, known] = level[None, known] * yearly[:, known]
        path = np.maximum(path, 0.0)
        future_days = np.arange(o + 1, o + horizon + 1)
        point = path * profile[self.weekday[future_days], :] * future_factor
        point[:, weight.sum(axis=0) <= 0] = np.nan
        recent = self.y[max(0, o - 27) : o + 1]
        scale = np.nan_to_num(_nanmean(np.abs(recent)), nan=0.0)
        return point, scale

    def status(self, o: int) -> np.ndarray:
        recent = self.y[max(0, o - CLOSED_AFTER_DAYS + 1) : o + 1]
        sold = (np.nan_to_num(recent, nan=0.0) > 0).any(axis=0)
        young = self.start > o - MIN_HISTORY_DAYS + 1
        return np.where(young, "too_short", np.where(sold, "active", "closed"))


def _bucket_label(lo: int, hi: int) -> str:
    return f"{lo}-{hi}"


def _buckets(horizon: int) -> list[tuple[int, int]]:
    out = [(lo, min(hi, horizon)) for lo, hi in HORIZON_BUCKETS if lo <= horizon]
    last = HORIZON_BUCKETS[-1][1]
    if horizon > last:
        out.append((last + 1, horizon))
    return out


def _bucket_index(horizon_days: np.ndarray, horizon: int) -> np.ndarray:
    idx = np.zeros(len(horizon_days), dtype=int)
    for i, (lo, hi) in enumerate(_buckets(horizon)):
        idx[(horizon_days >= lo) & (horizon_days <= hi)] = i
    return idx


def _conformal(errors: np.ndarray, coverage: float) -> tuple[float, float]:
    """Lower and upper finite-sample conformal bounds of sorted scaled errors."""
    n = errors.size
    alpha = 1.0 - coverage
    k_lo = max(1, math.floor((n + 1) * alpha / 2))
    k_hi = min(n, math.ceil((n + 1) * (1 - alpha / 2)))
    return float(errors[k_lo - 1]), float(errors[k_hi - 1])


def _calibrate(model: _Model, cutoff: int, horizon: int, n_levels: int):
    """Conformal bounds per (level code, bucket): {(g, b): (bounds per interval level,
    basis)}, from the model's scaled errors at the calibration origins before ``cutoff``
    (each refit reads data up to its origin; the errors are on days up to the cutoff)."""
    buckets = _buckets(horizon)
    errors: dict[tuple[int, int], list[np.ndarray]] = {}
    for j in range(1, CALIBRATION_ORIGINS + 1):
        o = cutoff - CUTOFF_STEP_DAYS * j
        if o < MIN_HISTORY_DAYS - 1:
            break
        h = min(horizon, cutoff - o)
        active = model.status(o) == "active"
        point, scale = model.predict(o, h)
        actual = model.y[o + 1 : o + h + 1]
        s = np.maximum(point, SCALE_FLOOR * scale[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            e = (actual - point) / s
        usable = active[None, :] & np.isfinite(e) & (s > 0)
        b_idx = _bucket_index(np.arange(1, h + 1), horizon)
        for g in range(n_levels):
            in_g = usable & (model.groups == g)[None, :]
            for b in range(len(buckets)):
                sel = in_g & (b_idx == b)[:, None]
                if sel.any():
                    errors.setdefault((g, b), []).append(e[sel])

    def pooled(cells) -> np.ndarray:
        parts = [a for c in cells for a in errors.get(c, [])]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0)

    all_cells = list(errors)
    bounds = {}
    for g in range(n_levels):
        for b in range(len(buckets)):
            choices = [
                ("level", [(g, b)]),
                ("all levels", [c for c in all_cells if c[1] == b]),
                ("all levels and horizons", all_cells),
            ]
            basis, e = next(
                (
                    (name, e)
                    for name, cells in choices
                    if (e := pooled(cells)).size >= MIN_CALIBRATION_RESIDUALS
                ),
                (choices[-1][0], pooled(all_cells)),
            )
            if e.size == 0:
                bounds[(g, b)] = ([(np.nan, np.nan)] * len(INTERVAL_LEVELS), "none")
                continue
            if e.size < MIN_CALIBRATION_RESIDUALS:
                basis = f"{basis} (only {e.size} errors)"
            bounds[(g, b)] = ([_conformal(e, c) for c in INTERVAL_LEVELS], basis)
    return bounds


def _context(history: pd.DataFrame, cutoff: pd.Timestamp, horizon: int, holidays):
    hist = _normalise(history)
    hist = hist[hist["business_date"] <= cutoff]
    panel = _build_panel(hist, cutoff)
    calendar = _calendar(
        panel.dates[0],
        cutoff + pd.Timedelta(days=horizon),
        HK_PUBLIC_HOLIDAYS if holidays is None else holidays,
    )
    return panel, _Model(panel, calendar)


def _status_frame(panel: _Panel, model: _Model, o: int) -> pd.DataFrame:
    y = np.nan_to_num(model.y[: o + 1], nan=0.0)
    positive = y > 0
    last_idx = np.where(positive.any(axis=0), o - positive[::-1].argmax(axis=0), -1)
    return pd.DataFrame(
        {
            "level": [k[0] for k in panel.keys],
            "key": [k[1] for k in panel.keys],
            "first_date": panel.dates[panel.start],
            "last_sale_date": [panel.dates[i] if i >= 0 else pd.NaT for i in last_idx],
            "days_of_history": o - panel.start + 1,
            "status": model.status(o),
        }
    )


def series_status(history: pd.DataFrame, *, cutoff: date) -> pd.DataFrame:
    """Each series' status at ``cutoff``: level, key, first_date, last_sale_date,
    days_of_history, status ('active', 'closed' or 'too_short'). Only active series are
    forecast."""
    cutoff = _timestamp(cutoff)
    panel, model = _context(history, cutoff, 0, {})
    return _status_frame(panel, model, len(panel.dates) - 1)


def forecast(
    history: pd.DataFrame,
    *,
    cutoff: date,
    horizon: int = HORIZON_DAYS,
    holidays: Mapping[date, str] | None = None,
) -> pd.DataFrame:
    """Forecast days cutoff+1 .. cutoff+horizon for every active series.

    ``history`` is the long frame of ``daily_sales`` (level, key, business_date,
    net_sales); rows after ``cutoff`` are ignored, and it must reach the cutoff.
    ``holidays`` (date -> name) replaces ``HK_PUBLIC_HOLIDAYS``.

    Returns level, key, cutoff, target_date, horizon_day, point, lo80, hi80, lo95, hi95,
    model_version, interval_basis. Closed and too-young series are left out and listed in
    ``.attrs["skipped"]`` (see ``series_status``).
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    cutoff = _timestamp(cutoff)
    panel, model = _context(history, cutoff, horizon, holidays)
    o = len(panel.dates) - 1
    status = _status_frame(panel, model, o)
    active = (status["status"] == "active").to_numpy()
    skipped = status[~active].reset_index(drop=True)
    if not skipped.empty:
        log.warning(
            "not forecast at %s: %s",
            cutoff.date(),
            ", ".join(f"{r.level}/{r.key} ({r.status})" for r in skipped.itertuples()),
        )
    point, scale = model.predict(o, horizon)
    bounds = _calibrate(model, o, horizon, len(panel.level_names))
    steps = np.arange(1, horizon + 1)
    b_idx = _bucket_index(steps, horizon)
    # Lower bounds stop at 0, or at the lowest day of the series if it ever sold net negative.
    floor = np.minimum(0.0, np.nanmin(model.y, axis=0))
    frames = []
    for s in np.flatnonzero(active):
        g = panel.level_codes[s]
        p = point[:, s]
        width = np.maximum(p, SCALE_FLOOR * scale[s])
        frame = {
            "level": panel.keys[s][0],
            "key": panel.keys[s][1],
            "cutoff": cutoff,
            "target_date": cutoff + pd.to_timedelta(steps, unit="D"),
            "horizon_day": steps,
            "point": p,
        }
        basis = np.empty(horizon, dtype=object)
        for coverage_i, coverage in enumerate(INTERVAL_LEVELS):
            lo = np.empty(horizon)
            hi = np.empty(horizon)
            for b in range(b_idx.max() + 1):
                (q, tag) = bounds[(g, b)][0][coverage_i], bounds[(g, b)][1]
                sel = b_idx == b
                lo[sel] = np.maximum(p[sel] + q[0] * width[sel], floor[s])
                hi[sel] = p[sel] + q[1] * width[sel]
                basis[sel] = tag
            pct = round(coverage * 100)
            frame[f"lo{pct}"] = lo
            frame[f"hi{pct}"] = hi
        frame["model_version"] = MODEL_VERSION
        frame["interval_basis"] = basis
        frames.append(pd.DataFrame(frame))
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: [] for c in FORECAST_COLUMNS})
    )
    out = out[FORECAST_COLUMNS]
    out.attrs["skipped"] = skipped
    return out


def seasonal_naive(
    history: pd.DataFrame, *, cutoff: date, horizon: int = HORIZON_DAYS
) -> pd.DataFrame:
    """The weekly seasonal naive forecast: each target day gets the value of the same
    weekday in the last week up to ``cutoff``, ``y(cutoff + h - 7 * ceil(h / 7))``.
    Returns level, key, cutoff, target_date, horizon_day, point (NaN when that day is
    before the series' first sale)."""
    cutoff = _timestamp(cutoff)
    hist = _normalise(history)
    panel = _build_panel(hist[hist["business_date"] <= cutoff], cutoff)
    o = len(panel.dates) - 1
    steps = np.arange(1, horizon + 1)
    source = o + steps - 7 * np.ceil(steps / 7).astype(int)
    values = np.full((horizon, len(panel.keys)), np.nan)
    ok = source >= 0
    values[ok] = panel.values[source[ok]]
    frames = [
        pd.DataFrame(
            {
                "level": level,
                "key": key,
                "cutoff": cutoff,
                "target_date": cutoff + pd.to_timedelta(steps, unit="D"),
                "horizon_day": steps,
                "point": values[:, s],
            }
        )
        for s, (level, key) in enumerate(panel.keys)
    ]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# Backtest


def backtest_cutoffs(
    history: pd.DataFrame, *, n_cutoffs: int = N_CUTOFFS, horizon: int = HORIZON_DAYS
) -> tuple[list[pd.Timestamp], str]:
    """The default rolling-origin cutoffs and a note when there are fewer than asked."""
    hist = _normalise(history)
    if hist.empty:
        raise ValueError("no sales history to backtest")
    first, last = hist["business_date"].min(), hist["business_date"].max()
    days = (last - first).days + 1
    earliest = first + pd.Timedelta(days=MIN_BACKTEST_TRAIN_DAYS - 1)
    step = pd.Timedelta(days=CUTOFF_STEP_DAYS)
    full_end = last - pd.Timedelta(days=horizon)
    cutoffs = [full_end - k * step for k in range(n_cutoffs)]
    cutoffs = sorted(c for c in cutoffs if c >= earliest)
    n_full = len(cutoffs)
    k = 1
    while len(cutoffs) < n_cutoffs and full_end + k * step < last:
        c = full_end + k * step
        if c >= earliest:
            cutoffs.append(c)
        k += 1
    if not cutoffs:
        need = MIN_BACKTEST_TRAIN_DAYS + 1
        raise ValueError(
            f"the history has {days} days ({first.date()} to {last.date()}); a backtest"
            f" needs at least {need} ({MIN_BACKTEST_TRAIN_DAYS} to train, 1 to score):"
            f" {need - days} more"
        )
    note = ""
    if len(cutoffs) < n_cutoffs or n_full < len(cutoffs):
        note = (
            f"history of {days} days: {len(cutoffs)} of {n_cutoffs} cutoffs, {n_full} with"
            f" the full {horizon}-day horizon (a cutoff needs {MIN_BACKTEST_TRAIN_DAYS} days"
            f" of history and the full horizon needs {MIN_BACKTEST_TRAIN_DAYS + horizon}"
            f" days for one cutoff, {MIN_BACKTEST_TRAIN_DAYS + horizon + (n_cutoffs - 1) * CUTOFF_STEP_DAYS}"
            f" for {n_cutoffs}); see n_cutoffs per bucket"
        )
    return cutoffs, note


def _mase_scale(panel: _Panel, o: int) -> np.ndarray:
    y = panel.values[: o + 1]
    with np.errstate(invalid="ignore"):
        diff = np.abs(y[7:] - y[:-7])
    scale = _nanmean(diff) if len(diff) else np.full(len(panel.keys), np.nan)
    return np.where(scale > 0, scale, np.nan)


def backtest(
    history: pd.DataFrame,
    *,
    cutoffs: Iterable[date] | None = None,
    n_cutoffs: int = N_CUTOFFS,
    horizon: int = HORIZON_DAYS,
    holidays: Mapping[date, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling-origin backtest. Returns (points, metrics).

    points: the forecast columns plus actual, naive (seasonal naive), mase_scale and
    horizon_bucket, one row per (series, cutoff, target day) with a known actual.
    metrics: ``score_backtest(points)`` (one row per level and horizon bucket), with
    ``cutoffs_requested``; ``metrics.attrs`` holds "cutoffs" and "note".
    """
    hist = _normalise(history)
    if cutoffs is None:
        cuts, note = backtest_cutoffs(hist, n_cutoffs=n_cutoffs, horizon=horizon)
        requested = n_cutoffs
    else:
        cuts = sorted(_timestamp(c) for c in cutoffs)
        requested = len(cuts)
        last = hist["business_date"].max()
        late = [c for c in cuts if c >= last]
        if late:
            raise ValueError(f"cutoffs {[str(c.date()) for c in late]} leave no day to score")
        note = ""
    if note:
        log.warning("backtest: %s", note)
    last = hist["business_date"].max()
    full = _build_panel(hist, last)
    actual = pd.DataFrame(
        full.values,
        index=full.dates,
        columns=pd.MultiIndex.from_tuples(full.keys, names=["level", "key"]),
    )
    actual = (
        actual.rename_axis("target_date")
        .stack(["level", "key"], future_stack=True)
        .rename("actual")
        .dropna()
        .reset_index()
    )
    parts = []
    for cutoff in cuts:
        h = min(horizon, (last - cutoff).days)
        fc = forecast(hist, cutoff=cutoff, horizon=horizon, holidays=holidays)
        fc = fc[fc["horizon_day"] <= h]
        naive = seasonal_naive(hist, cutoff=cutoff, horizon=h).rename(columns={"point": "naive"})
        o = full.dates.get_loc(cutoff)
        scale = pd.DataFrame(
            {
                "level": [k[0] for k in full.keys],
                "key": [k[1] for k in full.keys],
                "mase_scale": _mase_scale(full, o),
            }
        )
        part = (
            fc.merge(naive[["level", "key", "target_date", "naive"]], how="left")
            .merge(actual, on=["level", "key", "target_date"], how="inner")
            .merge(scale, on=["level", "key"], how="left")
        )
        parts.append(part)
    points = pd.concat(parts, ignore_index=True)
    labels = [_bucket_label(lo, hi) for lo, hi in _buckets(horizon)]
    points["horizon_bucket"] = [
        labels[i] for i in _bucket_index(points["horizon_day"].to_numpy(), horizon)
    ]
    metrics = score_backtest(points, horizon=horizon)
    metrics.insert(metrics.columns.get_loc("n_cutoffs") + 1, "cutoffs_requested", requested)
    metrics.attrs["cutoffs"] = [c.date() for c in cuts]
    metrics.attrs["note"] = note
    return points, metrics


def score_backtest(points: pd.DataFrame, *, horizon: int = HORIZON_DAYS) -> pd.DataFrame:
    """Metrics per level and horizon bucket (and 'all') of backtest points.

    ``points`` needs level, key, cutoff, horizon_day, actual, point, naive, mase_scale and
    the interval columns lo80, hi80, lo95, hi95. Returns level, horizon_bucket, n_series,
    n_cutoffs, n, wape, bias, mae, mae_naive, rel_mae, mase, mase_naive, wape_naive,
    coverage80, coverage95 (definitions in the module docstring).
    """
    pts = points.copy()
    labels = [_bucket_label(lo, hi) for lo, hi in _buckets(horizon)]
    pts["horizon_bucket"] = [
        labels[i] for i in _bucket_index(pts["horizon_day"].to_numpy(), horizon)
    ]
    rows = []
    levels = [lv for lv in LEVELS if lv in set(pts["level"])]
    levels += sorted(set(pts["level"]) - set(LEVELS))
    for level in levels:
        at_level = pts[pts["level"] == level]
        for bucket in [*labels, "all"]:
            sel = at_level if bucket == "all" else at_level[at_level["horizon_bucket"] == bucket]
            if sel.empty:  # e.g. a short backtest that never reaches these horizons
                rows.append(
                    {
                        "level": level,
                        "horizon_bucket": bucket,
                        "n_series": 0,
                        "n_cutoffs": 0,
                        "n": 0,
                    }
                )
                continue
            y = sel["actual"].to_numpy(float)
            f = sel["point"].to_numpy(float)
            nv = sel["naive"].to_numpy(float)
            scale = sel["mase_scale"].to_numpy(float)
            both = ~np.isnan(nv)
            scaled = both & np.isfinite(scale) & (scale > 0)
            abs_y = np.abs(y).sum()
            err, err_naive = np.abs(y - f), np.abs(y - nv)
            row = {
                "level": level,
                "horizon_bucket": bucket,
                "n_series": sel["key"].nunique(),
                "n_cutoffs": sel["cutoff"].nunique(),
                "n": len(sel),
                "wape": err.sum() / abs_y if abs_y > 0 else np.nan,
                "bias": (f - y).sum() / abs_y if abs_y > 0 else np.nan,
                "mae": err.mean(),
                "mae_naive": err_naive[both].mean() if both.any() else np.nan,
                "rel_mae": (
                    err[both].mean() / err_naive[both].mean()
                    if both.any() and err_naive[both].mean() > 0
                    else np.nan
                ),
                "mase": (err[scaled] / scale[scaled]).mean() if scaled.any() else np.nan,
                "mase_naive": (err_naive[scaled] / scale[scaled]).mean()
                if scaled.any()
                else np.nan,
                "wape_naive": err_naive[both].sum() / np.abs(y[both]).sum()
                if both.any() and np.abs(y[both]).sum() > 0
                else np.nan,
            }
            for coverage in INTERVAL_LEVELS:
                pct = round(coverage * 100)
                lo, hi = sel[f"lo{pct}"].to_numpy(float), sel[f"hi{pct}"].to_numpy(float)
                known = ~np.isnan(lo) & ~np.isnan(hi)
                inside = (y >= lo) & (y <= hi)
                row[f"coverage{pct}"] = inside[known].mean() if known.any() else np.nan
            rows.append(row)
    columns = ["level", "horizon_bucket", "n_series", "n_cutoffs", "n", "wape", "bias", "mae"]
    columns += ["mae_naive", "rel_mae", "mase", "mase_naive", "wape_naive"]
    columns += [f"coverage{round(c * 100)}" for c in INTERVAL_LEVELS]
    return pd.DataFrame(rows, columns=columns)
