"""/healthz, /readyz and /metrics over a small threaded HTTP server: the probes of the long-running
programs (platform_hook, `kubectl vcerts exporter`).

/healthz: the loops are alive (each beats within its allowance). /readyz: the program's first read
succeeded and it is serving what it read. Imports the standard library only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health:
    """Heartbeats of the hook's loops, checked by /healthz; readiness flag for /readyz."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._beats: dict[str, tuple[float, float]] = {}
        self._ready = False
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def beat(self, loop: str, allowance: float) -> None:
        with self._lock:
            self._beats[loop] = (self._monotonic(), allowance)

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready

    def healthy(self) -> tuple[bool, str]:
        now = self._monotonic()
        with self._lock:
            stale = [name for name, (at, allow) in self._beats.items() if now - at > allow]
        return (not stale, "stale: " + ", ".join(sorted(stale)) if stale else "ok")

    def ready(self) -> bool:
        with self._lock:
            return self._ready


def serve(host: str, port: int, health: Health, metrics: Callable[[], str]) -> ThreadingHTTPServer:
    """Start the server on a daemon thread and return it (`.server_address` has the bound port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, text = health.healthy()
                self._send(200 if ok else 503, text + "\n")
            elif path == "/readyz":
                ok = health.ready()
                self._send(200 if ok else 503, "ok\n" if ok else "not ready\n")
            elif path == "/metrics":
                self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, "not found\n")

        def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would drown the JSON log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
