"""Tells when the broker is back after an outage: clients only say when they
lose it. While the broker is marked down, a metadata request every few
seconds checks; the first answer marks it up (metrics, log, readiness)."""

from __future__ import annotations

import threading

from confluent_kafka import Consumer

from connectors import metrics


def watch(config: dict, stopping: threading.Event, every: float = 2.0) -> threading.Thread:
    def loop() -> None:
        probe = Consumer({"group.id": "fundwatch-probe", **config, "logger": metrics.librdkafka_logger()})
        try:
            while not stopping.wait(every):
                if metrics.broker_is_up():
                    continue
                try:
                    probe.list_topics(timeout=every)
                except Exception:  # noqa: BLE001 - still down
                    continue
                metrics.broker_answered()
        finally:
            probe.close()

    thread = threading.Thread(target=loop, name="fundwatch-broker-watch", daemon=True)
    thread.start()
    return thread
