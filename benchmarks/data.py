"""The simulated banks the benchmarks run on, cached under benchmarks/.data.

A cache entry is named after the arguments and a digest of the simulator's
source, so a changed simulator never serves a benchmark yesterday's bank."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIMBANK = ROOT / "connectors" / "simbank"


def simulated(seed: int, borrowers: int, days: int) -> Path:
    from connectors.simbank import simulate

    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(SIMBANK.glob("*.py")))).hexdigest()[:10]
    data = ROOT / "benchmarks" / ".data" / f"s{seed}-b{borrowers}-d{days}-{digest}"
    if not (data / "manifest.json").exists():
        simulate(seed, borrowers, days, data)
    return data


def bank_arguments(doc: str, skip_flow: bool = False) -> argparse.Namespace:
    """The options of a benchmark over a simulated bank: --seed, --borrowers, --days (and
    --skip-flow for those that also time the whole flow)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--borrowers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    if skip_flow:
        parser.add_argument("--skip-flow", action="store_true")
    return parser.parse_args()


def write_report(name: str, report: dict) -> Path:
    """benchmarks/results/NAME.json, and a line saying so."""
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return out
