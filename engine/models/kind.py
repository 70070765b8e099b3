"""The `model` rule kind: a River anomaly model per entity, learning online.

Per entity (the rule's `key`: a borrower, a site and sensor kind, an account) the
state holds its own River model and the memory of its features (features.py),
inside the rule's keyed detection state: routed by the key's first field,
snapshotted with the shard, expired when the entity has been quiet for
`forget_after`. Points come in event-time order (the kind is ordered), one at a
time, so a replay from the start, or a restore from a snapshot, gives the same
scores exactly whatever the batch boundaries were.

Each point in scope is first scored, then learned, unless it was flagged:
protect on anomaly, so a plant that collapsed does not teach its model that
collapse is normal (and its same-weekday history keeps the old level). The first
`warm_up` points of an entity, and all within `warm_up_for` of its first, are
learned without being judged.

Scores are normalised to 0..1 per entity, the same way for every estimator: z is
how many standard deviations the raw score lies above the mean raw score of the
points that entity's model learned (a running mean and variance over about the
last 50), and the normalised score is 1 - 1/z^2 for z > 1, else 0. By
Chebyshev's inequality at most 1/z^2 of normal points score that far out, so a
threshold of 0.9 means "at most one normal point in ten lies this far", for any
distribution of raw scores. The features that contributed most are found by
putting each back to the entity's mean and seeing how far the raw score falls;
only a flagged point pays for that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from engine.models.features import Entity, FeatureFn, Site, observe_site, scaled
from engine.rules.kinds import EVIDENCE_EVENTS, Hit, Kind

SCORE_MEMORY = 50  # learned points the raw-score mean and variance follow
TOP_FEATURES = 3


def normalised(raw: float, stats: list) -> float:
    n, mean, var = stats
    if n < 2:
        return 0.0
    # a floor of a tenth of the mean: an entity whose scores barely moved while it learned
    # must not turn a trifle into an anomaly
    spread = max(math.sqrt(var), 0.1 * abs(mean), 1e-9)
    z = (raw - mean) / spread
    return 1.0 - 1.0 / (z * z) if z > 1.0 else 0.0


def _follow(stats: list, raw: float) -> None:
    n, mean, var = stats
    n += 1
    a = 1.0 / min(n, SCORE_MEMORY)
    delta = raw - mean
    mean += a * delta
    var = (1 - a) * (var + a * delta * delta)
    stats[:] = [n, mean, var]


@dataclass
class ModelKind(Kind):
    ordered = True
    name: str
    version: str  # the rule's version: a new one starts every entity afresh
    keys: list[Callable[[Any], Any]]
    features: list[FeatureFn]
    make: Callable[[], Any]  # a fresh River pipeline
    sign: float  # -1 for estimators whose raw scores fall as points look more unusual
    warm_up: int
    warm_up_for: timedelta
    threshold: float
    sustained: int
    forget_after: timedelta
    tz: tzinfo
    unit_score: bool = False  # the estimator's raw score is already 0..1 (HalfSpaceTrees: the mass it misses)
    site_kinds: set[str] | None = None  # sensor kinds the site memory follows; None: no site features
    history: int = 3
    # an observer of every score (entity key, view, normalised score): evaluation and benchmarks
    # read it; it is not state and is not snapshotted
    on_score: Callable[[str, Any, float], None] | None = field(default=None, compare=False)

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        site = None
        if self.site_kinds is not None:
            sites = state.setdefault("sites", {})
            where = str(self.keys[0](view))
            site = sites.get(where)
            if site is None:
                site = sites[where] = Site(view.ts)
            site.last = max(site.last, view.ts)
            # only the kinds it follows and heartbeats tell the site's memory anything; a
            # holiday's readings say nothing of the usual
            if (view.kind in self.site_kinds or view.kind == "heartbeat") and not (
                    rule.exceptions and rule._excepted(view)):
                observe_site(site, view, self.site_kinds, self.history, self.tz)
        if not rule.in_scope(view):
            return []
        key = "/".join(str(k(view)) for k in self.keys)
        entities = state.setdefault("entities", {})
        entity = entities.get(key)
        if entity is None:
            entity = entities[key] = Entity(self.make(), view.ts, view.ts)
        entity.last = max(entity.last, view.ts)
        x: dict[str, float] = {}
        for f in self.features:
            value = f.compute(view, entity, site)
            if value is None:
                x = {}
                break
            x[f.name] = scaled(value, f.span)
        if x:
            hits = self._judge(rule, view, key, entity, x)
        else:  # not judged yet (no history): still part of the entity's past
            hits = []
            self._remember(view, entity)
        for f in self.features:
            if f.observe is not None:
                f.observe(view, entity)
        entity.prev = view.ts
        return hits

    def _judge(self, rule: Any, view: Any, key: str, entity: Entity, x: dict) -> list[Hit]:
        raw = self.sign * float(entity.model.score_one(x)) if entity.learned else 0.0
        score = raw if self.unit_score else normalised(raw, entity.raw)
        warm = entity.learned < self.warm_up or view.ts - entity.first < self.warm_up_for
        if self.on_score is not None and not warm:
            self.on_score(key, view, score)
        if warm or score < self.threshold:
            self._learn(view, entity, x, raw)
            return []
        entity.run.append(view)  # protect on anomaly: a flagged point is not learned
        if entity.fired or len(entity.run) < self.sustained or (entity.until and view.ts < entity.until):
            return []
        entity.fired = True
        if rule.suppress_for is not None:  # one finding per entity and suppression window, however batched
            entity.until = view.ts + rule.suppress_for
        return [self._hit(rule, view, key, entity, x, raw, score)]

    def _learn(self, view: Any, entity: Entity, x: dict, raw: float) -> None:
        entity.model.learn_one(x)
        if entity.learned >= self.warm_up // 2:  # once the model has seen a few points: its first scores say little
            _follow(entity.raw, raw)
        entity.learned += 1
        a = 1.0 / min(entity.learned, SCORE_MEMORY)
        for name, value in x.items():
            entity.means[name] = entity.means.get(name, value) + a * (value - entity.means.get(name, value))
        self._remember(view, entity)
        entity.run, entity.fired = [], False

    def _remember(self, view: Any, entity: Entity) -> None:
        for f in self.features:
            if f.remember is not None:
                f.remember(view, entity)

    def contributions(self, entity: Entity, x: dict, raw: float) -> list[tuple[str, float]]:
        """Features by how far the raw score falls when each is put back to the entity's mean."""
        drops = []
        for name in x:
            typical = {**x, name: entity.means.get(name, x[name])}
            drops.append((name, raw - self.sign * float(entity.model.score_one(typical))))
        total = sum(d for _, d in drops if d > 0) or 1.0
        return [(n, d / total) for n, d in sorted(drops, key=lambda t: -t[1])[:TOP_FEATURES] if d > 0]

    def _hit(self, rule: Any, view: Any, key: str, entity: Entity, x: dict, raw: float, score: float) -> Hit:
        top = self.contributions(entity, x, raw)
        m = rule.explain(view)
        loan = getattr(view, "loan", None)
        values = {**m.values, **{f"feature.{n}": round(v, 4) for n, v in x.items()},
                  "model": self.name, "model_version": self.version, "model_score": round(score, 4),
                  "top_features": ", ".join(f"{n} ({share:.0%})" for n, share in top)}
        summary = rule.summary(view, {"model_score": score, "top_features": values["top_features"]})
        run = entity.run[-EVIDENCE_EVENTS:]
        return Hit(key, entity.run[0].id, [v.id for v in run], view.ts, view.borrower.id,
                   loan.id if loan is not None else None, values, m.conditions, summary, events=run,
                   model_score=score, models={self.name: self.version})

    def expire(self, watermark: datetime, state: dict) -> None:
        horizon = watermark - self.forget_after
        for part in ("entities", "sites"):
            table = state.get(part, {})
            for key in [k for k, item in table.items() if item.last < horizon]:
                del table[key]

    def entries(self, state: dict) -> int:
        return len(state.get("entities", {})) + len(state.get("sites", {}))


def replay_scores(rule: Any, views: list, ref: Any) -> list[tuple[Any, float]]:
    """Every judged point of one model rule over `views` (in event-time order), alone, as the
    detector would feed it: (view, normalised score). For ROC AUC and the benchmark."""
    out: list[tuple[Any, float]] = []
    kind, state = rule.kind, {}
    kind.on_score = lambda key, view, score: out.append((view, score))
    try:
        for view in views:
            kind.on_event(rule, view, state, ref)
    finally:
        kind.on_score = None
    return out
