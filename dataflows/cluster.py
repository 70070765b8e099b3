"""`fundwatch run --config F --processes N`: a local cluster of N daemon processes.

Each child is `fundwatch run --config F --process-id i --addresses A` with
loopback addresses on free ports, the same command an operator runs by hand
on several machines. SIGTERM and SIGINT are passed on to every child. A
cluster cannot go on without one of its members, so when one exits the
others are stopped too, and the exit status is the worst of theirs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from connectors.broker import free_port

log = structlog.get_logger()


def run_local(config: Path, processes: int, workers: int = 1, log_level: str = "info") -> int:
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    children = [
        subprocess.Popen([
            sys.executable, "-m", "dataflows", "--log-level", log_level, "run", "--config", str(config),
            "--process-id", str(i), "--addresses", addresses, "--workers", str(workers),
        ])
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
    for child in children:  # one ended: the cluster cannot go on without it
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [c.wait() for c in children]
    log.info("cluster_stopped", exit_codes=codes)
    return max(codes, key=abs)
