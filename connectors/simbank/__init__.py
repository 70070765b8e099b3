"""The simulated bank: reference data, payment and sensor streams with labelled risk cases.

    from connectors.simbank import simulate
    summary = simulate(seed=7, borrowers=2000, days=90, out=Path("data/sim"))

writes parties, accounts, loans, relations, transactions, sensors and labels
as Parquet (README.md in this folder describes the bank: who is in it, what
normal business looks like and at what rates, and the injected cases) (columns = the fields of the engine.records Structs) plus
manifest.json.  Same arguments, same bytes: all randomness comes from
`numpy.random.Generator(PCG64)` streams spawned from the seed, one per
component, so a change in one component does not reshuffle the others.

Pipeline (each step in its own module):
  calendar / horizon      days, public holidays, local time
  reference.build_world   the normal bank: parties, accounts, loans, relations, sites, business intensity
  cases.plan              who gets which injected case; flags normal traffic obeys
  normal.*                disbursements, loan use, repayments, the borrowers' and counterparties' business
  fund_cases / sensor_cases / network_cases   the injected events and their labels
  writer                  ids, typed frames, Parquet, manifest
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from . import cases, fund_cases, network_cases, normal, sensor_cases, writer
from .events import TxBuffer
from .horizon import Horizon
from .reference import build_world
from .sensors import SensorGrid

STEPS = 8  # stages simulate() reports through `step`
MIN_DAYS = 60  # idle funds need 45+ quiet days after a disbursement in the first third
__all__ = ["SimSummary", "simulate", "simulate_frames", "MIN_DAYS", "STEPS"]


@dataclass(frozen=True)
class SimSummary:
    out: Path | None
    seed: int
    borrowers: int
    days: int
    start: date
    rows: dict[str, int]
    labels: dict[str, int]  # per pattern


def simulate_frames(seed: int, borrowers: int, days: int, start: date = date(2026, 1, 1),
                    step: Callable[[], None] = lambda: None) -> dict[str, pl.DataFrame]:
    """All seven tables as DataFrames, without writing anything; `step()` is called
    after each of the STEPS stages (progress)."""
    if days < MIN_DAYS or borrowers < 1:
        raise ValueError(f"need days >= {MIN_DAYS} and borrowers >= 1 (got days={days}, borrowers={borrowers})")
    streams = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(10)]
    r_world, r_plan, r_funds, r_use, r_bus, r_cps, r_sensors, r_scases, r_ids, r_repay = streams
    h = Horizon(start, days)
    w = build_world(r_world, borrowers, h)
    plan = cases.plan(w, r_plan)
    buf = TxBuffer()
    disb = normal.disbursements(w, buf)
    step()
    labels, spent, first_of = fund_cases.emit(w, r_funds, plan, buf, disb)
    normal.loan_use(w, r_use, buf, spent)
    step()
    rep = normal.repayments(w, r_repay, buf, w.repay_skip)
    labels += cases.missed_labels(w, plan, rep, disb)
    step()
    normal.business(w, r_bus, buf)
    step()
    normal.counterparties(w, r_cps, buf)
    step()
    grid = SensorGrid(w, r_sensors)
    labels += sensor_cases.apply(w, r_scases, plan, grid)
    labels += network_cases.labels(w, plan, first_of)
    step()
    frames = writer.frames(w, buf, grid, labels, r_ids)
    step()
    return frames


def simulate(seed: int, borrowers: int, days: int, out: Path, start: date = date(2026, 1, 1),
             step: Callable[[], None] = lambda: None) -> SimSummary:
    """Simulate and write the Parquet files and manifest.json into `out` (STEPS calls of `step`)."""
    out = Path(out)
    dfs = simulate_frames(seed, borrowers, days, start, step)
    rows = {name: dfs[name].height for name in writer.FILES}
    per_pattern = dict(sorted(Counter(dfs["labels"]["pattern"].to_list()).items()))
    writer.write(out, dfs, {"generator": "fundwatch.connectors.simbank", "format": 1, "seed": seed,
                            "borrowers": borrowers, "days": days, "start": start.isoformat(), "rows": rows,
                            "labels": per_pattern})
    step()
    return SimSummary(out, seed, borrowers, days, start, rows, per_pattern)
