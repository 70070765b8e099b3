"""Rule evaluation cost: the default pack over 1M+ simulated transactions.

    python benchmarks/rules.py [--borrowers 2000] [--days 90] [--seed 7] [--skip-flow]

Decodes, enriches and traces the simulated bank's transactions and sensor
readings once, then times, on the same enriched events:
- the whole default pack through the detector (events per second);
- each rule alone (µs per event of its stream), summed up per rule kind (its
  findings column is for orientation only: alone, a rule's deadlines are
  checked once, at the end);
- the compiled YAML rule CO-001 against the same check written by hand in
  Python (the simplest honest alternative to a rule language);
and, unless --skip-flow, the whole flow end to end (Bytewax, DuckDB).
Prints a table and writes benchmarks/results/rules.json.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.files import FileSource, read_raw  # noqa: E402
from connectors.reference_files import load_reference  # noqa: E402
from benchmarks.data import bank_arguments, simulated, write_report  # noqa: E402
from dataflows import app  # noqa: E402
from engine.batch import Batch  # noqa: E402
from engine.context import STREAM_OF, TxView, enrich_batch, trace_batch  # noqa: E402
from engine.decode import decode  # noqa: E402
from engine.pipeline import Pipeline  # noqa: E402
from engine.rules.pack import load_pack  # noqa: E402
from engine.tracing import Tracer  # noqa: E402


def enriched(data: Path, ref, pack) -> tuple[list[Batch], list, float]:
    """Every event of the bank, decoded, enriched and traced, in event-time order: the
    batches as detection gets them (with their inputs' progress) and their events."""
    started = time.perf_counter()
    tracer, batches = Tracer(pack.tracing), []
    raws = [raw for stream in ("transactions", "sensors")
            for batch in read_raw(stream, data / f"{stream}.parquet", batch=5000) for raw in batch]
    times = pl.concat([pl.read_parquet(data / f"{s}.parquet", columns=["ts"]) for s in ("transactions", "sensors")])
    order = times["ts"].arg_sort().to_list()
    raws = [raws[i] for i in order]
    for i in range(0, len(raws), 5000):
        batches.append(trace_batch(enrich_batch(decode(raws[i : i + 5000]), ref), tracer, ref))
    return batches, [v for b in batches for v in b.items], time.perf_counter() - started


def time_pack(pack, batches, ref) -> float:
    """Routing by each rule's key and detection, shard by shard, as the flow does;
    ends with every input quiet, so what waits for the watermark is evaluated too."""
    pipeline = Pipeline(pack, ref)
    started = time.perf_counter()
    for batch in batches:
        pipeline.detect(batch)
    pipeline.end()
    return time.perf_counter() - started


def time_rule(rule, views, ref) -> tuple[int, float, int]:
    """One rule over the events of the streams it observes: (events, seconds, findings)."""
    mine = [v for v in views if STREAM_OF[type(v)] in rule.observes]
    state: dict = {}
    on_event, found = rule.kind.on_event, 0
    started = time.perf_counter()
    for view in mine:
        found += len(on_event(rule, view, state, ref))
    if mine:  # deadlines up to the last event (not beyond: nothing has been missed after the data ends)
        found += len(rule.kind.on_watermark(rule, max(v.ts for v in mine), state))
    return len(mine), time.perf_counter() - started, found


def flow_seconds(data: Path, rules: Path) -> tuple[int, float]:
    """The whole flow (Bytewax, DuckDB) over the bank's streams with a pack: (events, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = [("transactions", data / "transactions.parquet"), ("sensors", data / "sensors.parquet")]
        started = time.perf_counter()
        result = app.run_flow(FileSource(files), data, Path(tmp) / "flow.duckdb", rules=rules)
        return result.stats.events, time.perf_counter() - started


def hand_written_co001(views) -> tuple[float, int]:
    """CO-001 as a programmer would write it: no rule language at all."""
    txs = [v for v in views if type(v) is TxView]
    started, found = time.perf_counter(), 0
    for v in txs:
        if v.direction == "out" and v.funded_by_loan and v.channel == "cash" and v.amount >= 50000:
            found += 1
    return time.perf_counter() - started, found


def main() -> None:
    args = bank_arguments(__doc__, skip_flow=True)
    data = simulated(args.seed, args.borrowers, args.days)
    ref, pack = load_reference(data), load_pack(app.DEFAULT_RULES)
    batches, views, prep_seconds = enriched(data, ref, pack)
    n_tx = sum(type(v) is TxView for v in views)
    print(f"{len(views):,} events ({n_tx:,} transactions) decoded, enriched and traced in {prep_seconds:.1f}s "
          f"({prep_seconds / len(views) * 1e6:.1f} µs/event)")

    pack_seconds = time_pack(pack, batches, ref)
    print(f"default pack ({len(pack.rules)} rules): {len(views) / pack_seconds:,.0f} events/s in detection "
          f"({pack_seconds / len(views) * 1e6:.1f} µs/event)")

    per_rule, per_kind = {}, defaultdict(float)
    for rule in pack.rules:
        if rule.stream not in ("transactions", "sensors"):
            continue  # graph rules run on reference records and alerts, timed in benchmarks/graph.py
        events, seconds, found = time_rule(rule, views, ref)
        us = seconds / events * 1e6 if events else 0.0
        per_rule[rule.id] = {"kind": rule.spec.kind, "stream": rule.stream, "events": events,
                             "us_per_event": round(us, 3), "findings": found}
        per_kind[rule.spec.kind] += us
    print(f"{'rule':8} {'kind':10} {'µs/event':>9} {'findings':>9}")
    for rid, r in sorted(per_rule.items(), key=lambda kv: -kv[1]["us_per_event"]):
        print(f"{rid:8} {r['kind']:10} {r['us_per_event']:9.3f} {r['findings']:9,}")
    kinds = {k: {"rules": sum(1 for r in per_rule.values() if r["kind"] == k),
                 "us_per_event_all_rules": round(v, 3),
                 "us_per_event_per_rule": round(v / sum(1 for r in per_rule.values() if r["kind"] == k), 3)}
             for k, v in per_kind.items()}
    for k, v in kinds.items():
        print(f"kind {k:10} {v['rules']} rule(s): {v['us_per_event_per_rule']:.3f} µs/event per rule")

    hand_seconds, hand_found = hand_written_co001(views)
    co = per_rule["CO-001"]
    hand_us = hand_seconds / n_tx * 1e6
    print(f"CO-001 compiled {co['us_per_event']:.3f} µs/event vs hand-written {hand_us:.3f} µs/event "
          f"(ratio {co['us_per_event'] / hand_us:.1f}); findings {co['findings']} vs {hand_found}")

    report = {
        "benchmark": "rules",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days, "events": len(views),
                 "transactions": n_tx},
        "prepare_us_per_event": round(prep_seconds / len(views) * 1e6, 3),
        "default_pack": {"rules": len(pack.rules), "detect_events_per_second": round(len(views) / pack_seconds),
                         "detect_us_per_event": round(pack_seconds / len(views) * 1e6, 3)},
        "per_rule": per_rule,
        "per_kind": kinds,
        "co001_compiled_vs_hand_written": {"compiled_us": co["us_per_event"], "hand_us": round(hand_us, 3),
                                           "ratio": round(co["us_per_event"] / hand_us, 2),
                                           "same_findings": co["findings"] == hand_found},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
    }
    if not args.skip_flow:
        events, seconds = flow_seconds(data, app.DEFAULT_RULES)
        report["flow_default_pack"] = {"events": events, "seconds": round(seconds, 2),
                                       "events_per_second": round(events / seconds)}
        print(f"whole flow, default pack: {events:,} events in {seconds:.1f}s = {events / seconds:,.0f} events/s")
    write_report("rules", report)


if __name__ == "__main__":
    main()
