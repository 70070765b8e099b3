"""Crashes with the whole default pack (windows, absence deadlines, baselines,
fund tracing, graph rules on the reference snapshot): a daemon killed with
SIGKILL at 40% of a backlog, then stopped with SIGTERM at 80%, stores exactly
the alerts of an uninterrupted run. The alerts topic gets nothing again after
the clean restart; after the kill -9 only what was confirmed since the last
snapshot can come again, with the same content."""

from __future__ import annotations

import msgspec

from connectors.files import read_raw
from connectors.simbank import simulate
from tests import daemon_kit as kit

ROOT = kit.ROOT
NO_REFERENCE_TOPICS = {k: "" for k in ("parties", "accounts", "loans", "relations")}


def _events(data) -> dict[str, list[bytes]]:
    return {stream: [raw.payload for batch in read_raw(stream, data / f"{stream}.parquet") for raw in batch]
            for stream in ("transactions", "sensors")}


def _offsets(daemon: kit.Daemon) -> list[dict]:
    return [e for e in daemon.log_lines() if e["event"] == "partition_assigned"]


def _start(daemon: kit.Daemon) -> int:
    """Start; once both partitions are assigned, how far the restart resumed (messages)."""
    before = len(_offsets(daemon)) if daemon.log.exists() else 0
    daemon.start()
    daemon.wait_until(lambda: len(_offsets(daemon)) >= before + 2, 60, "partitions assigned")
    return sum(e["offset"] for e in _offsets(daemon)[-2:] if isinstance(e["offset"], int))


def _run(tmp, bootstrap, topics, data, total, name, stops):
    """A daemon over the backlog; `stops`: (share of the backlog read, "kill" or "term") in order."""
    daemon = kit.Daemon(tmp, bootstrap, topics, ROOT / "rules" / "post_loan", snapshot=data, name=name,
                        extra="batch_size = 200")
    marks = []  # alerts-topic length after each stop
    try:
        resumed = _start(daemon)
        for share, how in stops:
            daemon.wait_until(lambda: resumed + daemon.metric("fundwatch_events_in_total") >= share * total,
                              120, f"{share:.0%} read")
            if how == "kill":
                daemon.kill()
            else:
                assert daemon.terminate() == 0
            marks.append(len(kit.read_topic(bootstrap, topics["alerts"], settle=0.5)))
            resumed = _start(daemon)
        daemon.wait_until(lambda: resumed + daemon.metric("fundwatch_events_in_total") >= total, 120, "all read")
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    return daemon, marks


def test_kill_9_and_sigterm_with_the_whole_pack_store_exactly_the_alerts_of_an_uninterrupted_run(
        broker, topics, tmp_path):
    data = tmp_path / "bank"
    simulate(7, 40, 60, data)
    first = topics(**NO_REFERENCE_TOPICS)
    second = {**first, **{k: v for k, v in topics(**NO_REFERENCE_TOPICS).items() if k in ("alerts", "dead_letters")}}
    events = _events(data)
    for stream, values in events.items():
        kit.produce(broker.bootstrap, first[stream], [(None, v) for v in values])
    total = sum(map(len, events.values()))

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole, _ = _run(tmp_path / "a", broker.bootstrap, first, data, total, "whole", [])
    expected = kit.stored_alerts(whole.db)
    rules = {a["rule_id"] for a in expected.values()}
    assert {"GC-001", "SS-001", "ID-001", "EL-001", "RT-001"} <= rules, rules  # graph, absence, baseline, tracing

    crashed, (after_kill, after_term) = _run(tmp_path / "b", broker.bootstrap, second, data, total, "crashed",
                                            [(0.4, "kill"), (0.8, "term")])
    assert kit.stored_alerts(crashed.db) == expected

    messages = [msgspec.json.decode(m.value()) for m in kit.read_topic(broker.bootstrap, second["alerts"])]
    assert {m["id"] for m in messages} == kit.published(expected)
    seen: dict[str, dict] = {}
    for n, m in enumerate(messages):
        content = {k: v for k, v in m.items() if k != "detected_at"}
        if m["id"] in seen:
            assert n < after_term, f"{m['id']} published again after the clean restart"
            assert content == seen[m["id"]], "a repeat with other content"
        seen.setdefault(m["id"], content)
    repeats = len(messages) - len(seen)
    assert repeats <= after_kill  # only alerts of the kill -9 phase can repeat
