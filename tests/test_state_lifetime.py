"""Every piece of per-key detection state has a lifetime: once its key has been
quiet longer than the longest window that can use it, the watermark's daily
sweep drops it; what is left is counted per rule. Also the compact form of the
activity hours and the state of a rule version no longer in the pack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec

from engine.batch import Raw
from engine.detect import Detector
from engine.rules.kinds import ACTIVITY_MEMORY, BASELINE_MEMORY
from engine.rules.pack import load_pack
from tests import tinybank
from tests.test_event_time import PACK, Flow
from tests.tinybank import tx


def _heartbeats(flow: Flow, days: range) -> None:
    """Readings of B1's site gateway G1 (the silent-site rule's activity) on these days."""
    for d in days:
        reading = {"id": f"hb-{d}", "ts": (tinybank.T0 + timedelta(days=d)).isoformat(), "site_id": "SITE1",
                   "borrower_id": "B1", "kind": "heartbeat", "value": 1, "unit": "beat", "gateway_id": "G1"}
        flow.feed([Raw("sensors", "topic", f"0:{d}", msgspec.json.encode(reading))])


def _kept(flow: Flow) -> dict[str, int]:
    total: dict[str, int] = {}
    for state in flow.states.values():
        for rule, n in state.get("_entries", {}).items():
            total[rule] = total.get(rule, 0) + n
    return {r: n for r, n in total.items() if n}


def _quiet_for(flow: Flow, days: float, step: float = 5) -> None:
    """Someone else's payments and readings move event time on, `step` days at a time."""
    start = max((ts for s in flow.states.values() if "_progress" in s for ts in s["_progress"].newest.values()),
                default=None)
    first = (start - tinybank.T0).total_seconds() / 86400 if start else 0
    d = first
    while d < first + days:
        d += step
        flow.send("0", tx(f"other-{d}", d, "A-S2", "A-N1", 5_000))
        reading = {"id": f"other-hb-{d}", "ts": (tinybank.T0 + timedelta(days=d)).isoformat(), "site_id": "SITE2",
                   "borrower_id": "S2", "kind": "heartbeat", "value": 1, "unit": "beat", "gateway_id": "G2"}
        flow.feed([Raw("sensors", "topic", f"0:other-{d}", msgspec.json.encode(reading))])


def test_state_of_a_quiet_borrower_expires_and_the_count_falls_to_nothing():
    flow = Flow()
    flow.send("0", *[t for t, _ in tinybank.CASES[:-1]])  # disbursement, payments, cash: windows, timers, slots
    _heartbeats(flow, range(0, 9))
    _quiet_for(flow, 3, step=1)
    busy = _kept(flow)
    assert {"ID-001", "MR-002", "SS-001"} <= busy.keys(), busy  # timers and activity hours
    longest = max(ACTIVITY_MEMORY, BASELINE_MEMORY) + max(
        (r.kind.within for r in PACK.rules if hasattr(r.kind, "within")), default=timedelta(0))
    _quiet_for(flow, longest.days + 10, step=10)
    left = _kept(flow)
    assert sum(left.values()) < sum(busy.values()), left  # only what the ongoing payments keep
    kept = repr([{k: v for k, v in s.items() if not k.startswith("_")} for s in flow.states.values()])
    assert "B1" not in kept and "L1" not in kept and "G1" not in kept and "t-" not in kept
    suppress = [s.get("_suppress", {}) for s in flow.states.values()]
    assert not any(suppress)


def test_activity_hours_are_kept_compactly_and_only_for_the_activity_memory():
    flow = Flow()
    _heartbeats(flow, range(0, 80))
    (hours,) = [s[k]["active"]["G1"] for s in flow.states.values() for k in s if k.startswith("SS-001") and
                s[k].get("active", {}).get("G1") is not None]
    assert hours.typecode == "i" and (hours[-1] - hours[0]) * 3600 <= ACTIVITY_MEMORY.total_seconds()


def test_the_state_of_a_rule_version_no_longer_in_the_pack_goes():
    flow = Flow()
    flow.send("0", *[t for t, _ in tinybank.CASES[:3]])
    stale = {k for s in flow.states.values() for k in s if not k.startswith("_")}
    assert stale
    for state in flow.states.values():  # as if every rule had been at an older version before
        for key in [k for k in state if not k.startswith("_")]:
            state[key.replace("@", "@old")] = state.pop(key)
    newer = load_pack(Path(__file__).resolve().parents[1] / "rules" / "post_loan")
    flow.detector = Detector(lambda: newer, flow.detector.clock, flow.ref, flow.timing)
    _quiet_for(flow, 3)
    assert not any("@old" in k for s in flow.states.values() for k in s)
