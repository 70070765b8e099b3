"""IoT readings of pledged sites as a dense (site, day, slot) grid.

Every site has one gateway through which its four sensors report, once a day
each at a realistic local time: gate headcount at ~10:00, the pledged
inventory count at ~18:00, the day's executive presence (camera) at ~20:00,
the day's electricity total just before midnight. The gateway itself sends a
heartbeat four times a day (08:30, 12:30, 16:30, 21:30). Cases edit `value`
and `present` in place; the flat grid index is the reading's key.

What the readings show follows the site's borrower (reference._activity): a
factory closed for the Spring Festival or a public holiday keeps a few guards
(headcount at its activity, 10%), draws base load (20% of its power plus the
rest in proportion to activity) and its executives are away; seasonal
businesses swing +-25% over the year. Executives also travel: a trip of 2-7
days about every 40 days, and outside holidays never 9 or more days in a row
away. Site network outages (the gateway loses its uplink: every reading and
heartbeat of the site in the outage is lost) come about every 60 days per
site and last from half an hour to four days (lognormal, median 10 hours).
One reading in 2,000 is lost on its own, and one inventory count in 500 misreads
stock being moved (20-80% of the true level).
"""

from __future__ import annotations

import numpy as np

from .horizon import US
from .reference import World

KINDS = ("headcount", "inventory", "electricity_kwh", "executive_presence", "heartbeat")
HEADCOUNT, INVENTORY, KWH, EXEC = range(4)
HEARTBEATS = (4, 5, 6, 7)  # slots of the gateway's heartbeats
SLOT_KIND = (0, 1, 2, 3, 4, 4, 4, 4)  # slot -> index in KINDS
SLOTS = len(SLOT_KIND)
READ_AT = np.array([10.0, 18.0, 23.75, 20.0, 8.5, 12.5, 16.5, 21.5]) * 3600  # local seconds after midnight
JITTER = np.array([900, 1200, 240, 600, 120, 120, 120, 120])  # seconds either side
OUTAGE_EVERY_DAYS = 60
OUTAGE_MEDIAN_H, OUTAGE_MIN_H, OUTAGE_MAX_H = 10.0, 0.5, 96.0
MISCOUNT = 1 / 500  # inventory counts that misread
AWAY_AT_MOST = 8  # days in a row without an executive, outside holidays


class SensorGrid:
    def __init__(self, w: World, rng: np.random.Generator):
        h, S, D = w.h, len(w.sites), w.h.days
        self.S, self.D = S, D
        sec = READ_AT + rng.uniform(-1, 1, (S, D, SLOTS)) * JITTER
        self.ts = h.ts(np.arange(D)[None, :, None].repeat(S, 0).repeat(SLOTS, 2), sec)
        self.value = np.zeros((S, D, SLOTS))
        self.value[:, :, HEARTBEATS] = 1.0
        self.present = rng.random((S, D, SLOTS)) > 0.0005  # a rare lost reading: noise, never a 3-day silence
        self.outages: list[tuple[int, int, int]] = []  # (site, start, end) in UTC microseconds
        if S == 0:
            return
        b_of = np.array([w.index_of[p] for p in w.sites["borrower"]])
        act = np.clip(w.activity[b_of], 0.05, None)  # (S, D)
        wd = h.weekday
        hc = np.array(w.sites["headcount"], dtype=float)
        sat, sun = rng.uniform(0.6, 0.9, S), rng.uniform(0.55, 0.8, S)
        week = np.where(wd[None, :] < 5, 1.0, np.where(wd[None, :] == 5, sat[:, None], sun[:, None]))
        self.value[:, :, HEADCOUNT] = np.round(hc[:, None] * week * act * rng.normal(1, 0.03, (S, D)))
        kwh = hc * np.array(w.sites["kwh_per_head"])
        self.value[:, :, KWH] = np.round(kwh[:, None] * (0.2 + 0.8 * week * act) * rng.normal(1, 0.04, (S, D)), 1)
        # inventory: slow multiplicative random walk kept between 1.03x and 2x the pledged quantity
        pledged = np.array(w.sites["pledged"])
        level = pledged * rng.uniform(1.1, 1.5, S)
        for d in range(D):
            level = level * np.exp(rng.normal(0, 0.015, S))
            level = np.where(level < 1.03 * pledged, 2.06 * pledged - level, level)
            level = np.minimum(level, 2 * pledged)
            self.value[:, d, INVENTORY] = np.round(level, 1)
        miscount = rng.random((S, D)) < MISCOUNT
        self.value[:, :, INVENTORY] = np.where(miscount, np.round(self.value[:, :, INVENTORY] *
                                                                  rng.uniform(0.2, 0.8, (S, D)), 1),
                                               self.value[:, :, INVENTORY])
        self.value[:, :, EXEC] = self._executives(rng, act, wd)
        self._outages(rng, h)

    def _executives(self, rng, act: np.ndarray, wd: np.ndarray) -> np.ndarray:
        """Mostly in on working days, rarely at weekends, away on holidays and trips."""
        S, D = act.shape
        p_in = np.where(wd < 5, 0.9, 0.12)[None, :] * np.where(act < 0.5, 0.1, 1.0)
        ex = (rng.random((S, D)) < p_in).astype(float)
        for s in range(S):
            d = int(rng.integers(0, 40))
            while d < D:  # business trips
                ex[s, d: d + int(rng.integers(2, 8))] = 0.0
                d += int(rng.exponential(40)) + 8
            run = 0
            for d in range(D):
                run = 0 if ex[s, d] or act[s, d] < 0.5 else run + 1
                if run > AWAY_AT_MOST:
                    ex[s, d], run = 1.0, 0
        return ex

    def _outages(self, rng, h) -> None:
        """The gateway loses its uplink: every reading of the site in the outage is lost."""
        lo, hi = h.midnight[0], h.midnight[-1] + 86_400 * US
        for s in range(self.S):
            for _ in range(rng.poisson(self.D / OUTAGE_EVERY_DAYS)):
                hours = float(np.clip(rng.lognormal(np.log(OUTAGE_MEDIAN_H), 1.0), OUTAGE_MIN_H, OUTAGE_MAX_H))
                start = int(rng.integers(lo, hi))
                end = start + int(hours * 3600 * US)
                self.outages.append((s, start, end))
                self.present[s] &= ~((self.ts[s] >= start) & (self.ts[s] < end))

    def keys(self, site: int, days, slot: int) -> list[int]:
        """Keys of the present readings of one site and slot on `days`."""
        return [self.key(site, d, slot) for d in days if self.present[site, d, slot]]

    def key(self, site: int, day: int, slot: int) -> int:
        return int((site * self.D + day) * SLOTS + slot)
