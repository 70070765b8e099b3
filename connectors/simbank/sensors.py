"""IoT readings of pledged sites as a dense (site, day, kind) grid.

One reading per site, day and kind at a realistic local time: gate headcount
at ~10:00, the pledged inventory count at ~18:00, the day's executive presence
(camera) at ~20:00, the day's electricity total just before midnight.  Cases
edit `value` and `present` in place; the flat grid index is the reading's key.
"""

from __future__ import annotations

import numpy as np

from .reference import World

KINDS = ("headcount", "inventory", "electricity_kwh", "executive_presence")
HEADCOUNT, INVENTORY, KWH, EXEC = range(4)
READ_AT = np.array([10.0, 18.0, 23.75, 20.0]) * 3600  # local seconds after midnight
JITTER = np.array([900, 1200, 240, 600])  # seconds either side


class SensorGrid:
    def __init__(self, w: World, rng: np.random.Generator):
        h, S, D = w.h, len(w.sites), w.h.days
        self.S, self.D = S, D
        sec = READ_AT + rng.uniform(-1, 1, (S, D, 4)) * JITTER
        self.ts = h.ts(np.arange(D)[None, :, None].repeat(S, 0).repeat(4, 2), sec)
        self.value = np.zeros((S, D, 4))
        self.present = rng.random((S, D, 4)) > 0.0005  # a rare lost reading: noise, never a 3-day silence
        if S == 0:
            return
        wd = h.weekday
        hc = np.array(w.sites["headcount"], dtype=float)
        sat, sun = rng.uniform(0.6, 0.9, S), rng.uniform(0.55, 0.8, S)
        week = np.where(wd[None, :] < 5, 1.0, np.where(wd[None, :] == 5, sat[:, None], sun[:, None]))
        self.value[:, :, HEADCOUNT] = np.round(hc[:, None] * week * rng.normal(1, 0.03, (S, D)))
        kwh = hc * np.array(w.sites["kwh_per_head"])
        self.value[:, :, KWH] = np.round(kwh[:, None] * (0.2 + 0.8 * week) * rng.normal(1, 0.04, (S, D)), 1)
        # inventory: slow multiplicative random walk kept between 1.03x and 2x the pledged quantity
        pledged = np.array(w.sites["pledged"])
        level = pledged * rng.uniform(1.1, 1.5, S)
        for d in range(D):
            level = level * np.exp(rng.normal(0, 0.015, S))
            level = np.where(level < 1.03 * pledged, 2.06 * pledged - level, level)
            level = np.minimum(level, 2 * pledged)
            self.value[:, d, INVENTORY] = np.round(level, 1)
        # executive presence: mostly in on weekdays, rarely at weekends; never 5+ absent days in a row
        p_in = np.where(wd < 5, 0.9, 0.12)
        ex = (rng.random((S, D)) < p_in[None, :]).astype(float)
        for s in range(S):
            run = 0
            for d in range(D):
                run = 0 if ex[s, d] else run + 1
                if run >= 5:
                    ex[s, d], run = 1.0, 0
        self.value[:, :, EXEC] = ex

    def keys(self, site: int, days, kind: int) -> list[int]:
        """Keys of the present readings of one site and kind on `days`."""
        return [int((site * self.D + d) * 4 + kind) for d in days if self.present[site, d, kind]]
