"""The River estimators and transformers a rule pack may name, checked and built at load time.

A pack names classes from these tables, never Python: `name` picks the class and
`params` its constructor's scalar arguments. Everything is checked when the pack
loads: the name, each parameter against the constructor's signature, a fixed
`seed` wherever the class takes one (a replay must give the same scores), and one
learn and score on a point of zeros, so a value River would refuse on the first
live event is refused at its place in the file instead.

Chosen by measurement (benchmarks/models.py, the README's figures): OneClassSVM scores
and learns in about half the time of the default models' small HalfSpaceTrees, but its
linear boundary ranks a site's headcount drops at ROC AUC 0.63 where HalfSpaceTrees
reaches 1.00, so the default models use small HalfSpaceTrees (5 trees, height 5 or 6).
"""

from __future__ import annotations

import difflib
import inspect
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from river import anomaly, compose, feature_extraction, preprocessing

ESTIMATORS: dict[str, type] = {
    "HalfSpaceTrees": anomaly.HalfSpaceTrees,
    "OneClassSVM": anomaly.OneClassSVM,
    "LODA": anomaly.LODA,
}
TRANSFORMERS: dict[str, type] = {
    "StandardScaler": preprocessing.StandardScaler,
    "MinMaxScaler": preprocessing.MinMaxScaler,
    "MaxAbsScaler": preprocessing.MaxAbsScaler,
    "RBFSampler": feature_extraction.RBFSampler,
}
# estimators whose scores fall as points look more unusual (River's OneClassSVM: the margin)
LOWER_IS_ANOMALOUS = frozenset({"OneClassSVM"})
# estimators whose raw score is already a 0..1 anomaly score (HalfSpaceTrees: the share of mass it misses)
UNIT_SCORE = frozenset({"HalfSpaceTrees"})
# estimators that expect every feature in [0, 1]
UNIT_RANGE = frozenset({"HalfSpaceTrees"})


@dataclass(frozen=True)
class StepProblem:
    where: tuple  # below the step: ("name",) or ("params", <param>)
    message: str
    key: bool = False


def check_step(name: str, params: dict[str, Any], table: dict[str, type], what: str) -> list[StepProblem]:
    cls = table.get(name)
    if cls is None:
        hint = difflib.get_close_matches(name, table, n=1)
        return [StepProblem(("name",), f"unknown {what} '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else
                                                                   f"; one of {', '.join(sorted(table))}"))]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    out = []
    for param, value in params.items():
        if param not in accepted:
            hint = difflib.get_close_matches(param, accepted, n=1)
            out.append(StepProblem(("params", param), f"{name} has no parameter '{param}'" +
                                   (f" (did you mean '{hint[0]}'?)" if hint else f"; it takes {', '.join(accepted)}"),
                                   key=True))
        elif not isinstance(value, (int, float, bool, str)):
            out.append(StepProblem(("params", param), f"{name}.{param}: a number, text or true/false"))
    if "seed" in accepted and not isinstance(params.get("seed"), int):
        out.append(StepProblem(("params",) if params else ("name",),
                               f"{name} draws random numbers: give it a fixed integer seed (params: {{seed: 1}}) "
                               "so a replay gives the same scores"))
    if not out:
        try:
            cls(**params)
        except (TypeError, ValueError) as e:
            out.append(StepProblem(("params",), f"{name}: {e}"))
    return out


def pipeline_factory(steps: list[tuple[str, dict]], estimator: tuple[str, dict],
                     names: list[str]) -> Callable[[], Any]:
    """A function giving a fresh, unfitted River pipeline (each entity gets its own)."""
    parts = [TRANSFORMERS[n](**p) for n, p in steps] + [ESTIMATORS[estimator[0]](**estimator[1])]
    prototype = compose.Pipeline(*parts) if len(parts) > 1 else parts[0]
    if estimator[0] == "HalfSpaceTrees" and not steps:
        _grow_trees(prototype, names)
        blob = pickle.dumps(prototype)
        return lambda: pickle.loads(blob)
    return prototype.clone


def _grow_trees(hst: Any, names: list[str]) -> None:
    """HalfSpaceTrees grows its random trees on the first point it learns: about 12 ms for five
    trees of height 6 here, the cost of hundreds of points, for every new borrower or site. Each
    entity's trees come from the same seed, so they are grown once here, on a point of zeros
    whose mass is then taken out again; a copy is exactly the model a fresh one would become
    (a test checks), at a third of the cost. Only for a lone estimator: a pipeline's
    preprocessing may rename what the trees see."""
    hst.learn_one(dict.fromkeys(names, 0.0))
    for nodes in hst._tree_nodes:
        for node in nodes:
            node.l_mass = 0
    hst.counter = 0


def smoke(make: Callable[[], Any], names: list[str]) -> str | None:
    """Learn and score one point of zeros: what River refuses then, it would refuse on a live event."""
    try:
        model = make()
        x = dict.fromkeys(names, 0.0)
        model.learn_one(x)
        float(model.score_one(x))
    except Exception as e:  # noqa: BLE001 - any failure of the estimator is the author's to fix
        return f"{type(e).__name__}: {e}"
    return None
