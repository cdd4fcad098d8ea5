"""Days off by country, for the calendar features.

China's public holidays move every year with the lunar calendar and come with
"adjusted working days" (weekends that are worked to bridge a holiday), so
they are a table from the State Council's yearly notices, not a rule. Years
missing from the table fall back to plain weekends, and ``known_year`` lets
the forecaster say so. The US federal holidays are rules; they label the
training data (the DOE and CityLearn buildings were simulated on US calendars).
"""

from __future__ import annotations

import datetime as dt

__all__ = ["day_kind", "is_day_off", "is_holiday", "known_year"]

_D = dt.date

# (first day, last day) of each statutory holiday period, both inclusive.
_CN_OFF: dict[int, list[tuple[dt.date, dt.date]]] = {
    2024: [(_D(2024, 1, 1), _D(2024, 1, 1)), (_D(2024, 2, 10), _D(2024, 2, 17)),
           (_D(2024, 4, 4), _D(2024, 4, 6)), (_D(2024, 5, 1), _D(2024, 5, 5)),
           (_D(2024, 6, 10), _D(2024, 6, 10)), (_D(2024, 9, 15), _D(2024, 9, 17)),
           (_D(2024, 10, 1), _D(2024, 10, 7))],
    2025: [(_D(2025, 1, 1), _D(2025, 1, 1)), (_D(2025, 1, 28), _D(2025, 2, 4)),
           (_D(2025, 4, 4), _D(2025, 4, 6)), (_D(2025, 5, 1), _D(2025, 5, 5)),
           (_D(2025, 5, 31), _D(2025, 6, 2)), (_D(2025, 10, 1), _D(2025, 10, 8))],
    2026: [(_D(2026, 1, 1), _D(2026, 1, 3)), (_D(2026, 2, 15), _D(2026, 2, 23)),
           (_D(2026, 4, 4), _D(2026, 4, 6)), (_D(2026, 5, 1), _D(2026, 5, 5)),
           (_D(2026, 6, 19), _D(2026, 6, 21)), (_D(2026, 9, 25), _D(2026, 9, 27)),
           (_D(2026, 10, 1), _D(2026, 10, 7))],
}
# Weekend days that are working days (调休上班).
_CN_WORK: dict[int, list[dt.date]] = {
    2024: [_D(2024, 2, 4), _D(2024, 2, 18), _D(2024, 4, 7), _D(2024, 4, 28),
           _D(2024, 5, 11), _D(2024, 9, 14), _D(2024, 9, 29), _D(2024, 10, 12)],
    2025: [_D(2025, 1, 26), _D(2025, 2, 8), _D(2025, 4, 27), _D(2025, 9, 28),
           _D(2025, 10, 11)],
    2026: [_D(2026, 1, 4), _D(2026, 2, 14), _D(2026, 2, 28), _D(2026, 5, 9),
           _D(2026, 9, 20), _D(2026, 10, 10)],
}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based; -1 for the last) given weekday (Mon=0) of a month."""
    if n > 0:
        first = _D(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = _D(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _us_holidays(year: int) -> set[dt.date]:
    fixed = [_D(year, 1, 1), _D(year, 7, 4), _D(year, 11, 11), _D(year, 12, 25)]
    days = {
        _nth_weekday(year, 1, 0, 3), _nth_weekday(year, 2, 0, 3), _nth_weekday(year, 5, 0, -1),
        _nth_weekday(year, 9, 0, 1), _nth_weekday(year, 10, 0, 2), _nth_weekday(year, 11, 3, 4),
    }
    for d in fixed:  # observed on the nearest weekday
        days.add(d - dt.timedelta(days=1) if d.weekday() == 5 else
                 d + dt.timedelta(days=1) if d.weekday() == 6 else d)
    return days


def known_year(country: str, year: int) -> bool:
    """Whether the holiday calendar of ``country`` covers ``year``."""
    return country == "US" or (country == "CN" and year in _CN_OFF)


def is_holiday(day: dt.date, country: str) -> bool:
    """A public holiday (not a plain weekend)."""
    if country == "CN":
        return any(a <= day <= b for a, b in _CN_OFF.get(day.year, []))
    if country == "US":
        return day in _us_holidays(day.year)
    return False


def is_day_off(day: dt.date, country: str) -> bool:
    """A holiday, or a weekend day that is not an adjusted working day."""
    if is_holiday(day, country):
        return True
    if country == "CN" and day in _CN_WORK.get(day.year, []):
        return False
    return day.weekday() >= 5


def day_kind(day: dt.date, country: str) -> tuple[int, int, int]:
    """(weekday Mon=0, holiday 0/1, day off 0/1)."""
    return day.weekday(), int(is_holiday(day, country)), int(is_day_off(day, country))
