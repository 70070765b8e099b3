"""Run the tests embedded in rule files through the evaluators the daemon uses.

Each test builds its own reference data (the pack's test context plus the
test's `context`), feeds its events one at a time through the engine's stages
(engine.pipeline: decode, enrich, fund tracing, routing, detection), ends the
input as a replay's files end, and counts the alerts of the rule under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from engine.batch import Raw
from engine.pipeline import Pipeline
from engine.records import REFERENCE
from engine.reference import Reference
from engine.rules import source
from engine.rules.compiler import CompiledRule
from engine.rules.errors import Problem, RuleError
from engine.rules.pack import Pack
from engine.rules.spec import RuleTest
from engine.timing import Timing


# a rule's test events are a few and far between (repayments months apart): none is "future"
TESTS_TIMING = Timing(future=timedelta(days=36_500))


@dataclass(frozen=True)
class TestOutcome:
    rule_id: str
    name: str
    passed: bool
    detail: str  # what went wrong, or the alert summaries when it passed


def load_context(path: Path) -> dict[str, list[dict[str, Any]]]:
    loc = source.load(path)
    if not isinstance(loc.data, dict) or set(loc.data) - set(REFERENCE):
        raise RuleError([Problem(str(path), 1, 1, f"a test context maps {', '.join(REFERENCE)} to lists of records")])
    return loc.data


def run_tests(pack: Pack, keyword: str | None = None) -> list[TestOutcome]:
    base = load_context(Path(pack.path) / pack.test_context) if pack.test_context else {}
    outcomes = []
    for rule in pack.rules:
        for test in rule.spec.tests:
            if keyword and keyword.lower() not in f"{rule.id} {test.name}".lower():
                continue
            outcomes.append(_run_one(pack, rule, test, base))
    return outcomes


def _reference(base: dict[str, list[dict]], extra: dict[str, list[dict]]) -> Reference:
    ref = Reference()
    for kind, cls in REFERENCE.items():
        by_id = {r["id"]: r for r in base.get(kind, [])}
        by_id.update({r["id"]: r for r in extra.get(kind, [])})
        ref.add_all(msgspec.convert(r, cls) for r in by_id.values())
    return ref


def _run_one(pack: Pack, rule: CompiledRule, test: RuleTest, base: dict) -> TestOutcome:
    try:
        ref = _reference(base, test.context)
    except (msgspec.ValidationError, KeyError) as e:
        return TestOutcome(rule.id, test.name, False, f"bad test context: {e}")
    # the whole pack runs (a contagion rule needs the alerts of others); only this rule's alerts count
    pipeline = Pipeline(pack, ref, TESTS_TIMING)
    alerts = []
    for i, event in enumerate(test.events):
        event = dict(event)
        stream = event.pop("stream", rule.stream)
        alerts += pipeline.feed([Raw(stream, f"test {test.name!r}", f"event {i + 1}", event)])
        if pipeline.dead:
            return TestOutcome(rule.id, test.name, False, f"event {i + 1} is invalid: {pipeline.dead[0].reason}")
    alerts = [a for a in alerts + pipeline.end() if a.rule_id == rule.id]
    if len(alerts) != test.expect.alerts:
        got = "; ".join(a.summary for a in alerts) or "none"
        return TestOutcome(rule.id, test.name, False, f"expected {test.expect.alerts} alert(s), got {len(alerts)}: {got}")
    return TestOutcome(rule.id, test.name, True, "; ".join(a.summary for a in alerts))
