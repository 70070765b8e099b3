"""`fundwatch backtest`: the daemon's flow (build_flow, on event time) over
history, once per pack, then the results (engine.backtest) as an offline HTML
report, JSON and Parquet.

Data: a folder of event and reference files (optionally a bank's own export
and a mapping, imported first), a DuckDB file with event and reference tables,
or a Kafka topic range. Each pack's alerts go to a store of their own in OUT
(`backtest.duckdb`, `compare.duckdb`), made fresh for the run.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import msgspec
import polars as pl
import structlog
from bytewax.inputs import FixedPartitionedSource

from connectors.alert_store import AlertStore
from connectors.errors import InputError
from connectors.files import FileSource, Window, count_rows, file_format, stream_files
from dataflows import app
from dataflows.progress import Progress
from engine import backtest as results
from engine.lifecycle import FALSE_POSITIVE
from engine.records import ACTIVITY_STREAMS, Label
from engine.rules.pack import Pack
from engine.timing import Timing

log = structlog.get_logger()
STORES = {"base": "backtest.duckdb", "compare": "compare.duckdb"}
LABEL_NAMES = ("labels.parquet", "labels.ndjson", "labels.jsonl", "labels.csv")


@dataclass
class Request:
    data: str  # a folder, a DuckDB file, or kafka://HOST:PORT
    out: Path
    rules: Path
    compare: Path | None = None
    labels: Path | None = None
    mapping: Path | None = None
    window: Window = field(default_factory=Window)
    kafka_from: int | None = None  # offsets, for a Kafka range
    kafka_to: int | None = None
    topics: dict[str, str] = field(default_factory=dict)
    reference: Path | None = None  # Kafka: the reference snapshot (folder or DuckDB file)
    timing: Timing = Timing()
    process_id: int | None = None
    addresses: list[str] | None = None

    @property
    def owner(self) -> bool:
        return not self.process_id


@dataclass
class Outcome:
    runs: dict[str, app.RunResult]
    figures: dict[str, list[dict]]
    summary: dict
    report: Path


def run(req: Request) -> Outcome | None:
    """Run the packs, then (process 0) compute and write the results."""
    req.out.mkdir(parents=True, exist_ok=True)
    packs = {"base": req.rules} | ({"compare": req.compare} if req.compare else {})
    runs = {}
    with tempfile.TemporaryDirectory(prefix="fundwatch-import-") as tmp:
        data = _data(req, Path(tmp))
        for name, rules in packs.items():
            db = req.out / STORES[name]
            if req.owner:
                for stale in (db, Path(f"{db}.wal")):  # a backtest's store holds that backtest only
                    stale.unlink(missing_ok=True)
                if data.dead:
                    with AlertStore(db) as store:
                        store.write([], data.dead)
            progress = Progress(f"backtest {name}", data.total) if req.owner else None
            runs[name] = app.run_flow(data.source(), data.reference, db, rules, process_id=req.process_id,
                                      addresses=req.addresses, timing=req.timing, progress=progress)
    if not req.owner:
        return None
    return _results(req, runs, data.labels_dir)


@dataclass
class _Data:
    source: callable  # a fresh source per run
    reference: Path
    total: int | None
    labels_dir: Path | None
    dead: list = field(default_factory=list)


def _data(req: Request, tmp: Path) -> _Data:
    if req.data.startswith("kafka://"):
        from connectors.kafka_range import KafkaRange

        if req.reference is None or not req.topics:
            raise InputError("a Kafka backtest needs --topic STREAM=TOPIC (one or more) and --reference PATH")
        source = KafkaRange(req.data.removeprefix("kafka://"), req.topics, req.window, req.kafka_from, req.kafka_to)
        # relations and parties of the snapshot as events too, as in a replay, so the graph rules see them
        graph = [(s, p) for s, p in stream_files_or_none(req.reference) if s not in ACTIVITY_STREAMS] \
            if req.reference.is_dir() else []
        return _Data(lambda: Joined([source, FileSource(graph, req.window)]) if graph else source, req.reference,
                     source.total() + sum(count_rows(p) for _, p in graph), None)
    path = Path(req.data)
    if not path.exists():
        raise InputError(f"{path}: no such folder or DuckDB file")
    if path.is_file():
        from connectors.duckdb_source import DuckDBSource, count_table_rows

        if req.mapping is not None:
            raise InputError("--mapping reads export files in a folder; a DuckDB file has fundwatch's tables already")
        DuckDBSource(path)  # refuses a file without event tables now, not inside the flow
        return _Data(lambda: DuckDBSource(path, req.window), path,
                     count_table_rows(path) if req.window.open else None, None)
    dead = []
    events = path
    if req.mapping is not None:
        from connectors.imports import export_rows, import_exports, imported_dead_letters
        from connectors.mapping import load_mapping

        spec = load_mapping(req.mapping)
        with Progress("import", export_rows(spec, path), unit="rows") as progress:
            import_exports(spec, path, tmp, progress.advance)
        events, dead = tmp, imported_dead_letters(tmp)
    files = stream_files(events)
    FileSource(files)  # refuses a file it cannot open, before anything runs
    total = sum(count_rows(p) for _, p in files) if req.window.open else None
    return _Data(lambda: FileSource(files, req.window), events, total, path, dead)


def stream_files_or_none(folder: Path) -> list:
    try:
        return stream_files(folder)
    except InputError:
        return []


class Joined(FixedPartitionedSource):
    """Several sources as one input: the partitions of each, named apart."""

    def __init__(self, sources: list[FixedPartitionedSource]):
        self.sources = sources

    def list_parts(self) -> list[str]:
        return [f"{i}|{part}" for i, s in enumerate(self.sources) for part in s.list_parts()]

    def build_part(self, step_id: str, for_part: str, resume_state):
        i, part = for_part.split("|", 1)
        return self.sources[int(i)].build_part(step_id, part, resume_state)


# --- results ---------------------------------------------------------------------


def found(db: Path) -> list[results.Found]:
    with AlertStore(db, read_only=True) as store:
        return [_found(a) for a in store.alerts()]


def _found(a: dict) -> results.Found:
    evidence = msgspec.json.decode(a["evidence"]) if isinstance(a["evidence"], str) else a["evidence"]
    return results.Found(a["id"], a["rule_id"], a["rule_version"], a["level"], a["score"], a["borrower_id"],
                         a["loan_id"], a["event_time"], a["summary"], tuple(evidence["event_ids"]))


def load_labels(path: Path, pack: Pack) -> tuple[list[Label], list[results.Found] | None]:
    """Labels from a file (Parquet, NDJSON, CSV with event_ids split by ';'), or from
    an alert store's dispositions; then also the reviewed alerts (see engine.backtest)."""
    if not path.is_file():
        raise InputError(f"{path}: no such labels file")
    if path.suffix.lower() == ".duckdb":
        return _disposition_labels(path, pack)
    kind = file_format(path)
    try:
        if kind == "parquet":
            df = pl.read_parquet(path)
        elif kind == "ndjson":
            df = pl.read_ndjson(path)
        elif kind == "csv":
            df = pl.read_csv(path, infer_schema=False).with_columns(pl.col("event_ids").str.split(";"))
        else:
            raise InputError(f"{path}: labels are a .parquet, .ndjson, .csv file or an alert store (.duckdb)")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(f"{path}: not a readable labels file: {str(e).splitlines()[0]}") from None
    labels = []
    for i, row in enumerate(df.iter_rows(named=True)):
        try:
            labels.append(msgspec.convert(row, Label, strict=kind != "csv"))
        except msgspec.ValidationError as e:
            raise InputError(f"{path}: row {i + 1}: {e}") from None
    return labels, None


def _disposition_labels(path: Path, pack: Pack) -> tuple[list[Label], list[results.Found]]:
    patterns = {r.id: r.patterns for r in pack.rules}
    with AlertStore(path, read_only=True) as store:
        rows = store.disposed()
    labels = []
    for row in rows:
        if row["disposition"] == FALSE_POSITIVE:
            continue
        a = _found(row)
        for pattern in patterns.get(a.rule_id, ()):
            labels.append(Label(pattern=pattern, borrower_id=a.borrower_id, loan_id=a.loan_id,
                                first_event_time=a.event_time, event_ids=list(a.event_ids)))
    return labels, [_found(r) for r in rows]


def _results(req: Request, runs: dict[str, app.RunResult], data_dir: Path | None) -> Outcome:
    from dataflows.report import write_report

    pack = runs["base"].pack
    alerts = found(req.out / STORES["base"])
    figures: dict[str, list[dict]] = {
        "volume": results.volume(alerts),
        "scores": results.score_distribution(alerts),
        "top_borrowers": results.top_borrowers(alerts),
    }
    labels_path = req.labels
    if labels_path is None and data_dir is not None:  # the data's own labels, as replay scores them
        labels_path = next((p for p in sorted(data_dir.iterdir()) if p.name.lower() in LABEL_NAMES), None)
    summary: dict = {
        "pack": {"id": pack.id, "version": pack.version, "digest": pack.digest, "rules": str(req.rules)},
        "data": req.data, "from": _iso(req.window.start), "to": _iso(req.window.end),
        "events": runs["base"].stats.events, "seconds": round(runs["base"].seconds, 2),
        "events_per_second": round(runs["base"].events_per_second, 1),
        "alerts": len(alerts), "dead_letters": _dead_letters(req.out / STORES["base"]),
        "labels": str(labels_path) if labels_path else None,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    patterns = {r.id: r.patterns for r in pack.rules if r.patterns}
    activity = {r.id for r in pack.rules if r.spec.applies_to.stream in ACTIVITY_STREAMS}
    first = min((a.event_time for a in alerts if a.rule_id in activity), default=None)
    summary["activity_from"] = _iso(req.window.start.date() if req.window.start else first.date() if first else None)
    if labels_path is not None:
        labels, reviewed = load_labels(labels_path, pack)
        scored = alerts if reviewed is None else results.reviewed_only(alerts, reviewed)
        figures["by_pattern"] = results.by_pattern(scored, patterns, labels)
        figures["by_rule"] = results.by_rule(scored, patterns, labels)
        figures["delay"] = results.detection_delay(scored, patterns, labels)
        summary["scored_alerts"] = len(scored)
        summary["label_count"] = len(labels)
        summary["labels_from"] = "dispositions" if reviewed is not None else "file"
    if "compare" in runs:
        other = runs["compare"].pack
        changes = results.diff(alerts, found(req.out / STORES["compare"]))
        figures["diff"] = changes
        figures["diff_by_rule"] = results.diff_by_rule(changes)
        summary["compare"] = {"id": other.id, "version": other.version, "digest": other.digest,
                              "rules": str(req.compare), "events": runs["compare"].stats.events,
                              **{c: sum(r["change"] == c for r in changes) for c in ("gained", "lost", "changed")}}
    report = write_report(req.out, figures, summary)
    log.info("backtest_written", report=str(report), figures=len(figures))
    return Outcome(runs, figures, summary, report)


def _dead_letters(db: Path) -> int:
    with AlertStore(db, read_only=True) as store:
        return store.counts("SELECT 'all', count(*) FROM dead_letters").get("all", 0)


def _iso(t: datetime | date | None) -> str | None:
    return t.isoformat() if t is not None else None


def summary_lines(outcome: Outcome) -> list[str]:
    s, f = outcome.summary, outcome.figures
    lines = app.summary_lines(outcome.runs["base"], Path(STORES["base"]))[:1]
    per_rule: dict[str, int] = {}
    for row in f["volume"]:
        per_rule[row["rule_id"]] = per_rule.get(row["rule_id"], 0) + row["alerts"]
    lines.append(f"alerts {s['alerts']:,}; dead letters {s['dead_letters']:,}")
    lines += [f"  {rule}: {n:,}" for rule, n in sorted(per_rule.items())]
    if "by_pattern" in f:
        lines.append(f"against {s['label_count']:,} labels ({s['labels_from']}), {s['scored_alerts']:,} alerts scored:")
        lines.append(f"  {'pattern':28} {'recall':>20} {'precision':>20} {'F1':>5}")
        for r in f["by_pattern"]:
            if r["hops"] is None:
                f1 = f"{r['f1']:5.2f}" if r["labels"] or r["alerts"] else f"{'-':>5}"
                lines.append(f"  {r['pattern']:28} {_ratio(r['found'], r['labels'], r['recall_low'], r['recall_high'])}"
                             f" {_ratio(r['true_alerts'], r['alerts'], r['precision_low'], r['precision_high'])} {f1}")
    if "compare" in s:
        c = s["compare"]
        lines.append(f"compared with {c['id']} {c['version']} ({c['rules']}): {c['gained']:,} gained, "
                     f"{c['lost']:,} lost, {c['changed']:,} changed")
        lines += [f"  {r['rule_id']}: +{r['gained']} -{r['lost']} ~{r['changed']}" for r in f["diff_by_rule"]]
    lines.append(f"report {outcome.report} (figures as JSON and Parquet beside it)")
    return lines


def _ratio(k: int, n: int, low: float | None, high: float | None) -> str:
    if not n:
        return f"{'-':>20}"
    return f"{k}/{n}={k / n:.2f} [{low:.2f},{high:.2f}]".rjust(20)


def figures_json(figures: dict[str, list[dict]], summary: dict) -> str:
    return json.dumps({"summary": summary, **figures}, default=str, indent=1)
