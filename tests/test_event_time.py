"""Event time across input partitions: a partition read ahead does not fire
deadlines that events still queued in a slower one could meet, and a start that
arrives after its expected event is already met."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec

from engine.batch import Raw
from engine.pipeline import Pipeline
from engine.rules.pack import load_pack
from engine.timing import Timing
from tests.test_tracing import reference
from tests.tinybank import tx

PACK = load_pack(Path(__file__).resolve().parents[1] / "rules" / "post_loan")


SPARSE = Timing(future=timedelta(days=3650))  # hand-built events weeks apart: none is "future"


class Flow(Pipeline):
    """The engine's stages in process over the tiny bank, one batch per call."""

    def __init__(self, timing: Timing = SPARSE):
        super().__init__(PACK, reference(), timing, clock=lambda: datetime(2026, 6, 1, tzinfo=timezone.utc))

    def send(self, partition: str, *txs, stream: str = "transactions") -> list:
        return self.feed([Raw(stream, "topic", f"{partition}:{i}", msgspec.json.encode(t)) for i, t in enumerate(txs)])


DISBURSE = tx("disb", 0, "LEDGER", "D1", 1_000_000, "disbursement", loan_id="L1")
SPEND = tx("spend", 10, "D1", "A-S1", 600_000)


def test_a_partition_read_ahead_does_not_fire_a_deadline_early():
    flow = Flow()
    assert flow.send("0", DISBURSE) == []
    # partition 1 is weeks ahead (someone else's payments); partition 0 has not reached day 10 yet
    assert [a.rule_id for a in flow.send("1", tx("other", 40, "A-S2", "A-N1", 5_000))] == []
    assert [a.rule_id for a in flow.send("0", SPEND)] == []  # the loan was used: ID-001 stays quiet
    late = flow.send("0", tx("later", 50, "A-S1", "A-B1", 5_000))
    assert "ID-001" not in [a.rule_id for a in late]


def test_without_the_slow_partition_the_deadline_fires():
    flow = Flow()
    flow.send("0", DISBURSE)
    alerts = flow.send("0", tx("later", 40, "A-S1", "A-B1", 5_000))
    assert [a.rule_id for a in alerts] == ["ID-001"]


def test_a_start_arriving_after_its_expected_event_is_already_met():
    flow = Flow()
    assert "EP-001" not in [a.rule_id for a in flow.send("1", SPEND)]  # the spend, read first
    flow.send("0", DISBURSE)  # its disbursement, from another partition, later
    flow.send("0", tx("later", 50, "A-S1", "A-B1", 5_000))
    flow.send("1", tx("later2", 50, "A-S1", "A-B1", 5_000))
    assert all(a.rule_id != "ID-001" for a in flow.send("0", tx("later3", 60, "A-S1", "A-B1", 5_000)))
