"""Crash and restart: a daemon killed with SIGKILL mid-stream, then stopped with
SIGTERM mid-stream, resumes from its recovery snapshots; in the end the store
holds exactly the alerts of a file replay, once each, and the alerts topic
holds every published one (repeats possible, which consumers drop by id)."""

from __future__ import annotations

import threading
import time

import msgspec
from confluent_kafka import Producer

from tests import daemon_kit as kit


class PacedProducer(threading.Thread):
    """Produces `rate` events a second, in chunks, whatever happens to the daemon."""

    def __init__(self, bootstrap: str, topic: str, events: list, key, rate: int = 1000, chunk: int = 100,
                 hold_at: int | None = None):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.events, self.key = bootstrap, topic, events, key
        self.rate, self.chunk = rate, chunk
        self.hold_at = hold_at  # wait for `gate` before producing event number `hold_at`
        self.gate = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
            started = time.monotonic()
            for i in range(0, len(self.events), self.chunk):
                if self.hold_at is not None and i >= self.hold_at and not self.gate.is_set():
                    self.gate.wait()
                    started = time.monotonic() - i / self.rate
                for e in self.events[i:i + self.chunk]:
                    p.produce(self.topic, msgspec.json.encode(e), self.key(e).encode())
                assert p.flush(30) == 0
                time.sleep(max(0.0, started + (i + self.chunk) / self.rate - time.monotonic()))
        except BaseException as e:  # reported by the test
            self.error = e


def test_kill_9_and_sigterm_mid_stream_lose_and_duplicate_nothing(broker, topics, tmp_path):
    t = topics(partitions=2)
    b = kit.bank(40)
    txs = kit.traffic(b, 200, seed=3)  # 8,040 events
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, txs, tmp_path, rules)
    published = kit.published(expected)
    kit.produce_reference(broker.bootstrap, t, b)
    hold = len(txs) * 7 // 10  # the last 30% wait until the SIGTERM was sent: it lands mid-stream
    producer = PacedProducer(broker.bootstrap, t["transactions"], txs, kit.borrower_key(b), hold_at=hold // 100 * 100)

    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules, extra="batch_size = 100")
    try:
        daemon.start()
        producer.start()
        _wait_for_progress(daemon, 3000)  # past the first snapshots (one a second)
        daemon.kill()
        daemon.start()
        _wait_for_progress(daemon, 1500)
        assert daemon.terminate() == 0
        producer.gate.set()
        daemon.start()
        producer.join(60)
        assert producer.error is None
        messages = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published), timeout=120)
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()

    ids = [m["id"] for m in messages]
    assert set(ids) == published  # nothing lost, nothing invented
    assert kit.stored_alerts(daemon.db) == expected  # once each (ids are the primary key)
    log = daemon.log_lines()
    starts = [e for e in log if e["event"] == "partition_assigned" and "transactions" in e["topic"]]
    assert len(starts) == 6 and all(isinstance(e["offset"], int) for e in starts[2:])  # restarts resume
    after_sigterm = [e["offset"] for e in starts[4:]]
    assert sum(after_sigterm) >= 1500  # a SIGTERM snapshots where it stopped: no replay of the epoch


def _wait_for_progress(daemon: kit.Daemon, events: int, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        read = daemon.metric("fundwatch_events_in_total")
        if read >= events:
            return read
        time.sleep(0.01)
    raise AssertionError(f"no progress to {events} events:\n{daemon.log_tail()}")
