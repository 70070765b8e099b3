"""Replay throughput: the fundwatch flow vs a plain Python loop doing the same three checks.

    python benchmarks/replay.py [--borrowers 2000] [--days 90] [--seed 7]

Simulates the bank once (cached under benchmarks/.data), replays its
transaction file through the full flow (decode, validate, enrich, three YAML
rules, DuckDB store) and, in the same run, through one hand-written loop over
the same Parquet file that applies the same three checks. Prints events per
second for both and writes benchmarks/results/replay.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.files import FileSource  # noqa: E402
from connectors.simbank import simulate  # noqa: E402
from dataflows import app  # noqa: E402

PROHIBITED = {"real_estate", "securities", "futures", "crypto", "lending", "gambling"}


def baseline(data: Path) -> tuple[int, int, float]:
    """The simplest honest alternative: one loop, dict look-ups, the three checks inline."""
    started = time.perf_counter()
    party_of = dict(pl.read_parquet(data / "accounts.parquet").select("id", "party_id").iter_rows())
    parties = {r["id"]: r for r in pl.read_parquet(data / "parties.parquet").iter_rows(named=True)}
    loans = {r["disbursement_account"]: r for r in pl.read_parquet(data / "loans.parquet").iter_rows(named=True)}
    known: dict[str, set] = {}
    for r in pl.read_parquet(data / "relations.parquet").iter_rows(named=True):
        if r["kind"] != "guarantee":
            known.setdefault(r["src"], set()).add(r["dst"])
            known.setdefault(r["dst"], set()).add(r["src"])
    alerts = events = 0
    for row in pl.read_parquet(data / "transactions.parquet").iter_rows(named=True):
        events += 1
        loan = loans.get(row["from_account"])
        if loan is None or row["channel"] == "disbursement":
            continue
        payee = party_of[row["to_account"]]
        days = (row["ts"] - loan["disbursed_at"]).days
        if parties[payee]["sector"] in PROHIBITED and days <= 90 and not (
            loan["purpose"] == "mortgage" and payee in loan["contracted_payees"]
        ):
            alerts += 1
        if row["amount"] / loan["principal"] >= 0.3 and payee not in loan["contracted_payees"] and payee not in known.get(loan["borrower_id"], ()):
            alerts += 1
        if row["channel"] == "cash" and row["amount"] >= 50_000:
            alerts += 1
    return events, alerts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--borrowers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()

    data = ROOT / "benchmarks" / ".data" / f"s{args.seed}-b{args.borrowers}-d{args.days}"
    if not (data / "manifest.json").exists():
        t = time.perf_counter()
        simulate(args.seed, args.borrowers, args.days, data)
        print(f"simulated in {time.perf_counter() - t:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        result = app.run_flow(FileSource([("transactions", data / "transactions.parquet")]), data, db)
        flow_total = time.perf_counter() - started
    events, base_alerts, base_seconds = baseline(data)

    flow_eps = result.stats.events / flow_total
    base_eps = events / base_seconds
    report = {
        "benchmark": "replay",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days, "transactions": events},
        "flow": {
            "events": result.stats.events, "seconds": round(flow_total, 3), "events_per_second": round(flow_eps),
            "alerts": sum(result.stats.by_rule.values()), "dead_letters": result.stats.dead_new,
            "includes": "reference load, pack compile, decode+validate, enrich, 3 rules, DuckDB writes",
        },
        "baseline_loop": {
            "events": events, "seconds": round(base_seconds, 3), "events_per_second": round(base_eps),
            "alerts": base_alerts, "includes": "reference load, Parquet rows, the 3 checks inline, no validation or store",
        },
        "flow_to_baseline_ratio": round(flow_eps / base_eps, 3),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
    }
    out = ROOT / "benchmarks" / "results" / "replay.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"flow     {result.stats.events:,} events in {flow_total:.1f}s = {flow_eps:,.0f} events/s, "
          f"{report['flow']['alerts']:,} alerts")
    print(f"baseline {events:,} events in {base_seconds:.1f}s = {base_eps:,.0f} events/s, {base_alerts:,} alerts")
    print(f"ratio flow/baseline {report['flow_to_baseline_ratio']:.2f}; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
