"""Hot reload: the pack a running flow evaluates, swapped atomically between batches.

The flow asks `current()` once per batch. At most once per `interval` seconds
that looks at the pack's files; if they changed, the new pack is compiled in
full and swapped in only if it has no problem at all, its lock file included
(a logic change without a version bump is refused). A broken edit is reported
(through `on_error`) and the old pack stays live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.rules.errors import RuleError
from engine.rules.lock import check_lock
from engine.rules.pack import Pack, load_pack, pack_fingerprint


class LivePack:
    def __init__(
        self,
        path: Path,
        interval: float = 1.0,
        on_load: Callable[[Pack], None] = lambda pack: None,
        on_error: Callable[[RuleError], None] = lambda err: None,
    ):
        self.path = Path(path)
        self.interval = interval
        self.on_load, self.on_error = on_load, on_error
        self.pack = load_pack(self.path)  # a broken pack at start-up is fatal: there is nothing to keep
        self._seen = pack_fingerprint(self.path)
        self._next_check = time.monotonic() + interval
        on_load(self.pack)

    def current(self) -> Pack:
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.interval
            self.reload()
        return self.pack

    def reload(self) -> bool:
        """Load the pack again if its files changed; True if a new pack is live."""
        fingerprint = pack_fingerprint(self.path)
        if fingerprint == self._seen:
            return False
        self._seen = fingerprint
        try:
            pack = load_pack(self.path)
            problems = check_lock(pack, live=True)
            if problems:  # a logic change without a version bump must not go live under the old version
                raise RuleError(problems)
        except RuleError as err:
            self.on_error(err)
            return False
        if pack.digest == self.pack.digest:
            return False
        self.pack = pack
        self.on_load(pack)
        return True
