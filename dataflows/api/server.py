"""Serving the workbench: uvicorn in a thread, beside the flow in the daemon
(which owns the store) or alone (`fundwatch serve`). The process that
serves a store leaves `<store>.api` naming its URL, so the CLI finds it while
the file is locked; the file goes when the server stops."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog
import uvicorn

from connectors.alert_store import AlertStore
from dataflows.api.app import create_app
from dataflows.api.service import Service

log = structlog.get_logger()


class ServeError(ValueError):
    pass


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 9480
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    def check(self) -> None:
        """Tokens travel in every request: anything but loopback needs TLS."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ServeError("the API's TLS needs both a certificate and its key")
        if not self.tls_cert and not _loopback(self.host):
            raise ServeError(f"serving the API on {self.host} needs TLS (a certificate and key); "
                             "without them it listens on loopback only")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def discovery_file(db: Path) -> Path:
    return Path(f"{Path(db).resolve()}.api")


def announced(db: Path) -> str | None:
    """The URL a live process serving `db` left beside it, if any."""
    try:
        info = msgspec.json.decode(discovery_file(db).read_bytes())
        os.kill(int(info["pid"]), 0)
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError, msgspec.DecodeError):
        return None


class Server:
    """The API over `db` on `listen`, in a thread; `stop()` ends it."""

    def __init__(self, db: Path, listen: Listen):
        listen.check()
        self.db, self.listen = Path(db), listen
        self.store = AlertStore(db)
        config = uvicorn.Config(create_app(Service(self.store)), host=listen.host, port=listen.port,
                                ssl_certfile=listen.tls_cert or None, ssl_keyfile=listen.tls_key or None,
                                log_level="warning", access_log=False, lifespan="off")
        self.uvicorn = uvicorn.Server(config)

    def start(self, wait: float = 10) -> Server:
        self.thread = threading.Thread(target=self.uvicorn.run, name="fundwatch-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.uvicorn.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.uvicorn.started:
            self.store.close()
            raise ServeError(f"the API could not listen on {self.listen.host}:{self.listen.port}")
        self._announce()
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(10)
        self._close()

    def _announce(self) -> None:
        discovery_file(self.db).write_bytes(msgspec.json.encode({"url": self.listen.url, "pid": os.getpid()}))
        log.info("api_listening", url=self.listen.url)

    def _close(self) -> None:
        discovery_file(self.db).unlink(missing_ok=True)
        self.store.close()


def serve_beside(db: Path, listen: Listen) -> Server | None:
    """The workbench of a process that detects: failing to serve it is logged, and detection goes on."""
    try:
        return Server(db, listen).start()
    except ServeError as e:
        log.error("api_unavailable", reason=str(e))
        return None
