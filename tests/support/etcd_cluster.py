"""A REAL etcd cluster of several members on loopback, one process per member, as the chart's NAME-etcd
StatefulSet (deployed etcd) and HA embedded etcd run one: every member is named after its pod, knows
every other member from the start (`--initial-cluster`, `--initial-cluster-state=new`, token = the
release, chart/templates/etcd-statefulset.yaml) and talks to them over peer TLS, client certificates
required on both sides and checked against the CA file the member read when it started.

What follows is etcd's own behaviour, not modelled here: a member restarted on its data rejoins; a
member that comes back with no data while the others run is refused ("member … has already been
bootstrapped") and exits; a cluster needs a majority of its members to serve reads and writes.
Members keep their ports for the cluster's lifetime, as a pod keeps its DNS name. Thread-safe.
Test-support code: only file paths go into the flags; nothing is printed or logged.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.controlplane import etcd_args, free_ports, spawn, stop_process
from tests.support.testbin import binary

LISTEN_TIMEOUT = 30.0


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    owner: str = ""  # the pod (uid) it runs for, "" when not running
    starts: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """Members `names` of one cluster (token `token`), logs and nothing else under `workdir`."""

    def __init__(self, names: Sequence[str], workdir: Path, *, token: str) -> None:
        ports = free_ports(3 * len(names))
        self.members = {name: Member(name, client_port=ports[3 * i], peer_port=ports[3 * i + 1],
                                     metrics_port=ports[3 * i + 2]) for i, name in enumerate(names)}
        self.workdir, self.token = workdir, token
        self._lock = threading.RLock()

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}=https://127.0.0.1:{m.peer_port}" for m in self.members.values())

    @property
    def endpoints(self) -> str:
        """Every member's client URL, as kube-apiserver's --etcd-servers takes them."""
        return ",".join(m.client_url for m in self.members.values())

    @property
    def starts(self) -> int:
        return sum(m.starts for m in self.members.values())

    def start(self, name: str, *, pki: Path, data_dir: Path, owner: str) -> Member:
        """(Re)start member `name` for `owner` with the certificates under `pki`/etcd and its data in
        `data_dir`; returns once it listens for clients (it serves once a majority runs). A member
        that exits at once (etcd refused to start) is left stopped: the caller sees `alive` False."""
        with self._lock:
            member = self.members[name]
            self._stop(member)
            logs = self.workdir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            member.process = spawn(binary("etcd"), etcd_args(
                pki.resolve(), data_dir.resolve(), member.client_port, member.peer_port, name=name,
                initial_cluster=self.initial_cluster, token=self.token, metrics_port=member.metrics_port),
                logs / f"{name}.log")
            member.owner, member.starts = owner, member.starts + 1
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while time.monotonic() < deadline and member.alive:
            try:
                socket.create_connection(("127.0.0.1", member.client_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        return member

    def ready(self, name: str) -> bool:
        """etcd's own /readyz of member `name` answers 200 (it serves reads and writes: a majority
        runs), as the chart's startup probe asks."""
        member = self.members[name]
        if not member.alive:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{member.metrics_port}/readyz",
                                        timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, name: str) -> None:
        with self._lock:
            self._stop(self.members[name])

    def stop_all(self) -> None:
        with self._lock:
            for member in self.members.values():
                self._stop(member)

    @staticmethod
    def _stop(member: Member) -> None:
        if member.process is not None:
            stop_process(member.process)
        member.process, member.owner = None, ""

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
