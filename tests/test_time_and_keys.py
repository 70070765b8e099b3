"""Event time and rule keys on hand-built cases: a late event in a sliding
window, a baseline fed out of order, future and far-past events in a replay
file, a quiet or retired partition, the bank's calendar near midnight, and
reference data as of event time."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.batch import Raw, quiet, roster
from engine.context import enrich
from engine.records import Party, Relation
from engine.rules import source
from engine.rules.compiler import compile_rule
from engine.rules.pack import load_pack
from engine.timing import Timing
from tests import tinybank
from tests.test_event_time import Flow
from tests.test_rule_language import RULE
from tests.tinybank import T0, tx

HOUR = timedelta(hours=1)


def _split(hours: list[float], amount: float = 48_000) -> list:
    """Loan-funded transfers just under the reporting threshold, to a new trading firm."""
    return [tx(f"s{h:g}", h / 24, "D1", "A-N1", amount) for h in hours]


def _alerts(flow: Flow, txs: list, rule: str) -> list:
    out = []
    for t in txs:
        out += flow.send("0", t)
    return [a for a in out + flow.end() if a.rule_id == rule]


def test_a_late_event_is_placed_in_its_own_time_and_never_widens_a_window():
    wide = _split([0, 6, 12, 18, 25])  # five over 25 hours: not five in a day
    late_first = Timing(lateness=timedelta(days=2), future=timedelta(days=3650))
    assert _alerts(Flow(late_first), wide, "SP-001") == []
    assert _alerts(Flow(late_first), wide[1:] + wide[:1], "SP-001") == []  # the earliest arrives last
    close = _split([0, 5, 10, 15, 20])
    in_order = _alerts(Flow(late_first), close, "SP-001")
    shuffled = _alerts(Flow(late_first), close[2:] + close[:2], "SP-001")
    assert len(in_order) == 1 and [a.id for a in shuffled] == [a.id for a in in_order]
    assert shuffled[0].evidence.event_ids == [t.id for t in close] and shuffled[0].event_time == close[-1].ts


def _reading(day: float, value: float, kind: str = "headcount") -> Raw:
    reading = {"id": f"h{day:g}", "ts": (T0 + timedelta(days=day)).isoformat(), "site_id": "SITE1",
               "borrower_id": "B1", "kind": kind, "value": value, "unit": "persons", "gateway_id": "G1"}
    return Raw("sensors", "gate", f"0:{day:g}", msgspec.json.encode(reading))


def test_a_baseline_fed_out_of_order_gives_the_same_alerts():
    days = [d for d in range(0, 35) if (T0 + timedelta(days=d)).weekday() < 5]
    readings = [_reading(d, 120 if d < 28 else 40) for d in days]  # half the staff gone in the fifth week
    timing = Timing(lateness=timedelta(days=3), future=timedelta(days=3650))

    def run(order: list[Raw]) -> list:
        flow = Flow(timing)
        out = [a for r in order for a in flow.feed([r])]
        return [a for a in out + flow.end() if a.rule_id == "HC-001"]

    expected = run(readings)
    assert len(expected) == 1
    rng = random.Random(7)
    for _ in range(5):  # neighbours swapped at random: each reading at most two days off its place
        order = readings[:]
        for i in rng.sample(range(len(order) - 1), 10):
            order[i], order[i + 1] = order[i + 1], order[i]
        got = run(order)
        assert [(a.id, a.event_time, a.evidence.event_ids) for a in got] == \
            [(a.id, a.event_time, a.evidence.event_ids) for a in expected]


def test_future_and_far_past_events_in_a_replay_file_are_dead_letters_and_change_no_alert(tmp_path):
    cases = [t for t, _ in tinybank.CASES]
    clean = tinybank.write(tmp_path / "clean", cases)
    app.run_flow(FileSource(stream_files(clean)), clean, tmp_path / "clean.duckdb")
    future = msgspec.structs.replace(tx("t-2100", 0, "D1", "CASH", 90_000, "cash"),
                                     ts=datetime(2100, 1, 1, tzinfo=timezone.utc))
    past = msgspec.structs.replace(tx("t-1990", 0, "D1", "CASH", 90_000, "cash"),
                                   ts=datetime(1990, 1, 1, tzinfo=timezone.utc))
    dirty = tinybank.write(tmp_path / "dirty", cases[:4] + [future, past] + cases[4:])
    app.run_flow(FileSource(stream_files(dirty)), dirty, tmp_path / "dirty.duckdb")

    def stored(db: Path) -> tuple[list, list]:
        store = AlertStore(db, read_only=True)
        try:
            return sorted(a["id"] for a in store.alerts()), [d["reason"] for d in store.dead_letters()]
        finally:
            store.close()

    clean_alerts, clean_dead = stored(tmp_path / "clean.duckdb")
    dirty_alerts, dirty_dead = stored(tmp_path / "dirty.duckdb")
    assert clean_dead == [] and dirty_alerts == clean_alerts
    assert sorted(r.split(":")[0] for r in dirty_dead) == ["future", "late"]


DISBURSE = tx("disb", 0, "LEDGER", "D1", 1_000_000, "disbursement", loan_id="L1")


def test_a_quiet_partition_stops_holding_the_deadlines_back():
    flow = Flow()
    flow.send("1", tx("other", 0, "A-S2", "A-N1", 5_000))  # partition 1 speaks once, then nothing
    flow.send("0", DISBURSE)
    assert "ID-001" not in [a.rule_id for a in flow.send("0", tx("later", 40, "A-S1", "A-B1", 5_000))]
    # its source says it went quiet (idle for the idle time): partition 0 alone sets the watermark
    assert [a.rule_id for a in flow.feed([quiet("transactions", "topic", "1")])] == ["ID-001"]
    # and it holds the stream back again as soon as it speaks
    flow.send("1", tx("again", 40.5, "A-S2", "A-N1", 5_000))
    assert ("transactions", "topic#1") not in flow.states["0"]["_progress"].quiet


def test_a_partition_retired_while_the_flow_was_down_is_forgotten():
    flow = Flow()
    flow.send("1", tx("other", 0, "A-S2", "A-N1", 5_000))
    flow.send("0", DISBURSE)
    flow.send("0", tx("later", 40, "A-S1", "A-B1", 5_000))
    # a restart: the sources name the partitions the stream has now, and partition 1 is gone
    alerts = flow.feed([roster("transactions", ["topic#0"])])
    assert [a.rule_id for a in alerts] == ["ID-001"]


def test_weekdays_days_and_business_hours_are_the_banks_near_midnight(tmp_path):
    path = tmp_path / "XX-001.yaml"
    path.write_text(RULE.format(detection="  monday: {ts|weekday: [mon]}\n  office: {ts|hours: [9, 18]}\n"
                                          "  condition: monday and not office"))
    rule = compile_rule(source.load(path), {}, ZoneInfo("Asia/Shanghai"))
    sunday_night_utc = datetime(2026, 1, 4, 16, 30, tzinfo=timezone.utc)  # Monday 00:30 in Shanghai
    view = msgspec.structs.replace(enrich(tx("x", 0, "A-B1", "A-S1", 10), Flow().ref), ts=sunday_night_utc)
    assert rule.in_scope(view)
    assert not rule.in_scope(msgspec.structs.replace(view, ts=sunday_night_utc + 9 * HOUR))  # 09:30: office hours
    # a tumbling day starts at the bank's midnight, and a baseline's weekday is the bank's
    days = compile_rule(source.load(_tumbling(tmp_path)), {}, ZoneInfo("Asia/Shanghai"))
    assert days.kind._window_start(sunday_night_utc) == datetime(2026, 1, 4, 16, 0, tzinfo=timezone.utc)
    hc = {r.id: r for r in load_pack(Path(__file__).resolve().parents[1] / "rules" / "post_loan").rules}["HC-001"]
    assert hc.kind.tz == ZoneInfo("Asia/Shanghai")


def _tumbling(tmp_path: Path) -> Path:
    path = tmp_path / "XX-002.yaml"
    path.write_text(RULE.replace("XX-001", "XX-002").replace("risk_score: 10", "risk_score: 10\nkind: aggregate")
                    .format(detection="  s: {amount|gte: 1}\n  condition: s")
                    + "aggregate:\n  key: borrower.id\n  window: {size: 1d, type: tumbling}\n"
                      "  measures: {n: {count: true}}\n  having: {n|gte: 3}\n")
    return path


def _guarantee(rid: str, src: str, dst: str, start: date, end: date | None = None) -> Relation:
    return Relation(id=rid, kind="guarantee", src=src, dst=dst, amount=100_000, valid_from=start, valid_to=end)


def _circle_flow(relations: list[Relation]) -> tuple[Flow, list]:
    """A replay's reference data holds every relation from the start; the relation events come in time order."""
    flow = Flow()
    flow.ref.add_all([Party(id=p, kind="firm", name=p, sector="wholesale", region="SH", registered_on=date(2015, 1, 1))
                      for p in ("G1", "G2")])
    flow.ref.add_all(relations)
    alerts = []
    for rel in sorted(relations, key=lambda r: r.valid_from):
        alerts += flow.feed([Raw("relations", "relations.parquet", f"row {rel.id}", msgspec.json.encode(rel))])
    return flow, [a for a in alerts + flow.end() if a.rule_id == "GC-001"]


def test_a_circle_alert_carries_the_day_the_circle_closed():
    _, alerts = _circle_flow([_guarantee("R1", "B1", "G1", date(2024, 3, 1)), _guarantee("R2", "G1", "G2", date(2024, 6, 1)),
                              _guarantee("R3", "G2", "B1", date(2026, 2, 10))])
    (alert,) = alerts
    assert alert.event_time == datetime(2026, 2, 10, tzinfo=timezone.utc)
    assert sorted(alert.evidence.event_ids) == ["R1", "R2", "R3"]


def test_an_ended_guarantee_leaves_the_graph():
    flow, alerts = _circle_flow([_guarantee("R1", "B1", "G1", date(2024, 3, 1), end=date(2025, 1, 1)),
                                 _guarantee("R2", "G1", "G2", date(2024, 6, 1)),
                                 _guarantee("R3", "G2", "B1", date(2026, 2, 10))])
    assert alerts == []  # R1 had ended before R3 could close the circle
    assert flow.ref.guarantees.cycle_through("G2", "B1", as_of=date(2024, 12, 1)) is not None  # R1 still in force
    assert flow.ref.guarantees.cycle_through("G2", "B1", as_of=date(2025, 6, 1)) is None
    assert flow.ref.remove_relation("R2") and "R2" not in flow.ref.guarantees.relations_on(["G1", "G2"])
