"""engine/ is the pure core: it must never pull in the stream engine or I/O libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import pkgutil, importlib, sys
import engine
for m in pkgutil.walk_packages(engine.__path__, "engine."):
    importlib.import_module(m.name)
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"bytewax", "confluent_kafka", "duckdb"})
print(",".join(bad))
"""


def test_engine_imports_no_stream_engine_kafka_or_duckdb():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
