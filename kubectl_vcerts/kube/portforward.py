"""Port-forward to a vCluster's control-plane pod through the host API (as `vcluster connect` does).

`open_forward(host, namespace=, vcluster=)` picks the newest Ready pod `app=vcluster,release=NAME`,
checks once that the host API lets us open `pods/portforward` on it, and listens on 127.0.0.1:<free
port>; each accepted connection gets its own port-forward stream to the pod's port 8443 (the
kubernetes client's `kubernetes.stream.portforward`), pumped by a daemon thread. `Forward.close()`
stops the listener and every stream. `choose_pod` is pure (tested without a cluster).
Imports kubernetes only inside functions; must not import cli/, typer or rich; never logs credentials.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubectl_vcerts.errors import ForbiddenError, NotFoundError, UnreachableError, VcertsError
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call

VIRTUAL_PORT = 8443  # the syncer's port in the control-plane pod (vCluster chart: containerPort 8443)
OPEN_TIMEOUT = 10.0  # seconds to open one port-forward stream
IDLE_POLL = 0.5  # seconds between checks of the closing flag while pumping


@dataclass(frozen=True)
class PodCandidate:
    """What choose_pod needs of a pod (the kube object is read by `candidate`)."""

    name: str
    ready: bool
    terminating: bool
    created: str  # RFC 3339; compares correctly as text


def candidate(pod: Any) -> PodCandidate:
    meta, status = pod.metadata, pod.status
    ready = any(
        c.type == "Ready" and c.status == "True" for c in (status.conditions if status else None) or []
    )
    created = meta.creation_timestamp
    return PodCandidate(
        name=meta.name,
        ready=ready and (status.phase if status else "") == "Running",
        terminating=meta.deletion_timestamp is not None,
        created=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
    )


def choose_pod(pods: Sequence[PodCandidate], *, namespace: str, vcluster: str) -> str:
    """The newest Ready, non-terminating control-plane pod (the one `vcluster connect` would pick)."""
    usable = [p for p in pods if p.ready and not p.terminating]
    if not usable:
        raise UnreachableError(
            f"no Ready control-plane pod of vCluster {namespace}/{vcluster} to port-forward to "
            f"({len(pods)} pod(s) with app=vcluster,release={vcluster})",
            hint="wait until the vCluster is Ready, or pass --vcluster-server URL",
        )
    return max(usable, key=lambda p: (p.created, p.name)).name


def handshake_status(reason: str) -> int | None:
    """The HTTP status in a websocket handshake error text ("Handshake status 403 Forbidden ...")."""
    found = re.search(r"Handshake status (\d{3})\b", reason)
    return int(found.group(1)) if found else None


def forbidden_hint(namespace: str) -> str:
    return f"ask for `create pods/portforward` in namespace {namespace}, or pass --vcluster-server URL"


@dataclass
class Forward:
    """A local listener forwarding to pod:port through the host API. Close it when done."""

    host: KubeSession
    namespace: str
    pod: str
    port: int = VIRTUAL_PORT
    local_port: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)
    _streams: list[Any] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.local_port}"

    def open_stream(self) -> Any:
        """One port-forward stream to the pod (raises ForbiddenError / UnreachableError / ...)."""
        from kubernetes.stream import portforward

        core = self.host.core
        target = Target("create", "pods/portforward", self.pod, self.namespace)

        def call() -> Any:
            from kubernetes.client.exceptions import ApiException

            try:
                return portforward(
                    core.connect_get_namespaced_pod_portforward,
                    self.pod,
                    self.namespace,
                    ports=str(self.port),
                    _request_timeout=OPEN_TIMEOUT,
                )
            except AttributeError as exc:
                # kubernetes client 36: a refused websocket handshake becomes ApiException(status=0,
                # body=None), whose handling then fails on body.decode(); recover the HTTP status.
                cause = exc.__context__
                if not isinstance(cause, ApiException):
                    raise
                status = handshake_status(str(cause.reason))
                raise ApiException(status=status or 0, reason=str(cause.reason)) from None

        try:
            return api_call(target, call, attempts=1)
        except ForbiddenError as exc:
            raise ForbiddenError(
                f"not allowed to create pods/portforward on pod {self.namespace}/{self.pod}",
                hint=forbidden_hint(self.namespace),
            ) from exc

    def start(self) -> Forward:
        self._close_stream(self._open_bounded())  # proves RBAC and the pod before we listen
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(IDLE_POLL)
        self._listener = listener
        self.local_port = listener.getsockname()[1]
        threading.Thread(target=self._accept, name="vcerts-port-forward", daemon=True).start()
        return self

    def _open_bounded(self) -> Any:
        """open_stream within OPEN_TIMEOUT: the client's websocket connect itself has no timeout."""
        outcome: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(self.open_stream())
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        worker = threading.Thread(target=run, name="vcerts-port-forward-open", daemon=True)
        worker.start()
        worker.join(OPEN_TIMEOUT)
        if failure:
            raise failure[0]
        if not outcome:
            raise UnreachableError(
                f"port-forward to pod {self.namespace}/{self.pod}:{self.port} did not open within "
                f"{OPEN_TIMEOUT:.0f}s",
                hint="check the host API server and the pod, or pass --vcluster-server URL",
            )
        return outcome[0]

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            self._close_stream(stream)

    def __enter__(self) -> Forward:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @staticmethod
    def _close_stream(stream: Any) -> None:
        with contextlib.suppress(Exception):
            stream.close()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="vcerts-port-forward-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            stream = self.open_stream()
        except VcertsError:
            conn.close()  # the client sees a closed connection, as with kubectl port-forward
            return
        with self._lock:
            self._streams.append(stream)
        remote: socket.socket = stream.socket(self.port)
        try:
            self._pump(conn, remote)
        finally:
            conn.close()
            self._close_stream(stream)
            with self._lock, contextlib.suppress(ValueError):
                self._streams.remove(stream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._closing.is_set():
            readable, _, _ = select.select(list(peers), [], [], IDLE_POLL)
            for src in readable:
                try:
                    data = src.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    peers[src].sendall(data)
                except OSError:
                    return


def control_plane_pods(host: KubeSession, *, namespace: str, vcluster: str) -> list[PodCandidate]:
    core = host.core
    pods = api_call(
        Target("list", "pods", namespace=namespace),
        lambda: core.list_namespaced_pod(
            namespace, label_selector=f"app=vcluster,release={vcluster}", **host.kwargs()
        ),
    )
    return [candidate(p) for p in pods.items]


def open_forward(host: KubeSession, *, namespace: str, vcluster: str, port: int = VIRTUAL_PORT) -> Forward:
    """Choose the pod, prove `pods/portforward` is allowed, listen on 127.0.0.1:<free port>."""
    try:
        pods = control_plane_pods(host, namespace=namespace, vcluster=vcluster)
    except NotFoundError:
        pods = []
    pod = choose_pod(pods, namespace=namespace, vcluster=vcluster)
    return Forward(host=host, namespace=namespace, pod=pod, port=port).start()
