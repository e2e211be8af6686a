"""A small TCP proxy in the test process, to fail the network between two nodes.

    with TcpProxy("127.0.0.1:5002") as proxy:   # listens on proxy.address
        ...
        proxy.cut("reset")   # every open connection is reset; new ones are reset at once
        proxy.cut("drop")    # nothing gets through either way, silently (a partition):
                             # bytes wait in the kernel, new connections are accepted and stalled
        proxy.restore()      # forwarding again; after "drop" the stalled bytes flow on

Threads only; every thread is a daemon, every wait is short, and the proxy shuts
itself down after `lifetime` seconds even if a test forgets to.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["open", "reset", "drop"]
POLL = 0.05  # seconds between looks at the mode and the stop flag


def _reset(sock: socket.socket) -> None:
    """Closes with an RST instead of a FIN, like a peer that vanished."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pipe:
    """One client connection and its upstream twin, pumped by one thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()

    def close(self, reset: bool = True) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()

    def run(self) -> None:
        try:
            self._run()
        except (OSError, ValueError):
            pass  # a socket was reset under us (cut) or by a peer
        finally:
            self.close(reset=False)
            self.proxy._forget(self)

    def _run(self) -> None:
        # A connection accepted during a "drop" cut waits, unanswered, for restore().
        while not self.closed.is_set() and not self.proxy._stopping.is_set():
            if self.proxy.mode == "open":
                break
            time.sleep(POLL)
        if self.closed.is_set() or self.proxy._stopping.is_set():
            return
        self.upstream = socket.create_connection(self.proxy.target, timeout=2)
        self.upstream.settimeout(5)
        self.client.settimeout(5)
        other = {self.client: self.upstream, self.upstream: self.client}
        while not self.closed.is_set() and not self.proxy._stopping.is_set():
            if self.proxy.mode == "drop":
                time.sleep(POLL)  # read nothing, send nothing: the peers see silence
                continue
            readable, _, _ = select.select(list(other), [], [], POLL)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return  # an orderly close on one side closes both
                if self.proxy.mode == "drop":
                    # Cut between select and recv: hold the bytes until restore().
                    while self.proxy.mode == "drop" and not self.proxy._stopping.is_set():
                        time.sleep(POLL)
                other[sock].sendall(data)


class TcpProxy:
    def __init__(self, target: str, lifetime: float = 300.0) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.mode: Mode = "open"
        self.accepted = 0
        self._lifetime = lifetime
        self._pipes: set[_Pipe] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(POLL)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    def cut(self, mode: Literal["reset", "drop"] = "reset") -> None:
        """Fails the link. With "reset" every open connection gets an RST and so does every new one;
        with "drop" nothing is forwarded and nothing is closed; callers wait for their deadlines."""
        self.mode = mode
        if mode == "reset":
            with self._lock:
                pipes = list(self._pipes)
            for pipe in pipes:
                pipe.close(reset=True)

    def restore(self) -> None:
        self.mode = "open"

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close(reset=True)
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def _accept_loop(self) -> None:
        deadline = time.monotonic() + self._lifetime
        while not self._stopping.is_set():
            if time.monotonic() > deadline:
                self._stopping.set()
                break
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.accepted += 1
            if self.mode == "reset":
                _reset(client)
                continue
            pipe = _Pipe(self, client)
            with self._lock:
                self._pipes.add(pipe)
            threading.Thread(target=pipe.run, name=f"tcp-proxy-{self.port}-pipe", daemon=True).start()
        with contextlib.suppress(OSError):
            self._listener.close()
