"""Write the exact lock files from the environment fundwatch is installed in:
requirements.lock (what `fundwatch` needs to run) and requirements-test.lock
(what the `test` extra adds). Run after changing a dependency in pyproject.toml:

    .venv/bin/python .ci/lock.py
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> dict[str, str]:
    """Every distribution `requirements` pull in, with its installed version."""
    found: dict[str, str] = {}
    todo = [(Requirement(r), ()) for r in requirements]
    while todo:
        req, extras = todo.pop()
        env = default_environment()
        if req.marker and not any(req.marker.evaluate(env | {"extra": e}) for e in (extras or ("",))):
            continue
        name = canonical(req.name)
        dist = metadata.distribution(req.name)
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"{req.name} {dist.version} is installed, pyproject.toml wants {req}")
        first = name not in found
        found[name] = f"{dist.metadata['Name']}=={dist.version}"
        if first or req.extras:
            todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return found


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = closure(project["dependencies"])
    test = {k: v for k, v in closure(project["optional-dependencies"]["test"]).items() if k not in run}
    header = "# exact versions, written by .ci/lock.py from pyproject.toml's ranges; `make` installs these\n"
    (ROOT / "requirements.lock").write_text(header + "".join(f"{v}\n" for _, v in sorted(run.items())))
    (ROOT / "requirements-test.lock").write_text(
        header + "-r requirements.lock\n" + "".join(f"{v}\n" for _, v in sorted(test.items())))


if __name__ == "__main__":
    main()
