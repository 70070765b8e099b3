"""Replay throughput: the fundwatch flow vs a plain Python loop doing the same three checks.

    python benchmarks/replay.py [--borrowers 2000] [--days 90] [--seed 7]

Simulates the bank once (cached under benchmarks/.data) and replays its
transaction file (1.3M rows at the defaults) three ways in the same run:
- the flow with a pack of just the three skeleton rules (PV-001, LO-001,
  CO-001): decode, validate, enrich, fund tracing, rules, DuckDB store;
- one hand-written loop over the same Parquet file doing those three checks
  (no validation, no tracing, no store): the simplest honest alternative;
- the flow with the whole default pack, for the cost of everything else.
The three-rule flow and the loop must raise the same number of alerts.
Prints events per second and writes benchmarks/results/replay.json.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.files import FileSource  # noqa: E402
from benchmarks.data import bank_arguments, simulated, write_report  # noqa: E402
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
        unknown = payee not in loan["contracted_payees"] and payee not in known.get(loan["borrower_id"], ())
        own = payee == loan["borrower_id"]  # drawing a self-payment loan to the borrower's own account
        if row["amount"] / loan["principal"] >= 0.3 and unknown and not own and parties[payee]["kind"] != "bank":
            alerts += 1
        if row["channel"] == "cash" and row["amount"] >= 50_000:
            alerts += 1
    return events, alerts, time.perf_counter() - started


def main() -> None:
    args = bank_arguments(__doc__)

    t = time.perf_counter()
    data = simulated(args.seed, args.borrowers, args.days)
    print(f"simulated bank ready in {time.perf_counter() - t:.1f}s: {data.name}")

    with tempfile.TemporaryDirectory() as tmp:
        three = three_rule_pack(Path(tmp))
        flow3 = replay(data, Path(tmp) / "three.duckdb", three)
        events, base_alerts, base_seconds = baseline(data)
        full = replay(data, Path(tmp) / "full.duckdb", app.DEFAULT_RULES)

    base = {"events": events, "seconds": round(base_seconds, 3), "events_per_second": round(events / base_seconds),
            "alerts": base_alerts, "includes": "reference load, Parquet rows, the 3 checks inline"}
    report = {
        "benchmark": "replay",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days, "transactions": events},
        "flow_three_rules": flow3,
        "baseline_loop": base,
        "flow_default_pack": full,
        "three_rule_flow_to_baseline_ratio": round(flow3["events_per_second"] / base["events_per_second"], 3),
        "default_pack_flow_to_baseline_ratio": round(full["events_per_second"] / base["events_per_second"], 3),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
    }
    write_report("replay", report)
    for name in ("flow_three_rules", "baseline_loop", "flow_default_pack"):
        r = report[name]
        print(f"{name:18} {r['events']:,} events in {r['seconds']:.1f}s = {r['events_per_second']:,} events/s, "
              f"{r['alerts']:,} alerts")
    print(f"ratio to the loop: three rules {report['three_rule_flow_to_baseline_ratio']:.3f}, "
          f"default pack {report['default_pack_flow_to_baseline_ratio']:.3f}; wrote {out.relative_to(ROOT)}")
    if flow3["alerts"] != base_alerts:
        raise SystemExit(f"the three-rule flow raised {flow3['alerts']} alerts, the loop {base_alerts}: not the same checks")


def three_rule_pack(tmp: Path) -> Path:
    """The default pack cut down to the skeleton's three rules (same lists and test bank)."""
    pack = tmp / "rules" / "three"
    shutil.copytree(app.DEFAULT_RULES.parent / "lists", tmp / "rules" / "lists")
    shutil.copytree(app.DEFAULT_RULES.parent / "filters", tmp / "rules" / "filters")
    shutil.copytree(app.DEFAULT_RULES / "testdata", pack / "testdata")
    for name in ("pack.yaml", "PV-001.yaml", "LO-001.yaml", "CO-001.yaml"):
        shutil.copy(app.DEFAULT_RULES / name, pack / name)
    return pack


def replay(data: Path, db: Path, rules: Path) -> dict:
    started = time.perf_counter()
    result = app.run_flow(FileSource([("transactions", data / "transactions.parquet")]), data, db, rules)
    seconds = time.perf_counter() - started
    return {
        "events": result.stats.events, "seconds": round(seconds, 3), "events_per_second": round(result.stats.events / seconds),
        "alerts": sum(result.stats.by_rule.values()), "rules": len(result.pack.rules), "dead_letters": result.stats.dead_new,
        "includes": "reference load, pack compile, decode+validate, enrich, fund tracing, rules, DuckDB writes",
    }


if __name__ == "__main__":
    main()
