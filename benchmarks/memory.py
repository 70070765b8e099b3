"""A year of traffic at constant load: resident memory and detection state stay flat.

    python benchmarks/memory.py [--borrowers 300] [--days 365] [--no-expiry]

Builds a year of a bank whose customers come and go at a constant rate:
every 60 days a new cohort of `--borrowers` borrowers (a simulated bank of
its own, ids prefixed with its cohort) takes its loans and is active for 120
days, then goes quiet, so after day 60 two cohorts are always active and the
load is constant while the keys change. Cached under benchmarks/.data. Streams
the event files in record batches and runs the engine's stages on them in
event-time order, the way one worker of the flow does: decode, enrich, fund
tracing, detection with the whole default pack over 64 shards. Every 30 simulated days it records the process's resident memory and
the state entries kept per rule. The figure that matters is the resident
memory at day 360 against day 90 (the state needs the first months to fill its
windows), beside the size of the state itself (pickled detection and tracing
state), which a process of a few hundred MB hides. `--no-expiry` runs the same without the state lifetimes, the
simplest alternative, for the ratio. Prints a table and writes
benchmarks/results/memory.json (or memory-no-expiry.json).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import pickle
import shutil
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.files import read_raw, stream_files  # noqa: E402
from connectors.reference_files import load_reference  # noqa: E402
from engine.batch import quiet  # noqa: E402
from engine.context import enrich_batch, trace_batch  # noqa: E402
from engine.decode import decode  # noqa: E402
from engine.pipeline import Pipeline  # noqa: E402
from engine.rules import kinds  # noqa: E402
from engine.rules.pack import load_pack  # noqa: E402

EVERY_DAYS = 30


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


COHORT_EVERY, COHORT_DAYS = 60, 120
ID_COLUMNS = {
    "parties": ("id", "legal_rep", "address", "phone"), "accounts": ("id", "party_id"),
    "loans": ("id", "borrower_id", "disbursement_account"), "relations": ("id", "src", "dst"),
    "transactions": ("id", "from_account", "to_account", "loan_id"), "sensors": ("id", "site_id", "borrower_id"),
}


def cohorts(seed: int, borrowers: int, days: int) -> Path:
    """A bank of cohorts (see the module docstring): reference files and one event file per cohort."""
    from connectors.simbank import simulate

    out = ROOT / "benchmarks" / ".data" / f"cohorts-s{seed}-b{borrowers}-d{days}"
    if (out / "parties.parquet").exists():
        return out
    out.mkdir(parents=True)
    first = date(2026, 1, 1)
    reference: dict[str, list[pl.DataFrame]] = {k: [] for k in ("parties", "accounts", "loans", "relations")}
    for k, begins in enumerate(range(0, days, COHORT_EVERY)):
        tag = f"c{k}-"
        sim = out / f"sim-{k}"
        simulate(seed + k, borrowers, COHORT_DAYS, sim, start=first + timedelta(days=begins))
        for name, cols in ID_COLUMNS.items():
            df = pl.read_parquet(sim / f"{name}.parquet").with_columns(
                *[(pl.lit(tag) + pl.col(c)).alias(c) for c in cols])
            if name == "loans":
                df = df.with_columns(
                    *[pl.col(c).list.eval(pl.lit(tag) + pl.element()) for c in ("contracted_payees", "guarantors")],
                    pl.col("collateral").list.eval(pl.element().struct.with_fields(
                        site_id=pl.lit(tag) + pl.field("site_id"))))
            if name in reference:
                reference[name].append(df)
            else:  # the year ends at `days`
                end = datetime.combine(first + timedelta(days=days), datetime.min.time(), timezone.utc)
                df.filter(pl.col("ts") < end).write_parquet(out / f"{name}-{k}.parquet")
        shutil.rmtree(sim)
    for name, frames in reference.items():
        pl.concat(frames, how="diagonal_relaxed").write_parquet(out / f"{name}.parquet")
    return out


def batches_in_time_order(data: Path):
    """Every event file's batches, streamed and merged by each batch's first event time.
    Each file is an input partition of its own, as in a replay, and says it went quiet
    at its end, so a cohort whose file ended does not hold the watermark back."""
    import msgspec

    def keyed(n: int, stream: str, path: Path):
        ts = ""
        for b in read_raw(stream, path):
            ts = msgspec.json.decode(b[0].payload)["ts"]
            yield ts, n, b
        yield ts, n, [quiet(stream, str(path))]

    files = [keyed(n, stream, path) for n, (stream, path) in enumerate(stream_files(data))
             if stream in ("transactions", "sensors")]
    for _, _, batch in heapq.merge(*files, key=lambda x: x[:2]):
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--borrowers", type=int, default=150, help="per cohort")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-expiry", action="store_true", help="keep all per-key state (the old behaviour)")
    args = parser.parse_args()
    if args.no_expiry:
        for kind in (kinds.Kind, kinds.AggregateKind, kinds.AbsenceKind, kinds.BaselineKind):
            kind.expire = lambda self, watermark, state: None

    data = cohorts(args.seed, args.borrowers, args.days)
    ref = load_reference(data)
    pack = load_pack(ROOT / "rules" / "post_loan")
    pipeline = Pipeline(pack, ref, clock=lambda: datetime(2027, 6, 1, tzinfo=timezone.utc))
    tracer, states = pipeline.tracer, pipeline.states
    start = None
    rows, events, started = [], 0, time.perf_counter()
    for raws in batches_in_time_order(data):
        batch = trace_batch(enrich_batch(decode(raws), ref, pipeline.lateness), tracer, ref)
        events += len(raws)
        pipeline.detect(batch)
        if batch.dead:  # the bank's own files hold nothing to refuse
            raise SystemExit(f"{len(batch.dead)} dead letters, the first: {batch.dead[0].reason}")
        if not batch.items:
            continue
        now = batch.items[-1].ts
        start = start or now
        day = (now - start).days
        if day >= EVERY_DAYS * (len(rows) + 1):
            gc.collect()
            entries: dict[str, int] = {}
            for state in states.values():
                for rule, n in state.get("_entries", {}).items():
                    entries[rule] = entries.get(rule, 0) + n
            rows.append({"day": day, "events": events, "rss_mb": round(rss_mb(), 1),
                         "state_mb": round(len(pickle.dumps((states, tracer), protocol=5)) / 1e6, 2),
                         "state_entries": sum(entries.values()), "tracer_accounts": len(tracer.parts),
                         "top_rules": dict(sorted(entries.items(), key=lambda kv: -kv[1])[:4])})
            r = rows[-1]
            print(f"day {r['day']:3d}  events {r['events']:>9,}  rss {r['rss_mb']:7.1f} MB  state {r['state_mb']:6.2f} MB  "
                  f"state entries {r['state_entries']:>8,}  traced accounts {r['tracer_accounts']:>6,}", flush=True)
    at = {r["day"] // EVERY_DAYS * EVERY_DAYS: r for r in rows}
    d90, d360 = at.get(90), at.get(360)
    ratio = round(d360["rss_mb"] / d90["rss_mb"], 3) if d90 and d360 else None
    state_ratio = round(d360["state_mb"] / d90["state_mb"], 3) if d90 and d360 else None
    print(f"day 360 / day 90: rss {ratio}, state {state_ratio}  ({events:,} events in "
          f"{time.perf_counter() - started:.0f} s)")
    out = ROOT / "benchmarks" / "results" / ("memory-no-expiry.json" if args.no_expiry else "memory.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"benchmark": "memory", "expiry": not args.no_expiry,
                               "data": {"seed": args.seed, "borrowers_per_cohort": args.borrowers,
                                        "cohort_every_days": COHORT_EVERY, "cohort_days": COHORT_DAYS,
                                        "days": args.days, "events": events},
                               "rss_360_over_90": ratio, "state_360_over_90": state_ratio, "samples": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
