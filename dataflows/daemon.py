"""`fundwatch run --config`: the flow against Kafka, as one cluster member.

Start-up: rule pack, reference snapshot, reference topics read to their end,
then the flow. Recovery: Bytewax snapshots (source offsets, detection state)
every `recovery.snapshot_interval` seconds; sinks are idempotent (alert ids are
deterministic, DuckDB ignores repeats) or confirmed (Kafka delivery reports
before the epoch closes), so a kill -9 replays at most one interval and loses
nothing. SIGTERM or SIGINT: stop reading, let in-flight batches reach the
sinks, return; if that takes longer than `shutdown_timeout`, exit anyway
(recovery makes that safe, just slower to resume).
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import msgspec
import structlog
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from connectors import broker_watch, metrics
from connectors.alert_store import AlertStore
from connectors.kafka_reference import ReferenceFeed
from connectors.kafka_sink import KafkaOutput
from connectors.kafka_source import KafkaInput
from connectors.redact import Redaction
from connectors.reference_files import load_snapshot
from connectors.sinks import StoreSink
from dataflows import http
from dataflows.api.server import Listen, serve_beside
from dataflows.app import live_pack
from dataflows.config import ConfigError, Settings, kafka_config
from dataflows.flow import build_flow, utc_now
from engine.batch import Raw, quiet_after
from engine.decode import Limits
from engine.reference import Reference
from engine.rules.pack import Pack

log = structlog.get_logger()
EXIT_TIMEOUT = 3  # exit status when the shutdown deadline passed


def run(settings: Settings, process_id: int | None = None, addresses: list[str] | None = None,
        workers: int = 1) -> int:
    """Run until the input is stopped (SIGTERM/SIGINT). Returns the exit status."""
    pid = process_id or 0
    log_ = log.bind(process=pid)
    recovery = _recovery(settings, pid, log_)  # first: a directory others can write stops the start
    if pid == 0:
        AlertStore(Path(settings.duckdb)).close()  # a store another daemon holds stops the start too
    stopping = threading.Event()
    status = http.Status()
    status.broker_up = metrics.broker_is_up
    _on_signals(stopping, status, settings.shutdown_timeout)
    server = None
    if settings.http.port:
        try:
            server = http.serve(settings.http.host, settings.http.port + pid, status)
        except OSError as e:
            raise ConfigError(f"http: cannot listen on {settings.http.host}:{settings.http.port + pid}: "
                              f"{e.strerror}") from None
        log_.info("http_listening", host=settings.http.host, port=settings.http.port + pid)
    status.running = True

    feed = api = None
    try:  # whatever stops the start (a missing topic, a signal) still closes what was opened
        live = live_pack(Path(settings.rules), Path(settings.duckdb), pid == 0, on_load=_pack_metric)
        if pid == 0 and settings.api.port:  # the workbench lives with the store's owner
            a = settings.api
            api = serve_beside(Path(settings.duckdb), Listen(a.host, a.port, a.tls_cert, a.tls_key))

        reference = load_snapshot(Path(settings.reference.snapshot)) if settings.reference.snapshot else Reference()
        if settings.topics.reference():
            feed = ReferenceFeed(kafka_config(settings), settings.topics.reference(), reference,
                                 report_dead=pid == 0, stopping=stopping)
            feed.catch_up(settings.reference.wait_for_topics)

        source = KafkaInput(
            kafka_config(settings, **{"group.id": settings.kafka.group_id}), settings.topics.streams(),
            batch_size=settings.input.batch_size, max_bytes=settings.input.max_message_bytes,
            idle_wait=settings.input.idle_wait, idle_after=settings.input.idle_after, stopping=stopping,
            stop_wait=settings.recovery.snapshot_interval + 1 if recovery else 0,
            snapshot_events=settings.recovery.snapshot_events if recovery else 1 << 62,
            on_poll=feed.apply if feed is not None else None,
        )
        redaction = Redaction(settings.dead_letters.payload, settings.dead_letters.max_payload)
        sinks = [
            StoreSink(Path(settings.duckdb), owner=pid == 0, redaction=redaction),
            KafkaOutput(kafka_config(settings), settings.topics.alerts, settings.topics.dead_letters,
                        delivery_timeout=settings.output.delivery_timeout, owner=pid == 0, redaction=redaction),
        ]
        initial = (snapshot_events(reference, settings.reference.snapshot)
                   if pid == 0 and settings.reference.snapshot else [])
        flow = build_flow(source, reference, live.current, sinks, refresh=_refresher(feed, initial),
                          timing=settings.input.timing(), present=utc_now, recoverable=recovery is not None,
                          limits=Limits(settings.input.max_amount, settings.input.max_text))
        broker_watch.watch(kafka_config(settings), stopping)
        status.ready = True
        metrics.READY.set(1)
        log_.info("daemon_started", workers=workers, processes=len(addresses or [None]),
                  recovery=bool(recovery), streams=sorted(settings.topics.streams()))
        started = time.monotonic()
        cli_main(
            flow, workers_per_process=workers, process_id=process_id, addresses=addresses,
            epoch_interval=timedelta(seconds=settings.recovery.snapshot_interval), recovery_config=recovery,
        )
    finally:
        metrics.READY.set(0)
        status.ready = False
        if feed is not None:
            feed.close()
        if server is not None:
            server.shutdown()
        if api is not None:
            api.stop()
    log_.info("daemon_stopped", seconds=round(time.monotonic() - started, 1))
    return 0


def _recovery(settings: Settings, pid: int, log_) -> RecoveryConfig | None:
    """Process 0 creates one recovery partition if its directory has none (the
    same as `python -m bytewax.recovery DIR 1`). Bytewax needs every partition
    found by some process of the cluster, not by each, so other processes only
    give a shared directory a moment to be initialised."""
    if not settings.recovery.directory:
        return None
    directory = private_directory(Path(settings.recovery.directory))
    if pid == 0 and not list(directory.glob("part-*.sqlite3")):
        init_db_dir(directory, 1)
        log_.info("recovery_initialized", partitions=1)
    deadline = time.monotonic() + 5
    while not list(directory.glob("part-*.sqlite3")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return RecoveryConfig(str(directory), timedelta(seconds=settings.recovery.backup_interval))


def private_directory(directory: Path) -> Path:
    """The recovery directory, created 0700. Snapshots are unpickled at start, and
    unpickling runs code: one that others could have written is refused."""
    if not directory.exists():
        directory.mkdir(parents=True)
        directory.chmod(0o700)
    for path in [directory, *directory.glob("part-*.sqlite3*")]:
        try:
            st = path.stat()
        except FileNotFoundError:  # a journal another process of the cluster just removed
            continue
        if st.st_mode & 0o022 or st.st_uid != os.getuid():
            raise ConfigError(f"recovery.directory: {path} is writable by others or not ours "
                              f"(mode {stat.filemode(st.st_mode)}); snapshots are unpickled, so it must be private")
    return directory


def snapshot_events(reference: Reference, where: str) -> list[Raw]:
    """The snapshot's parties and relations as events, so graph rules look at them once, in time order."""
    encode = msgspec.json.Encoder().encode
    records = sorted([("parties", p.registered_on, p) for p in reference.parties.values()] +
                     [("relations", r.valid_from, r) for r in reference.relations.values()], key=lambda x: x[1])
    return [Raw(kind, where, f"{kind} {record.id}", encode(record)) for kind, _, record in records]


def _refresher(feed: ReferenceFeed | None, initial: list[Raw]):
    """What the flow calls before each batch: the feed's updates, and once the snapshot's events."""
    pending, lock = list(initial), threading.Lock()

    def refresh() -> tuple[list, list[Raw]]:
        dead, events = feed.refresh() if feed is not None else ([], [])
        with lock:
            if pending:
                events = pending + events
                pending.clear()
        # handed over in bulk: the graph rules need not wait for more of them to put them in order
        return dead, events + quiet_after(events)

    return refresh if feed is not None or initial else None


def _on_signals(stopping: threading.Event, status: http.Status, timeout: float) -> None:
    def handler(signum, _frame) -> None:
        if stopping.is_set():
            return
        log.info("shutdown_requested", signal=signal.Signals(signum).name, deadline_seconds=timeout)
        stopping.set()
        status.stopping = True
        timer = threading.Timer(timeout, _give_up, (timeout,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _give_up(timeout: float) -> None:
    log.error("shutdown_deadline_passed", seconds=timeout, note="recovery resumes from the last snapshot")
    os._exit(EXIT_TIMEOUT)


def _pack_metric(pack: Pack) -> None:
    metrics.PACK.clear()
    metrics.PACK.labels(pack=pack.id, version=pack.version, digest=pack.digest[:12]).set(1)