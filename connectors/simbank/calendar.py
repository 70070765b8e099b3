"""Public holidays of the simulated bank's calendar (mainland China).

The official days off of the five holidays that shut businesses: Spring
Festival, Qingming, Labour Day, Dragon Boat and National Day (with Mid-Autumn
when it joins it). 2024-2026 are the State Council's published schedules; later
years are estimated from the lunar calendar (the schedule is published each
November). Make-up working weekends are not modelled: they are ordinary
weekends here.

Around the Spring Festival factories shut for longer than the official days:
`spring_shutdown` gives each site its own closing and reopening day (see
sensors.py and normal.py), drawn from SPRING_BEFORE and SPRING_AFTER.
"""

from __future__ import annotations

from datetime import date, timedelta

# (name, first day off, last day off)
HOLIDAYS: tuple[tuple[str, date, date], ...] = (
    ("spring_festival", date(2024, 2, 10), date(2024, 2, 17)),
    ("qingming", date(2024, 4, 4), date(2024, 4, 6)),
    ("labour_day", date(2024, 5, 1), date(2024, 5, 5)),
    ("dragon_boat", date(2024, 6, 8), date(2024, 6, 10)),
    ("national_day", date(2024, 10, 1), date(2024, 10, 7)),
    ("spring_festival", date(2025, 1, 28), date(2025, 2, 4)),
    ("qingming", date(2025, 4, 4), date(2025, 4, 6)),
    ("labour_day", date(2025, 5, 1), date(2025, 5, 5)),
    ("dragon_boat", date(2025, 5, 31), date(2025, 6, 2)),
    ("national_day", date(2025, 10, 1), date(2025, 10, 8)),
    ("spring_festival", date(2026, 2, 15), date(2026, 2, 23)),
    ("qingming", date(2026, 4, 4), date(2026, 4, 6)),
    ("labour_day", date(2026, 5, 1), date(2026, 5, 5)),
    ("dragon_boat", date(2026, 6, 19), date(2026, 6, 21)),
    ("national_day", date(2026, 10, 1), date(2026, 10, 8)),
    ("spring_festival", date(2027, 2, 5), date(2027, 2, 13)),
    ("qingming", date(2027, 4, 3), date(2027, 4, 5)),
    ("labour_day", date(2027, 5, 1), date(2027, 5, 5)),
    ("dragon_boat", date(2027, 6, 9), date(2027, 6, 11)),
    ("national_day", date(2027, 10, 1), date(2027, 10, 7)),
    ("spring_festival", date(2028, 1, 25), date(2028, 2, 2)),
    ("qingming", date(2028, 4, 2), date(2028, 4, 4)),
    ("labour_day", date(2028, 5, 1), date(2028, 5, 5)),
    ("dragon_boat", date(2028, 5, 28), date(2028, 5, 30)),
    ("national_day", date(2028, 10, 1), date(2028, 10, 7)),
)
FIRST_YEAR, LAST_YEAR = 2024, 2028

# Factories close 1-5 days before the official Spring Festival days off and
# reopen 2-10 days after them (migrant workers travel home and back).
SPRING_BEFORE = (1, 5)
SPRING_AFTER = (2, 10)
# The holiday season as the default rule pack lists it (rules/lists/calendar.yaml): the Spring Festival
# days off with a week before and two after, the other holidays with the day after them. Injected
# sensor episodes stay clear of it (an executive on holiday cannot be told from one who left).
SEASON = {"spring_festival": (7, 14)}
SEASON_OTHER = (0, 1)


def days_off(start: date, days: int) -> list[tuple[str, int, int]]:
    """(holiday, first day index, last day index) of the holidays within a month of the horizon.

    Indexes are not clipped (they can be negative or past the end): a shutdown
    around a holiday just outside the horizon still reaches into it."""
    end = start + timedelta(days=days - 1)
    if start.year < FIRST_YEAR or end.year > LAST_YEAR:
        raise ValueError(f"the simulated calendar covers {FIRST_YEAR}-{LAST_YEAR} (got {start} to {end})")
    margin = timedelta(days=31)
    return [(name, (first - start).days, (last - start).days) for name, first, last in HOLIDAYS
            if last >= start - margin and first <= end + margin]
