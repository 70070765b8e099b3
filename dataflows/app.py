"""Running the flow for the commands: load reference data and the pack, pick a
source and sinks, run, and report. The CLI is a thin layer over these."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import structlog
from bytewax.inputs import Source
from bytewax.run import cli_main

from connectors.alert_store import AlertStore, RuleText
from connectors.reference_files import load_snapshot
from connectors.sinks import ConsoleSink, RunStats, StoreSink
from dataflows.api.server import Listen, serve_beside
from dataflows.flow import build_flow
from dataflows.progress import Progress, Watch
from engine.timing import Timing
from engine.batch import Raw
from engine.evaluate import Score, Scored, score
from engine.records import Label
from engine.rules.errors import RuleError
from engine.rules.live import LivePack
from engine.rules.pack import Pack
from engine.rules.spec import RuleSpec

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "post_loan"
DEFAULT_DB = Path("fundwatch.duckdb")

log = structlog.get_logger()


@dataclass
class RunResult:
    pack: Pack
    stats: RunStats
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.stats.events / self.seconds if self.seconds else 0.0


def run_flow(
    source: Source[list[Raw]],
    reference_dir: Path,
    db: Path = DEFAULT_DB,
    rules: Path = DEFAULT_RULES,
    emit: Callable[[str], None] | None = None,
    reload_interval: float = 1.0,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    api: Listen | None = None,
    timing: Timing = Timing(),
    progress: Progress | None = None,
) -> RunResult:
    """Run the flow to the end of `source`. With `process_id` and `addresses` this
    process is one of a Bytewax cluster; process 0 owns the DuckDB file (and the
    run's statistics: the others report only their own console lines). With
    `api` the owner serves the workbench over the store while it runs. `progress`
    follows the events the store sink has taken (process 0 sees them all)."""
    reference = load_snapshot(reference_dir)  # a folder of Parquet files or a DuckDB file
    owner = not process_id
    live = live_pack(rules, db, owner, reload_interval)
    server = serve_beside(db, api) if api is not None and owner else None
    stats = RunStats()
    sinks = [StoreSink(db, stats, owner=owner)] + ([ConsoleSink(emit)] if emit else [])
    flow = build_flow(source, reference, live.current, sinks, timing=timing)
    started = time.perf_counter()
    try:
        with Watch(progress, lambda: stats.events) if progress is not None else nullcontext():
            cli_main(flow, process_id=process_id, addresses=addresses)
    except KeyboardInterrupt:
        log.info("run_interrupted")  # what was stored stays stored; report it
    finally:
        if server is not None:
            server.stop()
    result = RunResult(live.pack, stats, time.perf_counter() - started)
    log.info(
        "run_finished", events=stats.events, alerts_new=stats.alerts_new,
        dead_letters_new=stats.dead_new, seconds=round(result.seconds, 2),
    )
    return result


def live_pack(
    rules: Path, db: Path, owner: bool, reload_interval: float = 1.0,
    on_load: Callable[[Pack], None] = lambda pack: None,
) -> LivePack:
    """The pack a flow runs, watched for edits and logged; the store's owner records every pack it loads."""
    def loaded(pack: Pack) -> None:
        log.info("pack_loaded", pack=pack.id, version=pack.version, rules=len(pack.rules), digest=pack.digest[:12])
        if owner:  # the process shares one database per file, so this works beside the flow's sink
            store = AlertStore(db)
            try:
                store.record_pack(pack.id, pack.version, pack.digest, [rule_text(r.spec) for r in pack.rules])
            finally:
                store.close()
        on_load(pack)

    return LivePack(rules, reload_interval, on_load=loaded, on_error=_pack_refused)


def rule_text(spec: RuleSpec) -> RuleText:
    return RuleText(rule_id=spec.id, version=spec.version, title=spec.title, description=spec.description,
                    investigation=spec.investigation, false_positives=spec.false_positives)


def _pack_refused(err: RuleError) -> None:
    log.error("pack_refused", problems=[str(p) for p in err.problems], kept="previous pack")


def evaluate(db: Path, pack: Pack, labels_path: Path) -> list[Score]:
    """Score the alerts in the store against a labels file."""
    labels = [msgspec.convert(row, Label) for row in pl.read_parquet(labels_path).iter_rows(named=True)]
    store = AlertStore(db, read_only=True)
    try:
        rows = store.alerts()
    finally:
        store.close()
    alerts = [
        Scored(a["rule_id"], msgspec.json.decode(a["evidence"])["event_ids"], a["borrower_id"], a["loan_id"],
               a["event_time"])
        for a in rows
    ]
    return score(alerts, {r.id: r.patterns for r in pack.rules}, labels)


def summary_lines(result: RunResult, db: Path) -> list[str]:
    s = result.stats
    lines = [
        f"events {s.events:,} in {result.seconds:.1f}s ({result.events_per_second:,.0f}/s), "
        f"pack {result.pack.id} {result.pack.version}",
        f"alerts {sum(s.by_rule.values()):,} raised, {s.alerts_new:,} new in {db}",
    ]
    lines += [f"  {rule}: {n:,}" for rule, n in sorted(s.by_rule.items())]
    lines.append(f"dead letters {sum(s.by_reason.values()):,} ({s.dead_new:,} new)")
    lines += [f"  {reason}: {n:,}" for reason, n in s.by_reason.most_common()]
    return lines


def score_lines(scores: list[Score]) -> list[str]:
    """Per pattern: labels found and alerts that match one, each with its Wilson 95% interval."""
    lines = [f"{'pattern':30} {'labels':>6} {'found':>5} {'recall':>6} {'95% interval':>13} "
             f"{'alerts':>6} {'true':>5} {'precision':>9} {'95% interval':>13}"]
    for sc in scores:
        name = sc.pattern if sc.hops is None else f"  {sc.hops} hop(s)"
        line = f"{name:30} {sc.labels:6d} {sc.found:5d} {sc.recall:6.2f} {_interval(sc.recall_interval):>13}"
        if sc.hops is None:
            line += (f" {sc.alerts:6d} {sc.true_alerts:5d} {sc.precision:9.2f} "
                     f"{_interval(sc.precision_interval) if sc.alerts else '-':>13}")
        lines.append(line)
    return lines


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"
