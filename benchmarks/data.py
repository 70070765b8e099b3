"""The simulated banks the benchmarks run on, cached under benchmarks/.data.

A cache entry is named after the arguments and a digest of the simulator's
source, so a changed simulator never serves a benchmark yesterday's bank."""

from __future__ import annotations

import argparse
import hashlib
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
