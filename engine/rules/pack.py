"""A rule pack: `pack.yaml` (id, version, list files) plus one rule per file.

Loading is all or nothing: every problem in every file is collected and the
pack is refused if there is any, so a daemon keeps the pack it already has.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pathlib import Path

import msgspec

from engine.rules import source
from engine.rules.compiler import CompiledRule, compile_rule, schema_problem
from engine.rules.errors import Problem, RuleError
from engine.rules.spec import ListSpec, PackSpec, ScoringSpec, SuppressionSpec, TracingSpec, duration
from engine.tracing import Bounds

MAX_SUPPRESSION_DAYS = 180


@dataclass(frozen=True)
class Pack:
    id: str
    version: str
    path: str
    rules: tuple[CompiledRule, ...]
    lists: dict[str, list]
    digest: str  # content hash of every file: tells a reload whether anything changed
    test_context: str | None = None
    suppressions: tuple[SuppressionSpec, ...] = ()
    tracing: Bounds = Bounds()
    scoring: ScoringSpec = ScoringSpec()

    def suppressed(self, rule_id: str, borrower_id: str, loan_id: str | None, when: datetime) -> bool:
        return any(
            rule_id in s.rules and when.date() < s.expires
            and (borrower_id in s.borrowers or (loan_id is not None and loan_id in s.loans))
            for s in self.suppressions
        )

    def for_stream(self, stream: str) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if r.stream == stream)


def pack_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.yaml") if p.name != "pack.yaml")


def pack_fingerprint(root: Path) -> tuple:
    """Cheap change detection (names, sizes, modification times) for hot reload."""
    root = Path(root)
    paths = [root / "pack.yaml", *pack_files(root), *_referenced_files(root)]
    stats = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        stats.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(stats)


def _referenced_files(root: Path) -> list[Path]:
    try:
        meta = source.load(root / "pack.yaml").data or {}
        listed = [root / rel for rel in [*meta.get("lists", []), meta.get("test_context")] if rel]
        return listed + filter_files(root, meta.get("filters"))
    except (OSError, RuleError, AttributeError, TypeError):
        return []  # load_pack reports it properly


def load_pack(root: Path) -> Pack:
    root = Path(root)
    problems: list[Problem] = []
    digest = hashlib.sha256()
    meta_path = root / "pack.yaml"
    if not meta_path.is_file():
        raise RuleError([Problem(str(meta_path), 1, 1, "missing pack.yaml")])
    meta_loc = source.load(meta_path)
    digest.update(meta_path.read_bytes())
    try:
        meta = msgspec.convert(meta_loc.data, PackSpec)
    except msgspec.ValidationError as e:
        raise RuleError([schema_problem(meta_loc, e)]) from None

    try:
        tz = ZoneInfo(meta.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(meta_loc.problem(("timezone",), f"unknown time zone {meta.timezone!r} (an IANA name such as Asia/Shanghai)"))
        tz = timezone.utc
    lists: dict[str, list] = {}
    for i, rel in enumerate(meta.lists):
        list_path = (root / rel).resolve()
        if not list_path.is_file():
            problems.append(meta_loc.problem(("lists", i), f"list file not found: {rel}"))
            continue
        digest.update(list_path.read_bytes())
        try:
            loc = source.load(list_path, os.path.normpath(root / rel))
            for name, body in loc.data.items():
                try:
                    lists[name] = msgspec.convert(body, ListSpec).items
                except msgspec.ValidationError as e:
                    problems.append(schema_problem(loc, _nest(e, name)))
        except RuleError as e:
            problems.extend(e.problems)

    rules: list[CompiledRule] = []
    seen: dict[str, str] = {}
    suppressions = _load_filters(root, meta, meta_loc, problems, digest)
    for path in pack_files(root):
        digest.update(path.name.encode() + path.read_bytes())
        try:
            loc = source.load(path)
            rule = compile_rule(loc, lists, tz)
        except RuleError as e:
            problems.extend(e.problems)
            continue
        if rule.id in seen:
            problems.append(loc.problem(("id",), f"duplicate rule id {rule.id} (also in {seen[rule.id]})", rule.id))
        elif path.stem != rule.id:
            problems.append(loc.problem(("id",), f"rule {rule.id} must be in a file named {rule.id}.yaml", rule.id))
        seen.setdefault(rule.id, str(path))
        rules.append(rule)
    for loc, sup in suppressions:
        for i, rule_id in enumerate(sup.rules):
            if rule_id not in seen:
                problems.append(loc.problem(("rules", i), f"{sup.id}: suppresses unknown rule {rule_id}"))
    if problems:
        raise RuleError(problems)
    return Pack(meta.id, meta.version, str(root), tuple(rules), lists, digest.hexdigest(), meta.test_context,
                tuple(sup for _, sup in suppressions), _bounds(meta.tracing), meta.scoring)


def _bounds(t: TracingSpec) -> Bounds:
    return Bounds(t.max_hops, duration(t.max_age), t.min_amount, t.max_parts)


def filter_files(root: Path, filters: str | None) -> list[Path]:
    return sorted(Path(os.path.normpath(root / filters)).glob("*.yaml")) if filters else []


def _load_filters(root: Path, meta: PackSpec, meta_loc: source.Located, problems: list[Problem], digest) -> list:
    """Suppressions must name rules and borrowers or loans, and expire within MAX_SUPPRESSION."""
    if meta.filters and not (root / meta.filters).is_dir():
        problems.append(meta_loc.problem(("filters",), f"filters directory not found: {meta.filters}"))
        return []
    out = []
    for path in filter_files(root, meta.filters):
        digest.update(path.read_bytes())
        try:
            loc = source.load(path)
            sup = msgspec.convert(loc.data, SuppressionSpec)
        except RuleError as e:
            problems.extend(e.problems)
            continue
        except msgspec.ValidationError as e:
            problems.append(schema_problem(loc, e))
            continue
        if not (sup.borrowers or sup.loans):
            problems.append(loc.problem((), f"{sup.id}: name the borrowers or loans it covers"))
        elif (sup.expires - sup.created).days > MAX_SUPPRESSION_DAYS:
            problems.append(loc.problem(("expires",), f"{sup.id}: expires more than {MAX_SUPPRESSION_DAYS} days after it was created"))
        else:
            out.append((loc, sup))
    return out


def _nest(err: msgspec.ValidationError, name: str) -> msgspec.ValidationError:
    """Prefix a list's validation error path with the list's name."""
    text = str(err)
    if " - at `$" in text:
        return msgspec.ValidationError(text.replace(" - at `$", f" - at `$.{name}", 1))
    return msgspec.ValidationError(f"{text} - at `$.{name}`")
