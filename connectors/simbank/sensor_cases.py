"""Injected sensor signals, edited into the reading grid, and their labels.

event_ids are the readings that show the signal (all of them, for the length
of the episode). A silent sensor has no readings to show, so its label names
its last reading before the silence and its first_event_time is when the first
missing reading was due. Genuine shutdowns (payments stop too, and the
site's power with them: the gateway goes quiet) are injected the same way but
get no label: a rule must tell them apart.

Episodes are free of network outages, and the headcount, electricity and
executive episodes stay clear of the holiday season (Horizon.calm): a plant
closed for the Spring Festival looks the same as one that collapsed, and no
data can tell them apart.
"""

from __future__ import annotations

import numpy as np

from .labels import Case, LabelRow
from .reference import World
from .sensors import EXEC, HEADCOUNT, INVENTORY, KWH, SensorGrid


def apply(w: World, rng: np.random.Generator, cases: list[Case], g: SensorGrid) -> list[LabelRow]:
    D, h, out = g.D, w.h, []
    for c in cases:
        s = int(w.site_of[c.b]) if c.b >= 0 else -1
        if s < 0:
            continue

        def label(pattern, keys, first):
            return LabelRow(pattern, w.borrower[c.b], c.loan, int(first), "sensor", keys)

        if c.pattern == "headcount_drop":  # falls to 15-45% and stays there
            k = h.calm_start(rng, 21, D - 6, 4)
            g.present[s, k: k + 4, :] = True
            g.value[s, k:, HEADCOUNT] = np.round(g.value[s, k:, HEADCOUNT] * rng.uniform(0.15, 0.45))
            out.append(label(c.pattern, g.keys(s, range(k, D), HEADCOUNT), g.ts[s, k, HEADCOUNT]))
        elif c.pattern == "inventory_shortfall":  # drawn down over 2-5 days to 30-85% of the pledge
            pledged = w.sites["pledged"][s]
            k, r = int(rng.integers(14, D - 7)), int(rng.integers(2, 6))
            start, target = g.value[s, k - 1, INVENTORY], pledged * rng.uniform(0.3, 0.85)
            for j in range(D - k):
                if j < r:
                    level = start + (target - start) * (j + 1) / r
                else:
                    level = min(target * rng.normal(1, 0.01), 0.97 * pledged)
                g.value[s, k + j, INVENTORY] = round(level, 1)
            low = [d for d in range(k, D) if g.value[s, d, INVENTORY] < pledged]
            g.present[s, low[0]: low[0] + 2, :] = True
            out.append(label(c.pattern, g.keys(s, low, INVENTORY), g.ts[s, low[0], INVENTORY]))
        elif c.pattern == "electricity_collapse":  # 3-10 days below 30% after 3+ normal weeks
            n = int(rng.integers(3, 11))
            k = h.calm_start(rng, 21, D - n, n)
            n = min(n, D - k)
            g.value[s, k: k + n, KWH] = np.round(g.value[s, k: k + n, KWH] * rng.uniform(0.05, 0.25, n), 1)
            g.present[s, k: k + n, :] = True
            out.append(label(c.pattern, g.keys(s, range(k, k + n), KWH), g.ts[s, k + 2, KWH]))
        elif c.pattern == "executive_absent":  # 11-20 days without the executive, business goes on
            n = int(rng.integers(11, 21))
            k = h.calm_start(rng, 7, D - 10, n)
            n = min(n, D - k)
            g.value[s, k: k + n, EXEC] = 0.0
            g.present[s, k: k + n, :] = True
            out.append(label(c.pattern, g.keys(s, range(k, k + n), EXEC), g.ts[s, k + 9, EXEC]))
        elif c.pattern == "sensor_silent":  # tampering: one sensor stops, the gateway and the rest go on
            k, n, slot = c.p["start"], c.p["length"], int(rng.integers(0, 4))
            g.present[s, k - 1: k + n + 1, :] = True
            g.present[s, k: k + n, slot] = False
            out.append(label(c.pattern, [g.key(s, k - 1, slot)], g.ts[s, k, slot]))
        elif c.pattern == "shutdown":  # genuine: the power is off, every sensor and the gateway go quiet
            k, n = c.p["start"], c.p["length"]
            g.present[s, k - 1, :] = True
            g.present[s, k: k + n, :] = False
    return out
