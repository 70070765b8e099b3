"""A model's inputs, computed from the event and the entity's own past.

Each feature of a `model` rule compiles to a function (view, entity, site) -> float
or None. None means "not known yet" (no same-weekday history, no previous event):
the point is then neither scored nor learned. What a feature remembers lives in
the entity's state (`Entity`) or, for site features, in the site's (`Site`), both
inside the rule's keyed detection state, so they are snapshotted and expire with it.

A feature with a `range` is mapped onto [0, 1] (clipped), which is what
HalfSpaceTrees expects; the range is the author's statement of the feature's
plausible span, not something learned from the labels.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

BEATS_PER_DAY = 4  # the site gateway's heartbeats (connectors/simbank/sensors.py documents the device)
RECENT = timedelta(days=2)  # the site's other sensors' ratios count this long
SITE_MEMORY_HOURS = 24 * 30


@dataclass
class Entity:
    """What one entity's model keeps: the River model and the features' memory."""

    model: Any
    first: datetime  # its first event: it is judged once `warm_up_for` after it
    last: datetime  # its newest event: the entity expires once quiet for `forget_after`
    learned: int = 0
    raw: list = field(default_factory=lambda: [0, 0.0, 0.0])  # learned points' raw scores: n, mean, variance
    means: dict = field(default_factory=dict)  # feature -> mean over learned points (for contributions)
    prev: datetime | None = None  # previous event, for since_previous and site_silence
    seen: dict = field(default_factory=dict)  # novelty: field -> {value: None}, oldest first
    weeks: dict = field(default_factory=dict)  # same_weekday: field -> weekday -> recent values
    run: list = field(default_factory=list)  # flagged points in a row
    fired: bool = False
    until: datetime | None = None  # no new finding before (the rule's suppress_for after the last)


@dataclass
class Site:
    """What a site's sensors tell about each other: recent same-weekday ratios, gateway heartbeats."""

    last: datetime
    ratios: dict = field(default_factory=dict)  # sensor kind -> (time, value / its same-weekday mean)
    weeks: dict = field(default_factory=dict)  # sensor kind -> weekday -> recent values
    beats: array = field(default_factory=lambda: array("i"))  # hours with a heartbeat, ascending


Compute = Callable[[Any, Entity, Site | None], float | None]


@dataclass(frozen=True)
class FeatureFn:
    name: str
    compute: Compute
    span: tuple[float, float] | None  # declared range, mapped onto [0, 1]
    remember: Callable[[Any, Entity], None] | None = None  # after a learned point (protect on anomaly)
    observe: Callable[[Any, Entity], None] | None = None  # after every scored point


def weekday_mean(weeks: dict, view: Any, value_of: Callable, tz: tzinfo) -> tuple[str, float | None]:
    day = str(view.ts.astimezone(tz).weekday())
    past = weeks.get(day)
    return day, (sum(past) / len(past)) if past else None


def push(weeks: dict, day: str, value: float, history: int) -> None:
    past = weeks.setdefault(day, [])
    past.append(value)
    del past[:-history]


def ratio(value: float | None, mean: float | None) -> float | None:
    if value is None or mean is None:
        return None
    return value / mean if mean > 0 else (1.0 if value <= 0 else 10.0)


def local_hour(tz: tzinfo, of_week: bool) -> Compute:
    """The hour of the day (or of the week, Monday 00:00 = 0) in the bank's time zone, with its fraction."""
    def compute(view, entity, site):
        local = view.ts.astimezone(tz)
        return (local.weekday() * 24 if of_week else 0) + local.hour + local.minute / 60
    return compute


def declared(get: Callable, log: bool) -> Compute:
    def compute(view, entity, site):
        value = get(view)
        if value is None:
            return None
        return math.log1p(max(float(value), 0.0)) if log else float(value)
    return compute


def since_previous(view, entity: Entity, site) -> float | None:
    if entity.prev is None:
        return None
    return math.log1p(max((view.ts - entity.prev).total_seconds(), 0.0) / 3600)


def novelty(name: str, get: Callable, memory: int) -> tuple[Compute, Callable]:
    def compute(view, entity, site):
        return 0.0 if get(view) in entity.seen.get(name, ()) else 1.0

    def observe(view, entity):
        value = get(view)
        seen = entity.seen.setdefault(name, {})
        seen.pop(value, None)
        seen[value] = None  # most recent last
        while len(seen) > memory:
            del seen[next(iter(seen))]
    return compute, observe


def same_weekday(name: str, get: Callable, history: int, tz: tzinfo) -> tuple[Compute, Callable]:
    def compute(view, entity, site):
        _, mean = weekday_mean(entity.weeks.get(name, {}), view, get, tz)
        return ratio(get(view), mean)

    def remember(view, entity):
        value = get(view)
        if value is not None:
            day, _ = weekday_mean({}, view, get, tz)
            push(entity.weeks.setdefault(name, {}), day, float(value), history)
    return compute, remember


def site_ratio(own: Compute, others: list[str]) -> Compute:
    """This sensor's same-weekday ratio over the mean of the site's other sensors' recent ones:
    a holiday or a slow week moves them all, a collapse of one does not."""
    def compute(view, entity, site):
        mine = own(view, entity, site)
        if mine is None or site is None:
            return None
        theirs = [r for kind in others if (got := site.ratios.get(kind)) is not None
                  and view.ts - got[0] <= RECENT for r in (got[1],)]
        if not theirs:
            return None
        return mine / max(sum(theirs) / len(theirs), 0.05)
    return compute


def site_silence(view, entity: Entity, site: Site | None) -> float | None:
    """Days' worth of gateway heartbeats since this sensor's previous reading: about one
    between daily readings, about one after a site-wide outage too (the gateway was
    silent as well), several when the sensor alone was silent."""
    if entity.prev is None or site is None:
        return None
    lo, hi = int(entity.prev.timestamp()) // 3600, int(view.ts.timestamp()) // 3600
    beats = bisect.bisect_left(site.beats, hi) - bisect.bisect_right(site.beats, lo)
    return beats / BEATS_PER_DAY


def observe_site(site: Site, view: Any, others: set[str], history: int, tz: tzinfo) -> None:
    """Keep what a site's sensors say about each other: its heartbeats and the kinds it follows."""
    if view.kind == "heartbeat":
        hour = int(view.ts.timestamp()) // 3600
        if not site.beats or site.beats[-1] != hour:
            bisect.insort(site.beats, hour)
        if site.beats[0] < hour - SITE_MEMORY_HOURS:
            del site.beats[:bisect.bisect_left(site.beats, hour - SITE_MEMORY_HOURS)]
    elif view.kind in others:
        weeks = site.weeks.setdefault(view.kind, {})
        day, mean = weekday_mean(weeks, view, None, tz)
        value = ratio(view.value, mean)
        if value is not None:
            site.ratios[view.kind] = (view.ts, value)
        push(weeks, day, view.value, history)


def scaled(value: float, span: tuple[float, float] | None) -> float:
    if span is None:
        return value
    lo, hi = span
    return min(max((value - lo) / (hi - lo), 0.0), 1.0)
