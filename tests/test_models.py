"""The `model` rule kind: load-time checks at their place, protect-on-anomaly, bounded
per-entity state, and scores that a restore from a snapshot continues exactly."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from engine.batch import Raw
from engine.pipeline import Pipeline
from engine.rules.errors import RuleError
from engine.rules.pack import load_pack
from engine.rules.selftest import TESTS_TIMING, _reference, load_context
from engine.rules.source import load

PACK = Path(__file__).resolve().parents[1] / "rules" / "post_loan"


def _pack_with(tmp_path: Path, rule: str, edit) -> Path:
    """A copy of the default pack with one rule file's text edited."""
    root = tmp_path / "rules"
    shutil.copytree(PACK.parent, root)
    path = root / "post_loan" / f"{rule}.yaml"
    path.write_text(edit(path.read_text()))
    (root / "post_loan" / "pack.lock").unlink()
    return root / "post_loan"


@pytest.mark.parametrize("old, new, message", [
    ("name: HalfSpaceTrees, params", "name: HalfSpaceTree, params", "unknown estimator 'HalfSpaceTree' (did you mean 'HalfSpaceTrees'?)"),
    ("n_trees: 5", "n_tress: 5", "HalfSpaceTrees has no parameter 'n_tress' (did you mean 'n_trees'?)"),
    ("window_size: 7, seed: 7}", "window_size: 7}", "give it a fixed integer seed"),
    ("height: 5", "height: 5.5", "HalfSpaceTrees fails on a first point"),
    ("{same_weekday: value, range: [0, 2]}", "{same_weekday: valu, range: [0, 2]}", "unknown field 'valu' (did you mean 'value'?)"),
    ("{same_weekday: value, range: [0, 2]}", "{same_weekday: unit, range: [0, 2]}", "'unit' is a str: a model feature reads a number"),
    ("{same_weekday: value, range: [0, 2]}", "{same_weekday: value}", "HalfSpaceTrees expects features in [0, 1]"),
    ("others: [headcount]", "others: [headcout]", "site_ratio compares with others"),
    ("key: [site_id, kind]", "key: [device]", "site_ratio and site_silence compare a site's sensors"),
    ("{same_weekday: value, range: [0, 2]}", "{same_weekday: value, log: value, range: [0, 2]}", "needs exactly one of"),
])
def test_a_broken_model_section_is_refused_at_its_place(tmp_path, old, new, message):
    root = _pack_with(tmp_path, "AM-002", lambda text: text.replace(old, new, 1))
    with pytest.raises(RuleError) as err:
        load_pack(root)
    problems = [p for p in err.value.problems if p.rule_id == "AM-002"]
    assert problems and message in str(problems[0]), [str(p) for p in err.value.problems]
    line = next(i for i, text in enumerate((root / "AM-002.yaml").read_text().splitlines(), 1) if new in text)
    assert problems[0].line == line  # file:line:col of the offending entry, not of the rule


def _events(rule: str, test: int) -> list[dict]:
    spec = load(PACK / f"{rule}.yaml").data
    return [dict(e) for e in spec["tests"][test]["events"]]


def _run(pack, events: list[dict], stream: str, cut: int | None = None) -> tuple[list, list]:
    """Scores of every judged point and the alerts; with `cut`, the detection state is pickled
    and restored into a new pipeline after `cut` events, as a restart from a snapshot would."""
    scores: list = []
    for r in pack.rules:
        if r.spec.kind == "model":
            r.kind.on_score = lambda key, view, s, rid=r.id: scores.append((rid, view.id, s))
    ref = _reference(load_context(PACK / "testdata" / "bank.yaml"), {})
    pipeline, alerts = Pipeline(pack, ref, TESTS_TIMING), []
    for i, event in enumerate(events):
        if i == cut:
            saved = pickle.dumps((pipeline.states, pipeline.lateness))
            pipeline = Pipeline(pack, ref, TESTS_TIMING)
            pipeline.states, pipeline.lateness = pickle.loads(saved)
            pipeline._partitions = {(stream, f"test 'x'")}
        alerts += pipeline.feed([Raw(stream, "test 'x'", f"event {i + 1}", event)])
    alerts += pipeline.end()
    return scores, alerts


@pytest.mark.parametrize("rule, stream", [("AM-001", "transactions"), ("AM-002", "sensors")])
def test_snapshot_restore_and_continue_gives_the_scores_of_an_uninterrupted_run(rule, stream):
    pack = load_pack(PACK)
    events = _events(rule, 0)
    whole, whole_alerts = _run(pack, events, stream)
    resumed, resumed_alerts = _run(pack, events, stream, cut=len(events) * 2 // 3)
    assert [s for s in whole if s[0] == rule] and whole == resumed
    assert [a.id for a in whole_alerts] == [a.id for a in resumed_alerts]
    assert any(a.rule_id == rule for a in whole_alerts)


def test_a_flagged_point_is_not_learned_and_the_alert_names_the_model():
    pack = load_pack(PACK)
    events = _events("AM-002", 0)  # power at a sixth for the last three days
    scores, alerts = _run(pack, events, "sensors")
    collapse = [s for r, e, s in scores if r == "AM-002" and e in ("e28", "e29", "e30")]
    # protected: the model never learned the first collapsed day, so the later ones score as high
    assert len(collapse) == 3 and min(collapse) >= 0.9 and collapse[2] >= collapse[0] - 1e-9
    (alert,) = [a for a in alerts if a.rule_id == "AM-002"]
    assert alert.model_versions == {"site-electricity": "1"}
    values = alert.evidence.values
    assert values["model"] == "site-electricity" and 0.9 <= values["model_score"] <= 1.0
    assert values["top_features"].split(" (")[0] in ("against_staff", "weekday_ratio")
    assert alert.evidence.event_ids[0] == "e28"  # the run of flagged points, from its first


def test_quiet_entities_expire_with_the_sweep():
    pack = load_pack(PACK)
    (rule,) = [r for r in pack.rules if r.id == "AM-002"]
    events = _events("AM-002", 2)
    ref = _reference(load_context(PACK / "testdata" / "bank.yaml"), {})
    pipeline = Pipeline(pack, ref, TESTS_TIMING)
    for i, e in enumerate(events):
        pipeline.feed([Raw("sensors", "t", str(i), e)])
    state = [s[rule.state_key] for s in pipeline.states.values() if s.get(rule.state_key, {}).get("entities")]
    assert len(state) == 1 and len(state[0]["entities"]) == 1 and len(state[0]["sites"]) == 1
    late = {**events[-1], "id": "later", "ts": "2026-04-01T02:00:00Z", "site_id": "SITE9"}
    pipeline.feed([Raw("sensors", "t", "later", late)])
    pipeline.end()
    assert not state[0]["entities"] and not state[0]["sites"]  # 30 days quiet: forgotten


def test_a_copy_of_the_grown_trees_scores_exactly_as_a_fresh_halfspacetrees():
    """Every entity's HalfSpaceTrees is a copy of one whose trees were grown at load time
    (engine.models.estimators): it must be the model River would have built itself."""
    import random

    from river import anomaly

    from engine.models.estimators import pipeline_factory

    params = {"n_trees": 5, "height": 6, "window_size": 25, "seed": 7}
    copy, fresh = pipeline_factory([], ("HalfSpaceTrees", params), ["a", "b"])(), anomaly.HalfSpaceTrees(**params)
    rng = random.Random(3)
    mine, rivers = [], []
    for _ in range(300):
        x = {"a": rng.random(), "b": rng.random()}
        mine.append(copy.score_one(x))
        rivers.append(fresh.score_one(x))
        copy.learn_one(x)
        fresh.learn_one(x)
    assert mine == rivers and sum(mine) > 0
