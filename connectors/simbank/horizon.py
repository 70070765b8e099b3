"""The simulated horizon: calendar arrays and local time -> UTC microseconds.

The bank books in China Standard Time (UTC+8, no daylight saving).  Every
simulated event happens between 08:00 and 24:00 local time, so its UTC date is
its local date: a rule that buckets by UTC day sees the same days the branch
does.  Timestamps are int64 microseconds since the epoch until the writer turns
them into Datetime("us", "UTC").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from .calendar import SEASON, SEASON_OTHER, days_off

US = 1_000_000
DAY_US = 86_400 * US
LOCAL_OFFSET_S = 8 * 3600  # CST
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Horizon:
    """`days` local calendar days from `start`; day indices are 0-based."""

    def __init__(self, start: date, days: int):
        self.start, self.days = start, days
        self.dates = [start + timedelta(days=d) for d in range(days)]
        self.end = start + timedelta(days=days)  # exclusive
        self.weekday = np.array([d.weekday() for d in self.dates], dtype=np.int8)
        self.dom = np.array([d.day for d in self.dates], dtype=np.int8)
        self.holidays = days_off(start, days)  # (name, first, last day index), unclipped
        self.holiday = np.zeros(days, dtype=bool)  # an official day off
        for _, first, last in self.holidays:
            self.holiday[max(first, 0): max(last + 1, 0)] = True
        self.workday = (self.weekday < 5) & ~self.holiday
        self.season = np.zeros(days, dtype=bool)  # the holiday season the default pack's rules skip
        for name, first, last in self.holidays:
            before, after = SEASON.get(name, SEASON_OTHER)
            self.season[max(first - before, 0): max(last + after + 1, 0)] = True
        epoch_day = (start - date(1970, 1, 1)).days
        # local midnight of each day, in UTC microseconds
        self.midnight = (epoch_day + np.arange(days, dtype=np.int64)) * DAY_US - LOCAL_OFFSET_S * US

    def ts(self, day, sec):
        """UTC microseconds of local `sec` seconds after midnight on `day` (scalars or arrays)."""
        us = self.midnight[day] + np.round(np.asarray(sec, dtype=np.float64) * US).astype(np.int64)
        return int(us) if np.ndim(us) == 0 else us

    def next_workday(self, day: int) -> int:
        """`day` or the first weekday after it; may return `days` (past the end)."""
        while day < self.days and not self.workday[day]:
            day += 1
        return day

    def disbursement_day(self, day: int) -> int:
        """A working day near `day` that stays in the first third of the horizon (loans are booked there)."""
        d = self.next_workday(day)
        if d > self.days // 3:
            d = day
            while d > 0 and not self.workday[d]:
                d -= 1
        return d

    def month_ends(self) -> list[int]:
        """Last working day of every month whose last working day lies inside the horizon (payroll, rent)."""
        out = []
        for d in range(self.days):
            if not self.workday[d]:
                continue
            month, k = self.dates[d].month, d + 1
            while (self.date_of(k).month == month and k < self.days and not self.workday[k]) or \
                    (k >= self.days and self.date_of(k).month == month and self.date_of(k).weekday() >= 5):
                k += 1
            if self.date_of(k).month != month:
                out.append(d)
        return out

    def calm(self, day: int, days: int, before: int = 3) -> bool:
        """Whether `days` days from `day`, and `before` days before them, are all inside the horizon and
        outside the holiday season."""
        lo, hi = day - before, day + days
        return lo >= 0 and hi <= self.days and not self.season[lo:hi].any()

    def calm_start(self, rng, lo: int, hi: int, days: int) -> int:
        """A random day in [lo, hi) that starts a calm stretch of `days` days; lo when there is none."""
        ok = [d for d in range(lo, hi) if self.calm(d, days)]
        return int(rng.choice(ok)) if ok else lo

    def spring_festivals(self) -> list[tuple[int, int]]:
        """(first, last) day index of the Spring Festival days off near the horizon, unclipped."""
        return [(first, last) for name, first, last in self.holidays if name == "spring_festival"]

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=int(day))

    def day_of(self, when: date) -> int:
        return (when - self.start).days

    @staticmethod
    def datetime_of(us: int) -> datetime:
        return EPOCH + timedelta(microseconds=int(us))

    @staticmethod
    def utc_midnight(when: date) -> int:
        """UTC microseconds of 00:00 UTC on `when` (reference-data labels)."""
        return (when - date(1970, 1, 1)).days * DAY_US
