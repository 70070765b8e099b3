"""`fundwatch run --config F --processes N`: a local cluster of N daemon processes.

Each child is `fundwatch run --config F --process-id i --addresses A` with
loopback addresses on free ports, the same command an operator runs by hand
on several machines. SIGTERM and SIGINT are passed on to every child. A
cluster cannot go on without one of its members, so when one fails the
others are stopped too (after a clean stop they get 10 s to finish on their
own), and the exit status is the worst of theirs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from connectors.processes import die_with_parent, free_port

log = structlog.get_logger()


def run_local(config: Path, processes: int, workers: int = 1, log_level: str = "info") -> int:
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    children = [
        subprocess.Popen([
            sys.executable, "-m", "dataflows", "--log-level", log_level, "run", "--config", str(config),
            "--process-id", str(i), "--addresses", addresses, "--workers", str(workers),
        ], preexec_fn=die_with_parent)  # a supervisor killed by SIGKILL still stops its cluster
        for i in range(processes)
    ]
    log.info("cluster_started", processes=processes, pids=[c.pid for c in children])

    def forward(signum, _frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(c.poll() is None for c in children):
        time.sleep(0.2)
    # one ended. After a clean stop the others are finishing too; after a crash
    # the cluster cannot go on without it, so they are asked to stop.
    grace = time.monotonic() + 10
    while any(c.poll() is None for c in children):
        crashed = any(c.returncode not in (None, 0) for c in children)
        if crashed or time.monotonic() > grace:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            break
        time.sleep(0.1)
    codes = [c.wait() for c in children]
    log.info("cluster_stopped", exit_codes=codes)
    return max(codes, key=abs)
