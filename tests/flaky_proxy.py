"""A loopback TCP proxy that cuts connections where the test says, for resumable-upload tests.

A field contributor's connection breaks in the middle of a request body. The
proxy forwards bytes both ways and counts what the client sent towards the
server; when that count reaches one of the `cuts` (cumulative byte counts), it
forwards exactly up to the cut and then resets both sides (RST, as a dead
network looks to both ends), once per cut (with `black_hole`, only the client's side is reset and the
server's just goes silent, as when a network drops everything: the server must
notice by itself). `at(count, callback)` runs a callback
once when the count passes a mark (a test uses it to SIGKILL the server in the
middle of a body). `sent` is what a client had to send in all, the measure of
whether it resumed or started over.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterable

BUFFER = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees the connection die, not end.

    `shutdown(SHUT_RD)` first wakes the other pump thread blocked in `recv` on
    this socket (it sends nothing to the peer): while a `recv` is in progress,
    `close()` alone does not release the socket, and the peer would never know.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FlakyProxy:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`target_port`, cutting connections at the given byte counts."""

    def __init__(self, target_port: int, cuts: Iterable[int] = (), *, black_hole: bool = False) -> None:
        self.target_port = target_port
        self.black_hole = black_hole  # a cut resets the client only: the server's side just goes silent
        self._cuts = sorted(cuts)
        self._marks: list[tuple[int, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self.sent = 0  # bytes forwarded from clients towards the server, headers included
        self.cut_count = 0
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._silent: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="flaky-proxy").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, count: int, callback: Callable[[], None]) -> None:
        """Run `callback` (in its own thread) once the clients have sent `count` bytes in all."""
        with self._lock:
            self._marks.append((count, callback))
            self._marks.sort(key=lambda mark: mark[0])

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        for sock in self._silent:
            _reset(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            _reset(client)  # the server is down: the client sees its connection die
            return
        upstream.settimeout(None)
        dead = threading.Event()
        once = threading.Lock()

        def end(reset: bool, cut: bool = False) -> None:
            """Either side ended or failed: end both (an HTTP client never half-closes)."""
            with once:
                if dead.is_set():
                    return
                dead.set()
            for sock in (client, upstream):
                if cut and self.black_hole and sock is upstream:
                    self._silent.append(sock)  # left open, never written again: a network that drops everything
                    continue
                if reset:
                    _reset(sock)
                else:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()

        def downstream() -> None:
            try:
                while data := upstream.recv(BUFFER):
                    client.sendall(data)
            except OSError:
                end(reset=True)  # the server died (SIGKILL): so does the client's connection
                return
            end(reset=False)

        threading.Thread(target=downstream, daemon=True).start()
        try:
            while data := client.recv(BUFFER):
                data, cut, due = self._account(data)
                if data:
                    upstream.sendall(data)
                for callback in due:
                    threading.Thread(target=callback, daemon=True).start()
                if cut:
                    end(reset=True, cut=True)
                    return
        except OSError:
            end(reset=True)
            return
        end(reset=False)

    def _account(self, data: bytes) -> tuple[bytes, bool, list[Callable[[], None]]]:
        """Count `data`; trim it at the next cut. Returns what to forward, whether to cut, callbacks due."""
        with self._lock:
            cut = False
            if self._cuts and self.sent + len(data) >= self._cuts[0]:
                data = data[: self._cuts.pop(0) - self.sent]
                cut = True
                self.cut_count += 1
            self.sent += len(data)
            due = [cb for count, cb in self._marks if count <= self.sent]
            self._marks = [(count, cb) for count, cb in self._marks if count > self.sent]
        return data, cut, due
