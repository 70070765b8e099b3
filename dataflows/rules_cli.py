"""`fundwatch rules ...`: the rule authors' tools (lint, test, diff, lock)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.rules.errors import Problem, RuleError
from engine.rules.lock import check_lock, diff, write_lock
from engine.rules.pack import Pack, load_pack
from engine.rules.selftest import run_tests

PATH = click.Path(path_type=Path, exists=True, file_okay=False)


def find_packs(path: Path) -> list[Path]:
    """PATH itself if it is a pack, else every pack below it."""
    if (path / "pack.yaml").exists():
        return [path]
    return sorted(p.parent for p in path.rglob("pack.yaml"))


def _load_all(path: Path) -> tuple[list[Pack], list[Problem]]:
    packs, problems = [], []
    roots = find_packs(path)
    if not roots:
        problems.append(Problem(str(path), 1, 1, "no pack.yaml here or below"))
    for root in roots:
        try:
            packs.append(load_pack(root))
        except RuleError as e:
            problems.extend(e.problems)
    return packs, problems


@click.group()
def rules() -> None:
    """Rule pack tools: lint, test, diff, lock."""


@rules.command()
@click.argument("path", type=PATH)
def lint(path: Path) -> None:
    """Check every pack under PATH: schema, field paths, conditions, tests present, lock file."""
    packs, problems = _load_all(path)
    for pack in packs:
        problems.extend(check_lock(pack))
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"ok: {len(packs)} pack(s), {sum(len(p.rules) for p in packs)} rules")


@rules.command()
@click.argument("path", type=PATH)
@click.option("-k", "keyword", help="Only tests whose rule id or name contains this.")
@click.option("-v", "verbose", is_flag=True, help="Show passing tests too.")
def test(path: Path, keyword: str | None, verbose: bool) -> None:
    """Run the tests embedded in the rules of every pack under PATH."""
    packs, problems = _load_all(path)
    for problem in problems:
        click.echo(str(problem), err=True)
    passed = failed = 0
    for pack in packs:
        for outcome in run_tests(pack, keyword):
            if outcome.passed:
                passed += 1
                if verbose:
                    click.echo(f"PASS {outcome.rule_id} {outcome.name}")
            else:
                failed += 1
                click.echo(f"FAIL {outcome.rule_id} {outcome.name}: {outcome.detail}")
    click.echo(f"{passed} passed, {failed} failed")
    if failed or problems or not passed:
        raise SystemExit(1)


@rules.command("diff")
@click.argument("old", type=PATH)
@click.argument("new", type=PATH)
def diff_cmd(old: Path, new: Path) -> None:
    """Added, removed and changed rules between two versions of a pack.
    A logic change without a version bump is an error."""
    try:
        a, b = load_pack(old), load_pack(new)
    except RuleError as e:
        raise click.ClickException(str(e)) from None
    changes = diff(a, b)
    click.echo(f"pack {a.id}: {a.version} -> {b.version}")
    for c in changes:
        versions = f"v{c.old_version or '-'} -> v{c.new_version or '-'}"
        flag = "  ERROR: logic changed without a version bump" if c.is_error else ""
        click.echo(f"  {c.kind:9} {c.rule_id} {versions}{flag}")
    if not changes:
        click.echo("  no rule changes")
    if any(c.is_error for c in changes):
        raise SystemExit(1)


@rules.command()
@click.argument("path", type=PATH)
def lock(path: Path) -> None:
    """Write pack.lock (rule versions and logic hashes) for every pack under PATH."""
    packs, problems = _load_all(path)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1)
    for pack in packs:
        click.echo(f"wrote {write_lock(pack)}")
