"""A small forwarding proxy on 127.0.0.1 for tests: HTTP CONNECT tunnels, recorded.

It tunnels only to loopback: a target host that is a loopback address is used as it is, and the names
in `aliases` (e.g. a DNS name the API server's certificate carries, which does not resolve here) are
mapped to 127.0.0.1; anything else is refused with 403. Every CONNECT it receives is recorded in
`requests` as "host:port", so a test can prove a client went through it. It runs on daemon threads
and stops with `close()` (or the context manager).
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import threading
from collections.abc import Iterable
from types import TracebackType


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConnectProxy:
    def __init__(self, aliases: Iterable[str] = ()) -> None:
        self.aliases = frozenset(aliases)
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            client.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            authority = rest.partition(" ")[0]
            headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
            host, _, port = authority.rpartition(":")
            if method != "CONNECT" or not port.isdigit():
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.requests.append(authority)
            self.authorizations.append(headers.get("proxy-authorization"))
            target = "127.0.0.1" if host in self.aliases else host.strip("[]")
            if not _loopback(target):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                upstream = socket.create_connection((target, int(port)), timeout=10)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with contextlib.closing(upstream):
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.5):
                    ready = key.fileobj
                    if not isinstance(ready, socket.socket):
                        continue
                    try:
                        data = ready.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    peers[ready].sendall(data)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ConnectProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
