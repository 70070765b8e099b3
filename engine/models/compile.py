"""Load-time checks and compilation of a rule's `model:` section (see engine.models.kind).

Every problem is reported at its place in the rule file, through the rule
compiler's `fail`: an unknown estimator or parameter, a missing seed, a feature
that reads an unknown or non-numeric field, a site feature on a rule not keyed
by site, HalfSpaceTrees over features without a range, and whatever River
refuses when the model first learns and scores a point.
"""

from __future__ import annotations

import typing
from typing import Any

from engine.models import estimators as est
from engine.models import features as ft
from engine.models.kind import ModelKind
from engine.records import SensorKind
from engine.rules.fields import UnknownField, resolve
from engine.rules.spec import Feature, Model, duration

KINDS_OF_FEATURE = ("field", "log", "hour_of_day", "hour_of_week", "novelty", "since_previous", "same_weekday",
                    "site_ratio", "site_silence")
SENSOR_KINDS = typing.get_args(SensorKind)


def compile_model(c: Any, m: Model) -> ModelKind:
    """`c` is the rule compiler (engine.rules.compiler._Compiler): its view, time zone and `fail`."""
    base = ("model",)
    site_features = any(f.site_ratio or f.site_silence for f in m.features.values())
    if site_features and (c.spec.applies_to.stream != "sensors" or m.key[0] != "site_id"):
        c.fail((*base, "key", 0), "site_ratio and site_silence compare a site's sensors: the rule reads sensors "
                                  "and its key starts with site_id")
    keys = [c.getter((*base, "key", i), k) for i, k in enumerate(m.key)]
    features, others = [], set()
    for name, f in m.features.items():
        fn = _feature(c, (*base, "features", name), name, f, m)
        if fn is not None:
            features.append(fn)
        others |= set(f.others)
    steps = [(s.name, dict(s.params)) for s in m.preprocessing]
    ok = True
    for i, s in enumerate(m.preprocessing):
        ok &= _report(c, (*base, "preprocessing", i), est.check_step(s.name, s.params, est.TRANSFORMERS, "transformer"))
    ok &= _report(c, (*base, "estimator"), est.check_step(m.estimator.name, m.estimator.params, est.ESTIMATORS,
                                                          "estimator"))
    if m.estimator.name in est.UNIT_RANGE and "MinMaxScaler" not in {s for s, _ in steps}:
        for name, f in m.features.items():
            if f.range is None:
                c.fail((*base, "features", name), f"{m.estimator.name} expects features in [0, 1]: give '{name}' "
                                                  "a range: [low, high], or put MinMaxScaler in preprocessing")
    make = lambda: None  # noqa: E731 - never used: the rule fails to load
    if ok:
        try:
            make = est.pipeline_factory(steps, (m.estimator.name, dict(m.estimator.params)), list(m.features))
            failure = est.smoke(make, list(m.features))
        except Exception as e:  # noqa: BLE001 - HalfSpaceTrees grows its trees here: the author's to fix
            failure = f"{type(e).__name__}: {e}"
        if failure:
            c.fail((*base, "estimator"), f"{m.estimator.name} fails on a first point: {failure}")
    return ModelKind(
        m.name, str(c.spec.version), keys, features, make, -1.0 if m.estimator.name in est.LOWER_IS_ANOMALOUS else 1.0,
        m.warm_up, duration(m.warm_up_for), m.threshold, m.sustained, duration(m.forget_after), c.tz,
        unit_score=m.estimator.name in est.UNIT_SCORE, site_kinds=others if site_features else None,
        history=m.history,
    )


def _report(c: Any, path: tuple, problems: list[est.StepProblem]) -> bool:
    for p in problems:
        c.fail((*path, *p.where), p.message, key=p.key)
    return not problems


def _feature(c: Any, path: tuple, name: str, f: Feature, m: Model) -> ft.FeatureFn | None:
    chosen = [k for k in KINDS_OF_FEATURE if getattr(f, k)]
    if len(chosen) != 1:
        c.fail(path, f"feature '{name}' needs exactly one of {', '.join(KINDS_OF_FEATURE)}", key=True)
        return None
    what = chosen[0]
    span = None
    if f.range is not None:
        if not f.range[0] < f.range[1]:
            c.fail((*path, "range"), f"range [{f.range[0]}, {f.range[1]}]: the low end must be below the high end")
        span = (float(f.range[0]), float(f.range[1]))
    if f.others and what != "site_ratio":
        c.fail((*path, "others"), "others belongs to site_ratio", key=True)
    if what in ("hour_of_day", "hour_of_week"):
        return ft.FeatureFn(name, ft.local_hour(c.tz, what == "hour_of_week"), span)
    if what == "since_previous":
        return ft.FeatureFn(name, ft.since_previous, span)
    if what == "site_silence":
        return ft.FeatureFn(name, ft.site_silence, span)
    field_path = getattr(f, what)
    get = _field(c, (*path, what), field_path, numeric=what != "novelty")
    if get is None:
        return None
    if what in ("field", "log"):
        return ft.FeatureFn(name, ft.declared(get, what == "log"), span)
    if what == "novelty":
        compute, observe = ft.novelty(name, get, m.memory)
        return ft.FeatureFn(name, compute, span, observe=observe)
    compute, remember = ft.same_weekday(name, get, m.history, c.tz)
    if what == "site_ratio":
        bad = [k for k in f.others if k not in SENSOR_KINDS or k == "heartbeat"]
        if not f.others or bad:
            c.fail((*path, "others"), f"site_ratio compares with others: a list of the site's sensor kinds "
                                      f"({', '.join(k for k in SENSOR_KINDS if k != 'heartbeat')})"
                                      + (f", not {', '.join(map(str, bad))}" if bad else ""))
        compute = ft.site_ratio(compute, list(f.others))
    return ft.FeatureFn(name, compute, span, remember=remember)


def _field(c: Any, path: tuple, field_path: str, numeric: bool):
    try:
        f = resolve(c.view, field_path)
    except UnknownField as e:
        c.fail(path, str(e))
        return None
    if numeric and f.kind != "number":
        c.fail(path, f"'{field_path}' is a {f.kind}: a model feature reads a number")
        return None
    if f.kind in ("list", "struct"):
        c.fail(path, f"'{field_path}' is a {f.kind}: novelty reads one value")
        return None
    c.read.setdefault(f.path, f)
    return f.get
