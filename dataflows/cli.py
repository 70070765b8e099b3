"""The `fundwatch` command."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import tempfile
import threading
from datetime import date, datetime, time, timedelta, timezone
from importlib import metadata
from pathlib import Path

import click

from connectors.errors import InputError
from dataflows import app
from dataflows.alerts_cli import alerts, serve, tokens
from dataflows.graph_cli import graph
from dataflows.logs import configure
from dataflows.rules_cli import rules
from engine.rules.errors import RuleError
from engine.timing import Timing

DB = click.option("--db", type=click.Path(path_type=Path), default=app.DEFAULT_DB, show_default=True,
                  envvar="FUNDWATCH_DB", help="DuckDB alert store.")
MAPPING = click.option("--mapping", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
                       help="DATA is a bank's own export: map it with this YAML file first (see README, Import).")
RULES = click.option("--rules", type=click.Path(path_type=Path, exists=True), default=app.DEFAULT_RULES,
                     show_default=True, envvar="FUNDWATCH_RULES", help="Rule pack directory.")


class _Commands(click.Group):
    """A user's mistake (a missing store, a broken file, a bad setting) is one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (InputError, RuleError) as e:  # a broken pack too: its problems at file:line:col
            raise click.ClickException(str(e)) from None


def version() -> str:
    try:
        return metadata.version("fundwatch")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def cluster(process_id: int | None, addresses: str | None) -> list[str] | None:
    """-i/-a checked before Bytewax sees them: with a process id outside the list it
    would wait for a process 0 forever, retrying."""
    if (process_id is None) != (addresses is None):
        raise click.UsageError("--process-id and --addresses go together")
    if addresses is None:
        return None
    found = [a.strip() for a in addresses.split(";") if a.strip()]
    for a in found:
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.UsageError(f"--addresses: {a!r} is not host:port")
    if not 0 <= process_id < len(found):
        raise click.UsageError(f"--process-id {process_id} is not one of the {len(found)} process(es) in --addresses "
                               f"(0 to {len(found) - 1})")
    return found


@click.group(cls=_Commands)
@click.version_option(version(), "--version", prog_name="fundwatch", message="%(prog)s %(version)s")
@click.option("--log-level", default="info", envvar="FUNDWATCH_LOG_LEVEL", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False))
def main(log_level: str) -> None:
    """fundwatch: streaming fund-flow surveillance for post-loan management."""
    os.umask(os.umask(0o077) | 0o077)  # what we write (alert store, its log, snapshots) is the owner's only
    configure(log_level)


main.add_command(rules)
main.add_command(graph)
main.add_command(alerts)
main.add_command(tokens)
main.add_command(serve)


@main.command()
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--borrowers", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=60), default=90, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2026-01-01", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def simulate(seed: int, borrowers: int, days: int, start: datetime, out: Path) -> None:
    """Write a simulated bank (reference data, streams, labels) as Parquet files."""
    from connectors.simbank import STEPS
    from connectors.simbank import simulate as sim
    from dataflows.progress import Progress

    with Progress("simulate", STEPS, unit="steps") as progress:
        summary = sim(seed, borrowers, days, out, start=start.date(), step=lambda: progress.advance(1))
    click.echo(json.dumps(dataclasses.asdict(summary), indent=2, default=str))


@main.command()
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Simulated days to feed, then stop. Without it, runs until stopped.")
@click.option("--speed", type=float, default=86400.0, show_default=True,
              help="Simulated seconds per wall-clock second (86400: a day a second).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--borrowers", type=click.IntRange(min=10), default=300, show_default=True)
@DB
@RULES
@click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False), envvar="FUNDWATCH_CONFIG",
              help="Run as the daemon against Kafka with this TOML file (see README, Daemon).")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Daemon: start this many local processes as one cluster.")
@click.option("-i", "--process-id", type=int, default=None, help="Daemon: this process's index in a cluster.")
@click.option("-a", "--addresses", default=None,
              help='Daemon: every cluster process as "host:port;host:port", in process-id order.')
@click.option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Daemon: worker threads per process (they share one interpreter lock).")
@click.option("--api-port", type=click.IntRange(0, 65535), default=9480, show_default=True,
              help="Embedded run: serve the workbench on 127.0.0.1 at this port while running; 0: no.")
@click.pass_context
def run(ctx: click.Context, days: int | None, speed: float, seed: int, borrowers: int, db: Path, rules: Path,
        config: Path | None, processes: int, process_id: int | None, addresses: str | None, workers: int,
        api_port: int) -> None:
    """Run the engine: on the built-in simulated bank as a live feed, or with
    --config as the daemon against Kafka."""
    if config is not None:
        _daemon(ctx, config, processes, process_id, addresses, workers)
        return
    from connectors.files import PacedSource, stream_files
    from connectors.simbank import MIN_DAYS
    from connectors.simbank import simulate as sim

    start = date(2026, 1, 1)
    horizon = max(days, MIN_DAYS) if days else 365
    data = Path(".fundwatch") / f"sim-s{seed}-b{borrowers}-d{horizon}"
    if not (data / "manifest.json").exists():
        click.echo(f"simulating {borrowers} borrowers over {horizon} days into {data} ...")
        sim(seed, borrowers, horizon, data, start=start)
    until = datetime.combine(start, time(), timezone.utc) + timedelta(days=days) if days else None
    if days is None:
        click.echo(f"feeding {horizon} simulated days, then waiting for more; Ctrl-C stops")
    stopping = threading.Event()  # Ctrl-C or SIGTERM: stop reading, drain, report
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    source = PacedSource(stream_files(data), speed, until, keep_open=days is None, stopping=stopping)
    from dataflows.api.server import Listen

    result = app.run_flow(source, data, db, rules, emit=click.echo, api=Listen(port=api_port) if api_port else None)
    click.echo("")
    for line in app.summary_lines(result, db):
        click.echo(line)


@main.command()
@click.option("--data", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Directory with reference Parquet files and event files (transactions.*, sensors.*).")
@click.option("--labels/--no-labels", default=True, help="Score against DATA/labels.parquet if present.")
@click.option("--print-alerts", is_flag=True, help="Print every alert as it fires.")
@click.option("-i", "--process-id", type=int, default=None, help="This process's index in a cluster.")
@click.option("-a", "--addresses", default=None, help='Every cluster process as "host:port;host:port".')
@click.option("--allowed-lateness", type=click.FloatRange(min=0), default=600, show_default=True,
              help="Seconds an event may lag its file's newest event (more: a `late:` dead letter); windows, "
                   "absences and baselines see events in time order within it.")
@click.option("--future-tolerance", type=click.FloatRange(min=0), default=365 * 86400, show_default=True,
              help="Seconds an event may be dated ahead of the newest event of its file so far (more: `future:`).")
@MAPPING
@DB
@RULES
def replay(data: Path, labels: bool, print_alerts: bool, process_id: int | None, addresses: str | None,
           allowed_lateness: float, future_tolerance: float, mapping: Path | None, db: Path, rules: Path) -> None:
    """Replay event files through the same flow the daemon runs (one file per
    input partition: a cluster splits the files between its workers)."""
    from connectors.files import FileSource, count_rows, stream_files
    from dataflows.progress import Progress

    timing = Timing(timedelta(seconds=allowed_lateness), timedelta(seconds=future_tolerance))
    peers = cluster(process_id, addresses)
    with tempfile.TemporaryDirectory(prefix="fundwatch-import-") as tmp:
        events = data if mapping is None else _imported(mapping, data, Path(tmp), db, owner=not process_id)
        files = stream_files(events)
        source = FileSource(files)  # refuses a file it cannot open, before counting its rows
        progress = Progress("replay", sum(count_rows(p) for _, p in files)) if not process_id else None
        result = app.run_flow(source, events, db, rules, emit=click.echo if print_alerts else None,
                              process_id=process_id, addresses=peers,
                              timing=timing, progress=progress)
    if process_id:
        return  # process 0 owns the store and reports
    for line in app.summary_lines(result, db):
        click.echo(line)
    labels_path = data / "labels.parquet"
    if labels and labels_path.exists():
        click.echo("")
        for line in app.score_lines(app.evaluate(db, result.pack, labels_path)):
            click.echo(line)


class _Bound(click.ParamType):
    """--from/--to: an ISO date or time (UTC unless it says otherwise), or @OFFSET for a Kafka range."""

    name = "TIME|@OFFSET"

    def convert(self, value, param, ctx):
        if isinstance(value, (datetime, int)):
            return value
        if value.startswith("@"):
            try:
                return int(value[1:])
            except ValueError:
                self.fail(f"{value!r}: an offset is @ and a whole number, such as @1000", param, ctx)
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a date or time such as 2026-01-01 or 2026-01-01T08:00:00+08:00", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@main.command()
@click.option("--data", required=True,
              help="A folder of event and reference files (or a bank's export with --mapping), a DuckDB file with "
                   "event and reference tables, or kafka://HOST:PORT with --topic and --reference.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for report.html, figures.json, figures/*.parquet and the run's stores.")
@click.option("--rules", type=click.Path(path_type=Path, exists=True, file_okay=False), default=app.DEFAULT_RULES,
              show_default=True, envvar="FUNDWATCH_RULES", help="The pack to backtest.")
@click.option("--compare", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="A second pack: the alerts it gains, loses and changes against --rules.")
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Labels (.parquet, .ndjson, .csv) or an alert store whose confirmed and dismissed alerts are the "
                   "labels [default: DATA/labels.* if there].")
@MAPPING
@click.option("--from", "from_", type=_Bound(), default=None, help="Events from this event time (or @OFFSET).")
@click.option("--to", type=_Bound(), default=None, help="Events before this event time (or up to @OFFSET).")
@click.option("--topic", "topics", multiple=True, metavar="STREAM=TOPIC",
              help="Kafka: an event topic, e.g. transactions=bank.tx (repeat for sensors).")
@click.option("--reference", type=click.Path(path_type=Path, exists=True), default=None,
              help="Kafka: the reference snapshot, a folder of Parquet files or a DuckDB file.")
@click.option("--allowed-lateness", type=click.FloatRange(min=0), default=600, show_default=True,
              help="As for replay.")
@click.option("-i", "--process-id", type=int, default=None, help="This process's index in a cluster.")
@click.option("-a", "--addresses", default=None, help='Every cluster process as "host:port;host:port".')
def backtest(data: str, out: Path, rules: Path, compare: Path | None, labels: Path | None, mapping: Path | None,
             from_, to, topics: tuple[str, ...], reference: Path | None, allowed_lateness: float,
             process_id: int | None, addresses: str | None) -> None:
    """Replay history through the daemon's flow with a pack (and a second one to
    compare), score it against labels, and write an offline HTML report."""
    from connectors.files import Window
    from dataflows import backtest as bt

    peers = cluster(process_id, addresses)
    offsets = [b for b in (from_, to) if isinstance(b, int)]
    if offsets and not data.startswith("kafka://"):
        raise click.UsageError("@OFFSET bounds are for a Kafka range (--data kafka://...)")
    parsed = {}
    for spec in topics:
        stream, sep, topic = spec.partition("=")
        if not sep or stream not in ("transactions", "sensors") or not topic:
            raise click.UsageError(f"--topic {spec!r}: expected transactions=TOPIC or sensors=TOPIC")
        parsed[stream] = topic
    window = bt.Window(from_ if isinstance(from_, datetime) else None, to if isinstance(to, datetime) else None)
    if window.start and window.end and window.start >= window.end:
        raise click.UsageError("--from must be before --to")
    req = bt.Request(data, out, rules, compare, labels, mapping, window,
                     from_ if isinstance(from_, int) else None, to if isinstance(to, int) else None, parsed,
                     reference, Timing(timedelta(seconds=allowed_lateness)), process_id, peers)
    outcome = bt.run(req)
    if outcome is not None:
        for line in bt.summary_lines(outcome):
            click.echo(line)


@main.command("import")
@click.option("--mapping", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="YAML mapping of the export's columns to fundwatch's records (see README, Import).")
@click.option("--data", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Folder with the export files [default: the mapping's folder].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the Parquet files (and dead_letters.parquet, import.json).")
def import_(mapping: Path, data: Path | None, out: Path) -> None:
    """Turn a bank's own exports into fundwatch's Parquet files, by a mapping;
    rows that do not map are dead letters with the reason and the row."""
    from connectors.imports import export_rows, import_exports
    from connectors.mapping import load_mapping
    from dataflows.progress import Progress

    spec = load_mapping(mapping)
    folder = data or mapping.parent
    with Progress("import", export_rows(spec, folder), unit="rows") as progress:
        summary = import_exports(spec, folder, out, progress.advance)
    for kind, what in summary["exports"].items():
        rows = sum(f["rows"] for f in what["files"].values())
        click.echo(f"{kind}: {what['imported']:,} of {rows:,} rows from {len(what['files'])} file(s)")
    click.echo(f"dead letters {summary['dead_letters']:,} in {out / 'dead_letters.parquet'}")


def _imported(mapping: Path, data: Path, out: Path, db: Path, owner: bool) -> Path:
    """Import `data` by `mapping` into `out` for a replay or backtest; the owner of
    the store keeps the rows that did not map as the run's dead letters."""
    from connectors.alert_store import AlertStore
    from connectors.imports import export_rows, import_exports, imported_dead_letters
    from connectors.mapping import load_mapping
    from dataflows.progress import Progress

    spec = load_mapping(mapping)
    with Progress("import", export_rows(spec, data), unit="rows") as progress:
        summary = import_exports(spec, data, out, progress.advance)
    if owner:
        with AlertStore(db) as store:
            store.write([], imported_dead_letters(out))
        click.echo(f"import: {summary['dead_letters']:,} row(s) did not map (dead letters `unmapped:`/`invalid:` "
                   f"in {db})")
    return out


def _daemon(ctx: click.Context, config: Path, processes: int, process_id: int | None, addresses: str | None,
            workers: int) -> None:
    from dataflows.config import load

    settings = load(config)
    if processes > 1:
        from dataflows.cluster import run_local

        log_level = ctx.parent.params["log_level"] if ctx.parent else "info"
        ctx.exit(run_local(config, processes, workers, log_level))
    peers = cluster(process_id, addresses)
    from dataflows.daemon import run as run_daemon

    ctx.exit(run_daemon(settings, process_id, peers, workers))
