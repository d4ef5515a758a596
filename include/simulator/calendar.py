"""Trading calendar: weekly rhythm and holiday peaks, as demand multipliers per day.

Stores are busiest at weekends and before Lunar New Year and Christmas, and
shut on the first day of the Lunar New Year. The web shop peaks on 11.11 and
12.12 (the online shopping festivals) and in the Christmas run-up.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from include.simulator.reference import HKT, LUNAR_NEW_YEAR

STORE_WEEKDAY = [0.85, 0.85, 0.9, 0.95, 1.1, 1.5, 1.35]  # Monday .. Sunday
ONLINE_WEEKDAY = [1.05, 1.0, 1.0, 1.0, 0.95, 0.92, 1.05]


def _lny_offset(day: date) -> int | None:
    lny = LUNAR_NEW_YEAR.get(day.year)
    return None if lny is None else (day - lny).days


def stores_closed(day: date) -> bool:
    """All stores close on the first day of the Lunar New Year."""
    return _lny_offset(day) == 0


def store_factor(day: date) -> float:
    factor = STORE_WEEKDAY[day.weekday()]
    lny = _lny_offset(day)
    if lny is not None and -14 <= lny <= -1:
        factor *= 1.4
    elif lny is not None and 1 <= lny <= 2:
        factor *= 0.7
    if day.month == 12 and 12 <= day.day <= 24:
        factor *= 1.35
    elif day.month == 12 and day.day in (25, 26):
        factor *= 1.15
    return 0.0 if stores_closed(day) else factor


def online_factor(day: date) -> float:
    factor = ONLINE_WEEKDAY[day.weekday()]
    lny = _lny_offset(day)
    if lny is not None and -14 <= lny <= -3:
        factor *= 1.2
    elif lny is not None and 0 <= lny <= 2:
        factor *= 0.65
    if (day.month, day.day) == (11, 11):
        factor *= 3.5
    elif day.month == 11 and day.day in (9, 10, 12):
        factor *= 1.6
    elif (day.month, day.day) == (12, 12):
        factor *= 1.8
    elif day.month == 12 and day.day <= 22:
        factor *= 1.25
    return factor


def campaign(day: date) -> str:
    """The marketing campaign running on a day (for utm_campaign)."""
    lny = _lny_offset(day)
    if lny is not None and -21 <= lny <= 2:
        return f"lny_{day.year}"
    if day.month == 11 and 1 <= day.day <= 12:
        return f"double11_{day.year}"
    if day.month == 12:
        return f"xmas_{day.year}"
    return "always_on"


# Times are epoch seconds inside the simulator; these render them as each source writes them.
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
HK_OFFSET = 8 * 3600


def hk_day(t: int) -> date:
    """The Hong Kong date of an epoch second."""
    return date.fromordinal(EPOCH_ORDINAL + (t + HK_OFFSET) // 86400)


def midnight(day: date) -> int:
    """Epoch second of 00:00 Hong Kong time on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=HKT).timestamp())


def to_dt(t: int) -> datetime:
    """Hong Kong ``datetime`` for the shop's timestamptz columns."""
    return datetime.fromtimestamp(t, HKT)


def utc_s(t: int) -> str:
    """UTC ISO 8601 with ``Z``, as the ticketing system and the privacy office write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def utc_ms(t_ms: int) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``, as the web tracker writes it."""
    secs, ms = divmod(t_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def local_s(t: int) -> str:
    """Local time without offset, as the tills and the loyalty system write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + HK_OFFSET))
