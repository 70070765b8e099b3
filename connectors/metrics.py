"""The Prometheus metrics the daemon exports (one registry per process; with
several processes each serves its own and Prometheus sums them)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from prometheus_client import Counter, Gauge, Histogram

log = structlog.get_logger()

EVENTS_IN = Counter("fundwatch_events_in", "Messages read from event topics", ["stream"])
REFERENCE_IN = Counter("fundwatch_reference_in", "Reference records applied", ["kind"])
ALERTS_OUT = Counter(
    "fundwatch_alerts", "Alerts confirmed by the broker (published) or kept back as shadow alerts",
    ["rule", "level", "published"],
)
DEAD_LETTERS = Counter("fundwatch_dead_letters", "Dead letters published, by reason", ["reason"])
DELIVERY_RETRIES = Counter(
    "fundwatch_delivery_retries", "Messages the broker did not confirm and that were sent again", ["topic"]
)
ALERT_DELAY = Histogram(
    "fundwatch_alert_delay_seconds",
    "Alert latency: event time to detection (detect), detection to broker confirmation (publish)",
    ["stage"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
BATCH_SECONDS = Histogram(
    "fundwatch_sink_batch_seconds", "Time to publish one batch and get every delivery report",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
CONSUMER_LAG = Gauge("fundwatch_consumer_lag", "Messages behind the partition's end", ["topic", "partition"])
BROKER_UP = Gauge("fundwatch_broker_up", "1 while the broker answers, 0 during an outage")
OUTAGES = Counter("fundwatch_broker_outages", "Times all brokers became unreachable")
PACK = Gauge("fundwatch_pack_info", "The rule pack in use", ["pack", "version", "digest"])
READY = Gauge("fundwatch_ready", "1 once reference data is loaded and the flow runs")
BROKER_UP.set(1)

_DOWN = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_TIMED_OUT")
_state = {"up": True, "since": 0.0}


def kafka_error_callback(client: str) -> Callable:
    """librdkafka's error_cb: log, and mark the broker down on connection errors.
    The broker is marked up again by the next successful fetch or delivery."""

    def on_error(err) -> None:
        name = err.name()
        log.warning("kafka_error", client=client, error=name, fatal=err.fatal())
        if name in _DOWN:
            broker_down(client, name)

    return on_error


def broker_down(client: str, why: str) -> None:
    if _state["up"]:
        _state.update(up=False, since=time.monotonic())
        OUTAGES.inc()
        BROKER_UP.set(0)
        log.error("broker_outage", client=client, error=why)


def broker_answered() -> None:
    if not _state["up"]:
        _state["up"] = True
        BROKER_UP.set(1)
        log.info("broker_back", down_seconds=round(time.monotonic() - _state["since"], 1))


def broker_is_up() -> bool:
    return _state["up"]
