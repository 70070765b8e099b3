"""The Prometheus metrics the daemon exports (one registry per process; with
several processes each serves its own and Prometheus sums them)."""

from __future__ import annotations

import logging
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
STATE_ENTRIES = Gauge("fundwatch_state_entries", "Per-key detection state kept, by rule", ["rule"])
READY = Gauge("fundwatch_ready", "1 once reference data is loaded and the flow runs")
BROKER_UP.set(1)

STALE = 2.0
_DOWN = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_TIMED_OUT")
_state = {"up": True, "since": 0.0, "last_ok": 0.0}


def client_config(config: dict, client: str, marks_down: bool = True) -> dict:
    """A librdkafka client's settings with its errors and its own log lines as
    rate-limited JSON lines, so nothing of it reaches stderr raw, even before
    the first connection."""
    return {**config, "error_cb": kafka_error_callback(client, marks_down), "logger": librdkafka_logger()}


def kafka_error_callback(client: str, marks_down: bool = True) -> Callable:
    """librdkafka's error_cb: log (at most once per error and 10 s), and mark the
    broker down on connection errors. It is marked up again by a delivery
    report or by the broker watch (connectors/broker_watch.py)."""

    def on_error(err) -> None:
        name = err.name()
        log_limited("kafka_error", client, name, fatal=err.fatal())
        if marks_down and name in _DOWN:
            broker_down(client, name)

    return on_error


class LibrdkafkaLog(logging.Handler):
    """librdkafka's own log lines (the `logger` client setting) as structlog events."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        facility = message.split(" ", 1)[0]  # FAIL, ERROR, ...: one line per facility and 10 s
        log_limited("librdkafka", facility, message[:200], level=record.levelname.lower())


def librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger("fundwatch.librdkafka")
    if not logger.handlers:
        logger.addHandler(LibrdkafkaLog())
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    return logger


_last_logged: dict[tuple[str, str], list] = {}


def log_limited(event: str, key: str, what: str, **kw) -> None:
    now = time.monotonic()
    seen = _last_logged.get((event, key))
    if seen is not None and now - seen[0] < 10:
        seen[1] += 1
        return
    repeats = seen[1] if seen is not None else 0
    _last_logged[(event, key)] = [now, 0]
    log.warning(event, source=key, error=what, repeats_since_last=repeats, **kw)


def broker_down(client: str, why: str) -> None:
    # errors are reported when a client is next polled, possibly after the
    # broker answered again: an error within STALE seconds of an answer (the
    # broker watch asks every second) is stale, so one outage counts once
    if _state["up"] and time.monotonic() - _state["last_ok"] > STALE:
        _state.update(up=False, since=time.monotonic())
        OUTAGES.inc()
        BROKER_UP.set(0)
        log.error("broker_outage", client=client, error=why)


def broker_answered() -> None:
    _state["last_ok"] = time.monotonic()
    if not _state["up"]:
        _state["up"] = True
        BROKER_UP.set(1)
        log.info("broker_back", down_seconds=round(time.monotonic() - _state["since"], 1))


def broker_is_up() -> bool:
    return _state["up"]
