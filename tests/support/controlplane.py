"""A real etcd + kube-apiserver booted from a vCluster PKI directory, wired like vCluster's k8s distro.

`start_control_plane(pki_dir, workdir)` starts etcd with TLS (etcd/server.crt, etcd/peer.crt, client
certificates required and checked against etcd/ca.crt) and kube-apiserver with the flags of
loft-sh/vcluster `pkg/k8s/k8s.go`: client-ca.crt, apiserver.crt,
front-proxy-ca.crt / front-proxy-client.*, sa.pub / sa.key, etcd/ca.crt + apiserver-etcd-client.*.
Everything binds to 127.0.0.1 on free ports; data and logs stay under `workdir`. The call returns
once /readyz answers 200 (anonymous, verified against the serving CA) or raises after a bounded wait.

Used by the PKI proofs and by the control-plane emulator; keep this API stable:
    start_control_plane(pki_dir, workdir, *, etcd=None, apiserver=None) -> RunningControlPlane
    RunningControlPlane.server / .ca_file / .logs / .stop()

Test-support code: never prints or logs key material (only file paths go into the flags).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.support.polling import wait_until
from tests.support.testbin import binary

SERVICE_CIDR = "10.96.0.0/12"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
READY_TIMEOUT = 120.0  # seconds; a cold kube-apiserver start takes 5-20 s
STOP_TIMEOUT = 20.0


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (bound to port 0 together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class RunningControlPlane:
    server: str  # https://127.0.0.1:PORT
    ca_file: Path  # the CA that signs the serving certificate (server-ca.crt, = ca.crt unless split)
    logs: Path  # directory holding etcd.log and kube-apiserver.log
    etcd_endpoint: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Terminate kube-apiserver, then etcd, and wait for both."""
        for proc in reversed(self.processes):
            stop_process(proc)
        self.processes.clear()

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for name in ("etcd.log", "kube-apiserver.log"):
            path = self.logs / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def __enter__(self) -> RunningControlPlane:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def etcd_args(pki: Path, data_dir: Path, client_port: int, peer_port: int, *, name: str = "vcluster",
              initial_cluster: str | None = None, token: str | None = None,
              metrics_port: int | None = None) -> list[str]:
    """etcd's flags for a member `name` on loopback, TLS from `pki`/etcd; alone unless
    `initial_cluster` ("name=peer-url,…") and `token` name the cluster it bootstraps with; with
    `metrics_port`, /metrics, /livez and /readyz on plain HTTP there (the chart's probes use 2381)."""
    client, peer = f"https://127.0.0.1:{client_port}", f"https://127.0.0.1:{peer_port}"
    etcd = pki / "etcd"
    return [
        f"--name={name}", f"--data-dir={data_dir}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial_cluster or f'{name}={peer}'}", "--initial-cluster-state=new",
        *([f"--initial-cluster-token={token}"] if token else []),
        *([f"--listen-metrics-urls=http://127.0.0.1:{metrics_port}"] if metrics_port else []),
        f"--cert-file={etcd / 'server.crt'}", f"--key-file={etcd / 'server.key'}",
        "--client-cert-auth", f"--trusted-ca-file={etcd / 'ca.crt'}",
        f"--peer-cert-file={etcd / 'peer.crt'}", f"--peer-key-file={etcd / 'peer.key'}",
        "--peer-client-cert-auth", f"--peer-trusted-ca-file={etcd / 'ca.crt'}",
        "--unsafe-no-fsync",  # throw-away data; fsync only slows the tests
    ]


def _apiserver_args(pki: Path, etcd_endpoint: str, port: int, workdir: Path) -> list[str]:
    return [
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--etcd-servers={etcd_endpoint}",
        f"--etcd-cafile={pki / 'etcd' / 'ca.crt'}",
        f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
        f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
        f"--client-ca-file={pki / 'client-ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        # The lease reconciler would publish 127.0.0.1 as the kubernetes endpoint, which is invalid.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
    ]


def spawn(executable: Path, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """`executable ARGS` in its own session, output appended to `log`, no stdin."""
    with log.open("ab") as out:
        return subprocess.Popen([str(executable), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it is still there after STOP_TIMEOUT; waits for it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _serving_ca(pki: Path) -> Path:
    server_ca = pki / "server-ca.crt"
    return server_ca if server_ca.exists() else pki / "ca.crt"


def _ready(server: str, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def start_control_plane(pki_dir: Path, workdir: Path, *, etcd: Path | None = None,
                        apiserver: Path | None = None, timeout: float = READY_TIMEOUT,
                        extra_apiserver_args: Sequence[str] = (),
                        etcd_endpoint: str | None = None) -> RunningControlPlane:
    """Start etcd and kube-apiserver from `pki_dir` (vCluster's /data/pki layout); wait for /readyz.

    Reusing the same `workdir` keeps the etcd data (objects survive a restart with a new PKI).
    `extra_apiserver_args` are appended (a later flag wins for single-valued flags). With
    `etcd_endpoint` (one or more client URLs) no etcd is started: kube-apiserver uses those
    (deployed etcd, an HA member: `tests.support.etcd_cluster`).
    """
    pki = pki_dir.resolve()
    workdir = workdir.resolve()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    client_port, peer_port, api_port = free_ports(3)
    external = etcd_endpoint is not None
    etcd_endpoint = etcd_endpoint or f"https://127.0.0.1:{client_port}"
    plane = RunningControlPlane(server=f"https://127.0.0.1:{api_port}", ca_file=_serving_ca(pki), logs=logs,
                                etcd_endpoint=etcd_endpoint)
    names = ("kube-apiserver",) if external else ("etcd", "kube-apiserver")
    try:
        if not external:
            plane.processes.append(spawn(etcd or binary("etcd"),
                                         etcd_args(pki, workdir / "etcd-data", client_port, peer_port),
                                         logs / "etcd.log"))
        plane.processes.append(spawn(
            apiserver or binary("kube-apiserver"),
            [*_apiserver_args(pki, etcd_endpoint, api_port, workdir), *extra_apiserver_args],
            logs / "kube-apiserver.log"))
        def ready() -> bool:
            exited = [name for name, p in zip(names, plane.processes, strict=False) if p.poll() is not None]
            if exited:
                raise RuntimeError(
                    f"control plane from {pki}: {', '.join(exited)} exited\n{plane.log_tail()}")
            return _ready(plane.server, plane.ca_file)

        wait_until(ready, timeout=timeout, interval=0.5, fail=lambda: RuntimeError(
            f"control plane from {pki}: not ready after {timeout:.0f}s\n{plane.log_tail()}"))
    except BaseException:
        with contextlib.suppress(Exception):
            plane.stop()
        raise
    return plane
