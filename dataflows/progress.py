"""Progress of a long run (replay, backtest, import, simulate): how much is done,
the rate and the time left. On a terminal a bar on stderr (rich); otherwise, for
logs and CI, one structured `progress` line every EVERY seconds and one at the
end, so a replay of two million events is never three silent minutes."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

EVERY = 10.0  # seconds between log lines off a terminal
log = structlog.get_logger()


class Progress:
    """Call `update(done)` or `advance(n)` as work gets done, `close()` at the end."""

    def __init__(self, what: str, total: int | None = None, unit: str = "events", console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit, self.clock = what, total, unit, clock
        self.done = 0
        self.started = self.last_log = clock()
        terminal = console is not None or sys.stderr.isatty()
        self.bar: Bar | None = None
        if terminal:
            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                           TimeElapsedColumn(), console=console or Console(stderr=True))
            self.task = self.bar.add_task(what, total=total, rate="")
            self.bar.start()

    @property
    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.total is None or not self.rate:
            return None
        return max(self.total - self.done, 0) / self.rate

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{self.rate:,.0f} {self.unit}/s")
        elif self.clock() - self.last_log >= EVERY:
            self._log("progress")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, rate=f"{self.rate:,.0f} {self.unit}/s")
            self.bar.stop()
            self.bar = None
        self._log("progress_done")

    def _log(self, event: str) -> None:
        self.last_log = self.clock()
        eta = self.eta_seconds
        log.info(event, what=self.what, done=self.done, total=self.total, unit=self.unit,
                 rate=round(self.rate, 1), eta_s=None if eta is None else round(eta, 1),
                 elapsed_s=round(self.clock() - self.started, 1))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Watch:
    """Polls a counter another thread moves (the flow's sink) into a Progress, twice a second."""

    def __init__(self, progress: Progress, count: Callable[[], int], interval: float = 0.5):
        self.progress, self.count, self.interval = progress, count, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.progress.update(self.count())

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.progress.update(self.count())
        self.progress.close()
