"""Screen, validate, then move clocks: a message dated 2100-01-01, whether it is
rejected for something else (an unknown account, a negative amount, oversized)
or valid (then it is a `future:` dead letter), never makes the good events
after it late, neither in the running daemon nor after a restart."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from connectors.alert_store import AlertStore
from engine.batch import Raw
from engine.context import enrich_batch
from engine.decode import decode
from engine.lateness import Lateness
from tests import daemon_kit as kit
from tests import tinybank
from tests.test_tracing import reference

FAR = "2100-01-01T00:00:00Z"


def _poison(i: int) -> list[bytes]:
    bad = {"id": f"poison-{i}", "ts": FAR, "from_account": "D1", "to_account": "CASH", "amount": 60000,
           "channel": "cash"}
    return [msgspec.json.encode({**bad, "from_account": "NOPE"}),  # unknown account
            msgspec.json.encode({**bad, "amount": -1}),  # invalid
            msgspec.json.encode({**bad, "memo": "x" * 5000}),  # oversized
            msgspec.json.encode(bad)]  # valid, but dated in the future


def test_a_rejected_far_future_event_moves_no_clock():
    ref = reference()
    clock = Lateness(timedelta(0), timedelta(hours=1))  # nothing may lag at all
    good = tinybank.tx("ok", 1, "D1", "A-S1", 100)
    raws = [Raw("transactions", "t", f"0:{i}", v) for i, v in enumerate(_poison(0)[:2])]
    raws.append(Raw("transactions", "t", "0:9", msgspec.json.encode(good)))
    out = enrich_batch(decode(raws), ref, clock)
    assert [v.id for v in out.items] == ["ok"] and len(out.dead) == 2
    assert clock.newest == {"t#0": good.ts}
    late = tinybank.tx("older", 0.5, "D1", "A-S1", 100)
    out = enrich_batch(decode([Raw("transactions", "t", "0:10", msgspec.json.encode(late))]), ref, clock)
    assert out.dead[0].reason.startswith("late: ") and clock.newest == {"t#0": good.ts}


def test_a_valid_event_dated_in_the_future_is_a_dead_letter_and_moves_no_clock():
    ref, clock = reference(), Lateness(timedelta(minutes=10), timedelta(hours=1))
    now = tinybank.T0 + timedelta(days=2)  # the wall clock
    good = tinybank.tx("ok", 1, "D1", "A-S1", 100)
    raws = [Raw("transactions", "t", "0:1", _poison(0)[3]), Raw("transactions", "t", "0:2", msgspec.json.encode(good))]
    out = enrich_batch(decode(raws), ref, clock, now)
    assert [v.id for v in out.items] == ["ok"]
    assert out.dead[0].reason == "future: 27021 days, 15:00:00 ahead of the present (allowed 1:00:00)"
    assert clock.newest == {"t#0": good.ts}
    # in a replay (no wall clock) the present is how far the partition has got
    out = enrich_batch(decode([Raw("transactions", "t", "0:3", _poison(1)[3])]), ref, clock)
    assert "ahead of the newest event of its partition" in out.dead[0].reason and clock.newest == {"t#0": good.ts}


def test_far_future_dead_letters_lose_no_good_event_before_and_after_a_restart(broker, topics, tmp_path):
    t = topics()
    b = kit.bank(10)
    good = kit.traffic(b, 60, seed=21)
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, good, tmp_path, rules)
    kit.produce_reference(broker.bootstrap, t, b)
    half = len(good) // 2
    first = [(None, msgspec.json.encode(e)) for e in good[:half]]
    second = [(None, msgspec.json.encode(e)) for e in good[half:]]
    poison = [(None, v) for i in range(3) for v in _poison(i)]  # 4 a round

    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules,
                        extra='max_message_bytes = 4096\n[dead_letters]\npayload = "mask"')
    try:
        daemon.start()
        kit.produce(broker.bootstrap, t["transactions"], first[:10] + poison[:4] + first[10:])
        daemon.wait_until(lambda: daemon.metric("fundwatch_events_in_total") >= half + 4, 60, "first half")
        assert daemon.terminate() == 0
        daemon.start()  # the restart resumes the partition's clock from the snapshot
        kit.produce(broker.bootstrap, t["transactions"], poison[4:] + second)
        dead = kit.read_topic(broker.bootstrap, t["dead_letters"], at_least=len(poison), timeout=60)
        kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(kit.published(expected)))
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    letters = [msgspec.json.decode(m.value()) for m in dead]
    assert sorted(d["reason"].split(":")[0] for d in letters) == ["future"] * 3 + ["invalid"] * 6 + ["oversized"] * 3
    assert kit.stored_alerts(daemon.db) == expected
    # masked by configuration, on the topic and in the store: the event's id and time, no accounts or amounts
    store = AlertStore(daemon.db, read_only=True)
    try:
        stored = [d["payload"] for d in store.dead_letters()]
    finally:
        store.close()
    for payload in [d["payload"] for d in letters] + stored:
        assert "NOPE" not in payload and "60000" not in payload and "D1" not in payload, payload
    whole = [msgspec.json.decode(p) for p in stored if not p.startswith("***")]  # oversized ones were cut
    assert len(whole) == 9 and {d["ts"] for d in whole} == {FAR}
