"""What a user installs: the licence, the version, dependency ranges that the
lock files satisfy exactly, and no test broker inside the package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PACKAGES = ("engine", "connectors", "dataflows")


def _locked() -> dict[str, str]:
    pins = {}
    for name in ("requirements.lock", "requirements-test.lock"):
        for line in (ROOT / name).read_text().splitlines():
            if line and not line.startswith(("#", "-r")):
                req = Requirement(line)
                assert str(req.specifier).startswith("=="), f"{name}: {line} is not an exact pin"
                pins[req.name.lower().replace("_", "-")] = str(req.specifier)[2:]
    return pins


def test_the_licence_is_apache_2_and_declared():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"


def test_version_prints_the_installed_version():
    out = subprocess.run([sys.executable, "-m", "dataflows", "--version"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"fundwatch {PROJECT['version']}"


def test_every_dependency_is_a_range_the_lock_pins_inside():
    pins = _locked()
    for line in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]:
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not in the lock files"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside {req.specifier}"
    loose = [r for r in PROJECT["dependencies"] if "==" in r and not r.startswith("bytewax")]
    assert loose == [], "pin exact versions in the lock, not in pyproject.toml"


def test_the_test_broker_is_not_in_the_installed_package():
    assert not any(r.startswith("calfkit") for r in PROJECT["dependencies"])
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                assert not any(n.startswith(("calfkit", "tests")) for n in names), f"{path} imports {names}"
            assert "calfkit" not in path.read_text(), f"{path} refers to calfkit"
