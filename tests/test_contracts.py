"""Contracts every rule kind keeps, checked over the whole default pack (match,
aggregate, absence, baseline, graph) on a simulated bank, the way River runs
its checks over every estimator:

- arrival order: the same events split over several input partitions and read
  in other interleavings, within the allowed lateness, give the same alerts
  (fund tracing is the documented exception: it follows payments in the order
  they arrive, so the rules that read traces are left out of this one);
- restart: stopping half-way, keeping the state as a snapshot would (pickled),
  and going on from it gives exactly the alerts of an uninterrupted run.

The two-worker contract (the same alerts on one worker and on two processes)
runs the real cluster in tests/test_replay_cluster.py.
"""

from __future__ import annotations

import pickle
import zlib
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from connectors.files import json_lines
from connectors.reference_files import load_reference
from connectors.simbank import simulate
from engine.batch import Raw
from engine.pipeline import Pipeline
from engine.rules.pack import load_pack
from engine.timing import Timing

PACK = load_pack(Path(__file__).resolve().parents[1] / "rules" / "post_loan")
TIMING = Timing(lateness=timedelta(days=1))
TRACED = {r.id for r in PACK.rules if any(f.path.startswith("trace.") for f in r.fields)}
STREAMS = ("parties", "relations", "transactions", "sensors")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    data = tmp_path_factory.mktemp("bank")
    simulate(3, 60, 60, data)
    rows = []
    for stream in STREAMS:
        df = pl.read_parquet(data / f"{stream}.parquet")
        column = {"parties": "registered_on", "relations": "valid_from"}.get(stream, "ts")
        times = df[column].cast(pl.Datetime("us", "UTC")).to_list()
        rows += [(t, stream, line) for t, line in zip(times, json_lines(df))]
    rows.sort(key=lambda r: (r[0], STREAMS.index(r[1])))
    return data, rows


def _run(data, batches: list[list[Raw]], stop_after: int | None = None) -> dict:
    pipe = Pipeline(PACK, load_reference(data), TIMING)
    alerts = []
    for i, batch in enumerate(batches):
        if i == stop_after:  # a snapshot, then a new process resumes from it
            frozen = pickle.dumps((pipe.states, pipe.tracer, pipe.lateness, pipe._partitions))
            pipe = Pipeline(PACK, load_reference(data), TIMING)
            pipe.states, pipe.tracer, pipe.lateness, pipe._partitions = pickle.loads(frozen)
        alerts += pipe.feed(batch)
    alerts += pipe.end()
    return {a.id: (a.rule_id, a.event_time, tuple(a.evidence.event_ids), a.summary) for a in alerts}


def _in_order(rows, size: int = 500) -> list[list[Raw]]:
    raws = [Raw(stream, f"{stream}.parquet", f"row {i}", line) for i, (_, stream, line) in enumerate(rows)]
    return [raws[i:i + size] for i in range(0, len(raws), size)]


def _interleaved(rows, partitions: int, sizes: tuple[int, ...]) -> list[list[Raw]]:
    """The events of each stream spread over `partitions` topic partitions (each in order, as Kafka keeps a
    partition), read a batch at a time from each partition in turn with batches of varying sizes."""
    queues: dict[tuple[str, int], list[Raw]] = {}
    for i, (_, stream, line) in enumerate(rows):
        p = zlib.crc32(line[:40]) % partitions
        queues.setdefault((stream, p), []).append(Raw(stream, stream, f"{p}:{i}", line))
    batches, turn = [], 0
    while any(queues.values()):
        for key in sorted(queues):
            size = sizes[turn % len(sizes)]
            turn += 1
            if queues[key]:
                batches.append(queues[key][:size])
                queues[key] = queues[key][size:]
    return batches


def test_every_rule_kind_gives_the_same_alerts_in_any_arrival_order_within_the_lateness(bank):
    data, rows = bank
    expected = {i: a for i, a in _run(data, _in_order(rows)).items() if a[0] not in TRACED}
    kinds = {r.spec.kind for r in PACK.rules if r.id in {a[0] for a in expected.values()}}
    assert kinds == {"match", "aggregate", "absence", "baseline", "graph", "model"}, kinds
    for partitions, sizes in ((3, (200, 50, 700)), (4, (90, 400))):
        got = {i: a for i, a in _run(data, _interleaved(rows, partitions, sizes)).items() if a[0] not in TRACED}
        missing = sorted({expected[i][0] for i in set(expected) - set(got)})
        extra = sorted({got[i][0] for i in set(got) - set(expected)})
        assert got == expected, (missing, extra)


def test_every_rule_kind_gives_the_same_alerts_after_a_restart(bank):
    data, rows = bank
    batches = _in_order(rows)
    expected = _run(data, batches)
    assert {a[0] for a in expected.values()} & TRACED, "traced findings are in the bank"
    for stop in (len(batches) // 3, 2 * len(batches) // 3):
        assert _run(data, batches, stop_after=stop) == expected
