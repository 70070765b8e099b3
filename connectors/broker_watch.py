"""Broker health from the broker's own answers, not only from client errors.

A broker that accepts connections but stops answering (a frozen process, a
full disk) gives the clients no error for a long time: requests just wait. So
a probe asks for metadata every `every` seconds; when no answer came for
OUTAGE_AFTER seconds the broker is down (metrics, log, readiness), and the
first answer after that brings it back. Client errors (all brokers down,
connections refused) mark it down sooner. One outage is counted once
(connectors/metrics.py).
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer

from connectors import metrics

OUTAGE_AFTER = 5.0  # seconds without an answer from the broker


def watch(config: dict, stopping: threading.Event, every: float = 1.0) -> threading.Thread:
    def loop() -> None:
        probe = Consumer(metrics.client_config({"group.id": "fundwatch-probe", **config}, "probe", marks_down=False))
        last_answer = time.monotonic()
        try:
            while not stopping.wait(every):
                try:
                    probe.list_topics(timeout=every)
                except Exception:  # noqa: BLE001 - no answer in time
                    if time.monotonic() - last_answer >= OUTAGE_AFTER:
                        metrics.broker_down("probe", f"no answer for {OUTAGE_AFTER:.0f}s")
                    continue
                last_answer = time.monotonic()
                metrics.broker_answered()
        finally:
            probe.close()

    thread = threading.Thread(target=loop, name="fundwatch-broker-watch", daemon=True)
    thread.start()
    return thread
