"""Rule versions and their logic, pinned in `pack.lock`.

A rule's *logic* is everything that changes what it fires on or what its
alerts say to the queue (kind, scope, detection, exceptions, windows, status,
severity, risk score, the suppression window, and the content of the shared
lists it reads); titles, descriptions, summaries and tests are not logic.
Changing logic without bumping `version` would put two behaviours under one
version on alerts, so lint and diff refuse it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine.rules.compiler import CompiledRule
from engine.rules.errors import Problem
from engine.rules.pack import Pack

LOCK_FILE = "pack.lock"
LOCK_FORMAT = 2  # what logic_hash covers; a lock of another format is written again, not compared
NOT_LOGIC = {"id", "title", "version", "tags", "owner", "description", "false_positives", "investigation", "output",
             "tests"}


def logic_hash(rule: CompiledRule) -> str:
    logic = {k: v for k, v in msgspec.to_builtins(rule.spec).items() if k not in NOT_LOGIC}
    logic["suppress_for"] = rule.spec.output.suppress_for
    logic["lists"] = rule.lists
    return hashlib.sha256(json.dumps(logic, sort_keys=True, default=str).encode()).hexdigest()[:16]


def lock_entries(pack: Pack) -> dict[str, dict[str, object]]:
    return {r.id: {"version": r.spec.version, "logic": logic_hash(r)} for r in sorted(pack.rules, key=lambda r: r.id)}


def write_lock(pack: Pack) -> Path:
    path = Path(pack.path) / LOCK_FILE
    path.write_text(json.dumps({"pack": pack.id, "format": LOCK_FORMAT, "rules": lock_entries(pack)}, indent=2) + "\n")
    return path


def check_lock(pack: Pack, live: bool = False) -> list[Problem]:
    """Problems between a pack and its lock file (missing lock, unlocked or unbumped changes).

    `live`: only what must not reach a running flow, two behaviours under one
    version (logic changed without a bump, a version that went down); a new rule
    or a bump not locked yet is for lint to report."""
    path = Path(pack.path) / LOCK_FILE
    if not path.exists():
        return [] if live else [Problem(str(path), 1, 1, "no lock file: run `fundwatch rules lock` and commit it")]
    lock = json.loads(path.read_text())
    if lock.get("format", 1) != LOCK_FORMAT:
        return [] if live else [Problem(str(path), 1, 1, f"pack.lock has format {lock.get('format', 1)}, this fundwatch writes "
                                         f"{LOCK_FORMAT}: check the versions, then run `fundwatch rules lock`")]
    locked = lock.get("rules", {})
    problems = []
    for rule in pack.rules:
        entry = locked.get(rule.id)
        now = {"version": rule.spec.version, "logic": logic_hash(rule)}
        if entry == now:
            continue
        where = (rule.file, *rule.version_at)
        if entry is not None and entry["version"] == now["version"]:
            msg = f"logic changed without a version bump (version {now['version']} is locked with other logic)"
        elif entry is not None and entry["version"] > now["version"]:
            msg = f"version went down from {entry['version']} to {now['version']}"
        elif live:
            continue
        elif entry is None:
            msg = "rule is not in pack.lock: run `fundwatch rules lock`"
        else:
            msg = f"version bumped to {now['version']} but pack.lock has {entry['version']}: run `fundwatch rules lock`"
        problems.append(Problem(*where, msg, rule.id))
    return problems


@dataclass(frozen=True)
class Change:
    rule_id: str
    kind: str  # added | removed | logic | metadata
    old_version: int | None
    new_version: int | None

    @property
    def is_error(self) -> bool:
        return self.kind == "logic" and self.old_version is not None and self.new_version <= self.old_version


def diff(old: Pack, new: Pack) -> list[Change]:
    before = {r.id: r for r in old.rules}
    after = {r.id: r for r in new.rules}
    changes = []
    for rid in sorted(before.keys() | after.keys()):
        a, b = before.get(rid), after.get(rid)
        if a is None:
            changes.append(Change(rid, "added", None, b.spec.version))
        elif b is None:
            changes.append(Change(rid, "removed", a.spec.version, None))
        elif logic_hash(a) != logic_hash(b):
            changes.append(Change(rid, "logic", a.spec.version, b.spec.version))
        elif msgspec.to_builtins(a.spec) != msgspec.to_builtins(b.spec):
            changes.append(Change(rid, "metadata", a.spec.version, b.spec.version))
    return changes
