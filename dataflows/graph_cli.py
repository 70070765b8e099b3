"""`fundwatch graph ...`: the guarantee and related-party network around a party, for analysts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.graph import GuaranteeGraph, IdentityIndex
from engine.reference import RELATED_KINDS, Reference

DATA = click.Path(path_type=Path, exists=True, file_okay=False)


@click.group()
def graph() -> None:
    """The guarantee and related-party graph."""


@graph.command()
@click.argument("party")
@click.option("--data", type=DATA, required=True, help="Directory with the reference Parquet files.")
@click.option("--db", type=click.Path(path_type=Path), default=None, envvar="FUNDWATCH_DB",
              help="DuckDB alert store: also list this party's alerts that carry a traced path.")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Guarantors and guaranteed parties up to this many guarantees away.")
@click.option("--max-len", type=click.IntRange(min=2), default=6, show_default=True,
              help="Largest guarantee circle searched for.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Lines per section.")
def show(party: str, data: Path, db: Path | None, depth: int, max_len: int, limit: int) -> None:
    """PARTY's neighbourhood: guarantees given and received, circles and chains through
    it, parties within --depth guarantees, declared and hidden related parties, and
    alerts with a traced path."""
    from connectors.reference_files import load_reference

    ref = load_reference(data)
    guarantees = GuaranteeGraph.from_relations(ref.relations.values())
    if party not in ref.parties and party not in guarantees:
        raise click.ClickException(f"unknown party {party!r} in {data}")
    for line in describe(party, ref, guarantees, depth, max_len, limit):
        click.echo(line)
    if db is not None:
        for line in _alert_lines(party, db, limit):
            click.echo(line)


def describe(party: str, ref: Reference, guarantees: GuaranteeGraph, depth: int, max_len: int,
             limit: int) -> list[str]:
    out: list[str] = []
    p = ref.parties.get(party)
    if p is None:
        out.append(f"party {party} (not in parties.parquet)")
    else:
        out.append(f"party {p.id}  {p.name}  ({p.kind}, {p.sector}, {p.region})  net assets {p.net_assets:,.0f}")
        ids = [f"{k} {getattr(p, k)}" for k in ("legal_rep", "address", "phone") if getattr(p, k)]
        if ids:
            out.append("  " + "; ".join(ids))
    n = guarantees.neighbourhood(party, depth=depth, max_len=max_len)
    names = {pid: q.name for pid, q in ref.parties.items()}

    exposure = n["exposure"]
    ratio = f", {exposure / p.net_assets:.2f}x net assets" if p is not None and p.net_assets else ""
    out += ["", f"guarantees given: {len(n['gives'])}, {exposure:,.0f} in all{ratio}"]
    out += _capped([f"  -> {g['party']:<12} {g['amount']:>16,.0f}  {', '.join(g['relations'])}  {names.get(g['party'], '')}"
                    for g in n["gives"]], limit)
    out.append(f"guarantees received: {len(n['receives'])}, "
               f"{sum(g['amount'] for g in n['receives']):,.0f} in all")
    out += _capped([f"  <- {g['party']:<12} {g['amount']:>16,.0f}  {', '.join(g['relations'])}  {names.get(g['party'], '')}"
                    for g in n["receives"]], limit)

    out += ["", f"guarantee circles through {party} (up to {max_len} parties): {len(n['circles'])}"]
    out += _capped([f"  {_path(c)}  ({len(c) - 1} parties; {', '.join(guarantees.relations_on(c))})"
                    for c in n["circles"]], limit)
    chain = n["chain"]
    out.append(f"longest guarantee chain through {party}: {len(chain) - 1} guarantee(s)")
    if len(chain) > 1:
        out.append(f"  {_path(chain)}  ({', '.join(guarantees.relations_on(chain))})")
    out.append(f"within {depth} guarantee(s): {len(n['guarantors'])} guarantor(s), "
               f"{len(n['guaranteed'])} guaranteed part(ies)")
    out += _capped([f"  guarantor   {_path(q)}" for q in n["guarantors"]], limit)
    out += _capped([f"  guaranteed  {_path(q)}" for q in n["guaranteed"]], limit)
    if n["truncated"]:
        out.append("  (a search reached its fan-out or work bound: the lists above may be incomplete)")

    declared: dict[str, list[tuple[str, str]]] = {}
    for r in ref.relations.values():
        if r.kind == "guarantee" or party not in (r.src, r.dst):
            continue
        other, arrow = (r.dst, "->") if r.src == party else (r.src, "<-")
        extra = f" share {r.share:.0%}" if r.share is not None else ""
        declared.setdefault(r.kind, []).append((other, f"  {r.kind:<17} {arrow} {other:<12} {r.id}{extra}  {names.get(other, '')}"))
    out += ["", f"declared related parties: {sum(len(v) for v in declared.values())}"]
    out += _capped([line for kind in sorted(declared) for _, line in declared[kind]], limit)

    index = IdentityIndex()
    for q in ref.parties.values():
        index.add(q)
    related = {other for kind, rows in declared.items() if kind in RELATED_KINDS for other, _ in rows}
    shared = index.shared_with(party)
    hidden = [s for s in shared if s[0] not in related]
    out += ["", f"hidden related parties (shared identifiers, not declared): {len(hidden)}"]
    out += _capped([f"  {other:<12} {kind:<9} {value}  {names.get(other, '')}" for other, kind, value in hidden], limit)
    known = len(shared) - len(hidden)
    if known:
        out.append(f"  ({known} more share an identifier and are declared related)")
    return out


def _alert_lines(party: str, db: Path, limit: int) -> list[str]:
    if not db.exists():
        return ["", f"alerts: no alert store at {db}"]
    from connectors.alert_store import AlertStore, StoreError

    try:
        store = AlertStore(db, read_only=True)
    except StoreError as e:
        return ["", f"alerts: cannot read {db}: {e}"]
    try:
        rows = store.alerts(borrower=party)
    finally:
        store.close()
    traced = []
    for a in rows:
        path = json.loads(a["evidence"]).get("path") or []
        if path:
            traced.append(f"  {a['id']}  {a['event_time']:%Y-%m-%d %H:%M}  {a['level']:8} {a['rule_id']}  {a['summary']}\n"
                          f"      path: {_path(path)}")
    out = ["", f"alerts for {party} with a traced path: {len(traced)} (of {len(rows)} in {db})"]
    return out + _capped(traced, limit)


def _path(nodes: list[str]) -> str:
    return " -> ".join(nodes)


def _capped(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"  ... and {len(lines) - limit} more"]
