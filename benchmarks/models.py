"""The cost of the default pack's River models (`kind: model`).

    python benchmarks/models.py [--borrowers 2000] [--days 90] [--seed 7] [--skip-flow]

On the simulated bank's decoded, enriched and traced events (benchmarks/rules.py
prepares them), times:
- each model rule alone over the events of its stream: events per second, the
  points it judged and the µs each costs (features, score, learn, bookkeeping);
- River's estimators alone, learning and scoring one point at a time on the same
  three-feature points, the way a per-entity model with protect-on-anomaly must
  (a point is scored before it may be learned, so River's `learn_many` does not
  apply): the measured basis for choosing an estimator;
- the whole default pack in detection with and without its model rules, and,
  unless --skip-flow, the whole flow (Bytewax, tracing, DuckDB) both ways: the
  cost per event the models add.
Prints a table and writes benchmarks/results/models.json.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.data import bank_arguments, simulated, write_report  # noqa: E402
from benchmarks.rules import enriched, flow_seconds, time_pack, time_rule  # noqa: E402
from connectors.reference_files import load_reference  # noqa: E402
from dataflows import app  # noqa: E402
from engine.models import estimators as est  # noqa: E402
from engine.rules.pack import load_pack  # noqa: E402

ESTIMATORS = [  # (label, name, params): the default models' HalfSpaceTrees and the alternatives
    ("HalfSpaceTrees 5 trees, height 6", "HalfSpaceTrees", {"n_trees": 5, "height": 6, "window_size": 25, "seed": 7}),
    ("HalfSpaceTrees 5 trees, height 5", "HalfSpaceTrees", {"n_trees": 5, "height": 5, "window_size": 14, "seed": 7}),
    ("HalfSpaceTrees River default (25 trees, height 15)", "HalfSpaceTrees", {"seed": 7}),
    ("OneClassSVM", "OneClassSVM", {}),
    ("LODA", "LODA", {"seed": 7}),
]


def time_model(rule, views, ref) -> tuple[int, float, int, int]:
    """time_rule, counting the points the model judged (scored after warm-up) as it goes."""
    judged = 0

    def count(key, view, score):
        nonlocal judged
        judged += 1
    rule.kind.on_score = count
    try:
        return (*time_rule(rule, views, ref), judged)
    finally:
        rule.kind.on_score = None


def estimator_cost(name: str, params: dict, points: int = 20_000) -> float:
    """µs to score and then learn one point, on a model that has seen the points before it."""
    make = est.pipeline_factory([], (name, params), ["a", "b", "c"])
    model, rng = make(), random.Random(1)
    xs = [{"a": rng.random(), "b": rng.random(), "c": rng.random()} for _ in range(points)]
    for x in xs[:500]:
        model.learn_one(x)
    started = time.perf_counter()
    for x in xs:
        model.score_one(x)
        model.learn_one(x)
    return (time.perf_counter() - started) / points * 1e6


def without_models(pack_dir: Path, model_ids: list[str], tmp: Path) -> Path:
    """A copy of the pack's folder without its model rules (shared lists and filters beside it)."""
    root = tmp / "rules"
    shutil.copytree(pack_dir.parent, root)
    for rid in model_ids:
        (root / pack_dir.name / f"{rid}.yaml").unlink()
    return root / pack_dir.name


def main() -> None:
    args = bank_arguments(__doc__, skip_flow=True)
    data = simulated(args.seed, args.borrowers, args.days)
    ref, pack = load_reference(data), load_pack(app.DEFAULT_RULES)
    batches, views, _ = enriched(data, ref, pack)
    models = [r for r in pack.rules if r.spec.kind == "model"]
    print(f"{len(views):,} events; {len(models)} model rules: {', '.join(r.id for r in models)}")

    per_model = {}
    print(f"{'rule':7} {'model':19} {'stream':12} {'events/s':>10} {'µs/event':>9} {'judged':>9} {'findings':>9}")
    for rule in models:
        events, seconds, found, judged = time_model(rule, views, ref)
        spec = rule.spec.model
        per_model[rule.id] = {"model": spec.name, "estimator": spec.estimator.name,
                              "params": dict(spec.estimator.params), "stream": rule.stream, "events": events,
                              "events_per_second": round(events / seconds), "us_per_event": round(seconds / events * 1e6, 3),
                              "judged_points": judged, "findings": found}
        r = per_model[rule.id]
        print(f"{rule.id:7} {spec.name:19} {rule.stream:12} {r['events_per_second']:10,} {r['us_per_event']:9.2f} "
              f"{judged:9,} {found:9,}")

    estimators = {}
    for label, name, params in ESTIMATORS:
        estimators[label] = round(estimator_cost(name, params), 2)
        print(f"{label:52} {estimators[label]:8.2f} µs per score and learn")

    without = dataclasses.replace(pack, rules=tuple(r for r in pack.rules if r.spec.kind != "model"))
    with_s, without_s = time_pack(pack, batches, ref), time_pack(without, batches, ref)
    added = (with_s - without_s) / len(views) * 1e6
    print(f"detection, whole pack: {len(views) / with_s:,.0f} events/s; without its models "
          f"{len(views) / without_s:,.0f} events/s; the models add {added:.2f} µs per event")
    report = {
        "benchmark": "models",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days, "events": len(views)},
        "per_model": per_model,
        "estimator_us_per_score_and_learn": estimators,
        "detection": {"with_models_events_per_second": round(len(views) / with_s),
                      "without_models_events_per_second": round(len(views) / without_s),
                      "added_us_per_event": round(added, 3)},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
    }
    if not args.skip_flow:
        with tempfile.TemporaryDirectory() as tmp:
            bare = without_models(app.DEFAULT_RULES, [r.id for r in models], Path(tmp))
            events, flow_with = flow_seconds(data, app.DEFAULT_RULES)
            _, flow_without = flow_seconds(data, bare)
        added_flow = (flow_with - flow_without) / events * 1e6
        report["flow"] = {"events": events, "with_models_events_per_second": round(events / flow_with),
                          "without_models_events_per_second": round(events / flow_without),
                          "added_us_per_event": round(added_flow, 3)}
        print(f"whole flow: {events / flow_with:,.0f} events/s with the models, {events / flow_without:,.0f} without: "
              f"{added_flow:.2f} µs per event added")
    write_report("models", report)


if __name__ == "__main__":
    main()
