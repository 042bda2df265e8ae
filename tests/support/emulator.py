"""A vCluster control-plane emulator: plays vCluster's syncer for a fixture vCluster on the kwok host.

kwok runs no containers, so nothing on the host uses the certificates `kubectl vcerts` writes. This
closes the gap. `Emulator(kubeconfig, namespace, name, workdir)` polls the pods
`app=vcluster,release=NAME`; for every new control-plane pod (new UID) that is Running — each HA
replica and each pod of a surge rollout on its own, all at once on threads of their own (so their
writes of the secret race as the real replicas' do) — it does what vCluster does at start-up
(loft-sh/vcluster `pkg/certs/ensure.go`, `pkg/util/kubeconfig/kubeconfig.go`):

  1. read `NAME-certs` (missing → generate a PKI with the REAL kubeadm and create the secret, as
     `EnsureCerts` does);
  2. vCluster >= 0.33: when a non-CA `.crt` key is missing, unparseable or ends within 90 days, delete
     every leaf and kubeconfig (keep CA files and sa.*), re-create them with the REAL
     `kubeadm init phase certs all` / `kubeconfig …` ("create if not exists", vCluster's inputs from
     vc-config-NAME), rename super-admin.conf over admin.conf, and merge-patch the secret's data
     without a resourceVersion precondition (`SyncSecret`);
  3. download the secret into the PKI directory, which lives as long as the pod's `data` volume (its
     PVC: kept per claim; an emptyDir: this pod only — `volume_key`) (certMap
     paths, other keys under their name, written over what is there; an empty certMap value fails
     with "secret is missing KEY"; server-ca/client-ca copies of ca.* only where no file exists, so a
     stale copy survives; in the k3s split the renewal re-signs apiserver.crt with server-ca and makes
     the kubeconfigs trust it, as `ensureAPIServerServingCertSignedByServerCA` and
     `ensureKubeConfigsTrustServerCA` do);
  4. start a REAL etcd + kube-apiserver from that directory with the k8s distro's flags on free
     loopback ports (`tests.support.controlplane.start_control_plane`); etcd data lives on the same
     volume, so objects survive a restart on a PVC and not on an emptyDir. With HA embedded etcd the
     replicas' etcds are the members of ONE real cluster (`tests.support.etcd_cluster`: each pod's
     member on its volume with the certificates it downloaded; a majority needed). With deployed etcd
     (`controlPlane.backingStore.etcd.deploy`) every plane's kube-apiserver uses the NAME-etcd
     members instead (`Store`: one real member per NAME-etcd pod, one cluster, NAME-certs' etcd files
     rewritten in place when the secret changes, as the pods' secret volume is; a member starts with
     its pod on that pod's volume, and such pods labelled for emulated readiness turn Ready when
     etcd's /readyz answers, the chart's startup probe); in front of it the syncer's
     API (`tests.support.syncer_proxy`): its own in-memory ECDSA serving certificate signed by the
     first certificate of server-ca.crt, client certificates checked against client-ca.crt;
  5. publish `kube-root-ca.crt` (= server-ca.crt) in kube-system, default and kube-public, as the
     controller-manager's root-ca publisher does, and for private nodes `kube-system/kubeadm-config`
     whose controlPlaneEndpoint is the reachable address (the pro build writes it; not in OSS);
  6. play the kubelet's port-forward to the pod's 8443 (`tests.support.pod_forwards`: a kwok
     PortForward to this pod's syncer) and the Service NAME: a stable loopback port (`Forwarder`,
     plain TCP, `service`) in front of the newest serving syncer, as the Service is in front of the
     Ready pods, so a kubeconfig saved before a restart still points at the right place;
     the leader writes `vc-NAME` as vCluster does (`tests.support.kubeconfig_export`: server
     `https://localhost:8443` unless exportKubeConfig.server, ownerReference to the Service), once,
     `export_delay` seconds after it began to lead (its controllers start first), retried every 10 s
     on error; `wait_exported` waits for it. With HA the leader is the serving pod that has served
     longest (the first to take the Lease keeps it); without HA vCluster elects none, so every pod
     writes (during a surge rollout both pods do);
  7. pods labelled `EMULATED_READINESS_LABEL` (fixture `emulated_readiness=True`; a kwok Stage keeps
     them Running and not Ready) are reported Ready once their plane serves, CrashLoopBackOff when it
     cannot start, as the kubelet's readiness probe and restarts would show them;
  8. with `watcher_interval`, vCluster >= 0.34's cert watcher runs in every serving pod
     (`tests.support.cert_watcher`: disk leaves within 90 days → Lease with HA only, re-issue from the
     secret, unguarded merge patch, pod-template rollout).

When the pod goes away (deleted or terminating) its processes stop; a new pod starts them again from
whatever the secret holds then. Differences from vCluster, on purpose:
  * the syncer is an HTTP front that authenticates and passes requests on, not vCluster's proxy (see
    `tests.support.syncer_proxy` for how it differs); leader election is played by the rule above,
    not by a Lease;
  * a control plane that could not work is not started: a serving CA that has expired (vCluster's
    syncer fails with "expired CA certificate: …") or an expired certificate etcd/kube-apiserver need.
    The generation is recorded as crashed with that reason — this saves the minutes a doomed start
    would wait. Like the kubelet, the emulator then starts the same pod's container again after a
    back-off that doubles (`crash_backoff`, capped at 16 times it; the kubelet: 10 s up to 5 min):
    the same volume, the secret as it is then, a restart count and a container start time in the
    pod's status, the pod's own start time unchanged;
  * pods start the moment kwok schedules them (no image pull, no probe delays), so a restarted
    etcd member is back within seconds: a stall a real restart makes visible can stay unseen;
  * no kube-controller-manager/scheduler run in the virtual cluster (nodes are plain objects).

Use it as a context manager or `start()`/`stop()` (a daemon thread), or as a process for the demo:
`python -m tests.support.emulator --kubeconfig K -n NS NAME [--workdir DIR]` (SIGTERM/SIGINT stop it).
Test-support code; never prints or logs key material.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import yaml
from cryptography import x509

from kubectl_vcerts.kube.client import KubeSession, KubeTarget, connect
from tests.support.cert_watcher import CertWatcher
from tests.support.controlplane import RunningControlPlane, start_control_plane
from tests.support.devcluster import EMULATED_READINESS_LABEL
from tests.support.etcd_cluster import EtcdCluster
from tests.support.kubeadm_pki import (
    FILE_TO_KEY,
    KEY_TO_FILE,
    KUBECONFIG_SERVER,
    _run_kubeadm,
    first_service_ip,
    generate_vcluster_pki,
    kubeadm_config,
)
from tests.support.kubeconfig_export import EXPORT_RETRY, service_owner, write_kubeconfig_secret
from tests.support.pod_forwards import PodForwards
from tests.support.syncer_proxy import SyncerProxy
from tests.support.testbin import binary

log = logging.getLogger("vcerts.emulator")

RENEWAL_THRESHOLD = timedelta(days=90)  # pkg/util/certhelper: IsCertExpired ⇔ ≤ 90 days left
RENEWAL_SINCE = (0, 33)  # start-up renewal of expiring leaves (#3626)
WATCHER_SINCE = (0, 34)  # the cert watcher
POLL_SECONDS = 0.3
CRASH_BACKOFF = 2.0  # seconds before a crashed start-up runs again in the same pod (kubelet: 10 s)
CRASH_BACKOFF_CAP = 16  # the back-off stops doubling at 16 times the first (kubelet: 300 s / 10 s)
START_TIMEOUT = 90.0
EXPORT_DELAY = 1.0  # seconds from leading to writing vc-NAME (vCluster: its controllers start first)
# Files vCluster's removeFiles keeps on a leaf renewal: sa.* and CA files (basename ca.* or *-ca.*).
ROOT_CA_NAMESPACES = ("kube-system", "default", "kube-public")
# Certificates etcd + kube-apiserver cannot work with once expired.
NEEDED_LEAVES = ("apiserver.crt", "apiserver-etcd-client.crt", "etcd-server.crt", "front-proxy-client.crt")


@dataclass
class Generation:
    """One start of the control plane for one pod UID."""

    number: int
    pod_uid: str
    pod_name: str
    server: str | None = None  # https://127.0.0.1:PORT once serving: the Service in front of the syncer
    apiserver: str | None = None  # the pod's kube-apiserver itself (behind the syncer)
    ca_file: Path | None = None
    volume: str = ""  # where its /data lives: "claim-<PVC>" (kept) or "pod-<uid>" (an emptyDir)
    renewed: tuple[str, ...] = ()  # secret keys the start-up renewal re-issued
    generated: bool = False  # NAME-certs was missing and got created
    crashed: str | None = None  # why it could not start
    restarts: int = 0  # earlier container starts of the same pod that crashed (the kubelet's count)
    began: datetime = field(default_factory=lambda: datetime.now(UTC))  # this container start
    plane: RunningControlPlane | None = field(default=None, repr=False)
    syncer: SyncerProxy | None = field(default=None, repr=False)
    watcher: CertWatcher | None = field(default=None, repr=False)  # vCluster >= 0.34, when asked for
    member: str | None = None  # its member of the HA embedded etcd cluster
    served_at: float | None = None  # monotonic time it began to serve
    leading_since: float | None = None  # monotonic time it became the leader
    export_at: float = 0.0  # monotonic time of its next write of vc-NAME, once leading
    exported: datetime | None = None  # when it wrote vc-NAME
    admin_conf: bytes = field(default=b"", repr=False)  # the admin kubeconfig it started with
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)  # chart values it started with

    @property
    def serving(self) -> bool:
        return self.server is not None and self.crashed is None


def _replicas(values: Mapping[str, Any]) -> int:
    """controlPlane.statefulSet.highAvailability.replicas (1 when unset)."""
    plane = values.get("controlPlane") or {}
    return int(((plane.get("statefulSet") or {}).get("highAvailability") or {}).get("replicas") or 1)


def _version_tuple(version: str) -> tuple[int, ...]:
    core = version.lstrip("v").split("-")[0]
    return tuple(int(p) for p in core.split(".") if p.isdigit())


def _is_ca_file(path: str) -> bool:
    base = Path(path).name
    return base in ("ca.crt", "ca.key") or base.endswith(("-ca.crt", "-ca.key"))


def _kept_on_renewal(path: str) -> bool:
    return Path(path).name in ("sa.key", "sa.pub") or _is_ca_file(path)


def expiring_leaves(data: Mapping[str, bytes], *, now: datetime) -> list[str]:
    """vCluster's certsExpiringSoon: non-CA .crt certMap keys that are missing, unparseable or ≤ 90 days."""
    out = []
    for path, key in FILE_TO_KEY.items():
        if not path.endswith(".crt") or _is_ca_file(path):
            continue
        raw = data.get(key)
        try:
            certs = x509.load_pem_x509_certificates(raw) if raw else []
        except ValueError:
            certs = []
        # every certificate of the value counts (certhelper.ParseCertsPEM), not only the first
        if not certs or any(c.not_valid_after_utc - now <= RENEWAL_THRESHOLD for c in certs):
            out.append(key)
    return out


def why_it_cannot_serve(data: Mapping[str, bytes], pki: Path, *, now: datetime) -> str | None:
    """The reason the real control plane would not work (see the module docstring), or None."""
    server_ca = (pki / "server-ca.crt").read_bytes() if (pki / "server-ca.crt").exists() else b""
    try:
        ca = x509.load_pem_x509_certificate(server_ca)
    except ValueError:
        return "cannot parse /data/pki/server-ca.crt"
    if ca.not_valid_after_utc <= now:
        return "expired CA certificate: /data/pki/server-ca.crt"
    for key in NEEDED_LEAVES:
        try:
            cert = x509.load_pem_x509_certificate(data.get(key) or b"")
        except ValueError:
            return f"cannot parse {key}"
        if cert.not_valid_after_utc <= now:
            return f"x509: certificate has expired: /data/pki/{KEY_TO_FILE[key]}"
    return None


def renew_on_disk(
    pki: Path, *, name: str, namespace: str, values: Mapping[str, Any], service_cidr: str
) -> None:
    """removeFiles(keep SA + CA) then generateCertificates with the real kubeadm, in `pki`."""
    for path in sorted(pki.rglob("*")):
        if path.is_file() and not _kept_on_renewal(str(path.relative_to(pki))):
            path.unlink()
    advanced = (values.get("networking") or {}).get("advanced") or {}
    proxy = (values.get("controlPlane") or {}).get("proxy") or {}
    config = pki.parent / "kubeadm-renew.yaml"
    config.write_text(
        kubeadm_config(
            name=name,
            namespace=namespace,
            cert_dir=pki,
            service_cidr=service_cidr,
            cluster_domain=advanced.get("clusterDomain") or "cluster.local",
            extra_sans=proxy.get("extraSANs") or (),
        )
    )
    kubeadm = binary("kubeadm")
    _run_kubeadm(kubeadm, "init", "phase", "certs", "all", "--config", str(config))
    for phase in ("admin", "super-admin", "controller-manager", "scheduler"):
        _run_kubeadm(
            kubeadm,
            "init",
            "phase",
            "kubeconfig",
            phase,
            "--config",
            str(config),
            "--kubeconfig-dir",
            str(pki),
        )
    (pki / "super-admin.conf").replace(pki / "admin.conf")
    local = f"https://{first_service_ip(service_cidr)}:6443"
    for conf in ("controller-manager.conf", "scheduler.conf"):
        path = pki / conf
        path.write_text(path.read_text().replace(f"server: {local}", f"server: {KUBECONFIG_SERVER}"))
    split_ca_cert(pki)
    if is_split_on_disk(pki):
        _serve_from_server_ca(kubeadm, config, pki)


def _first_pem_block(data: bytes) -> tuple[str, bytes] | None:
    """(type, whole block) of the first PEM block, as Go's pem.Decode finds it."""
    match = re.search(rb"-----BEGIN ([^-]+)-----\r?\n.*?-----END \1-----\r?\n?", data, re.S)
    return (match.group(1).decode(), match.group(0)) if match else None


def split_ca_cert(pki: Path) -> None:
    """splitCACert: the first PEM block of ca.crt must be a CERTIFICATE; it (and ca.key) is copied to
    server-ca.* and client-ca.* only when those files do not exist (a stale copy on a PVC survives)."""
    block = _first_pem_block((pki / "ca.crt").read_bytes())
    if block is None:
        raise RuntimeError("split ca cert: no PEM data found")
    if block[0] != "CERTIFICATE":
        raise RuntimeError("split ca cert: first PEM block is not a certificate")
    for copy in ("server-ca", "client-ca"):
        if not (pki / f"{copy}.crt").exists():
            (pki / f"{copy}.crt").write_bytes(block[1])
        if not (pki / f"{copy}.key").exists():
            (pki / f"{copy}.key").write_bytes((pki / "ca.key").read_bytes())


def is_split_on_disk(pki: Path) -> bool:
    """equalFirstPEMCertificate(ca.crt, server-ca.crt) is false: the k3s split."""
    ca, server = (_first_pem_block((pki / name).read_bytes()) for name in ("ca.crt", "server-ca.crt"))
    if ca is None or server is None:
        return (pki / "ca.crt").read_bytes() != (pki / "server-ca.crt").read_bytes()
    return x509.load_pem_x509_certificate(ca[1]) != x509.load_pem_x509_certificate(server[1])


def _serve_from_server_ca(kubeadm: Path, config: Path, pki: Path) -> None:
    """ensureAPIServerServingCertSignedByServerCA + ensureKubeConfigsTrustServerCA: apiserver.crt
    re-created from server-ca with kubeadm's profile, and the three kubeconfigs trusting server-ca."""
    with tempfile.TemporaryDirectory(prefix="vcerts-server-ca-") as tmp:
        alt = Path(tmp)
        (alt / "ca.crt").write_bytes((pki / "server-ca.crt").read_bytes())
        (alt / "ca.key").write_bytes((pki / "server-ca.key").read_bytes())
        alt_config = alt / "kubeadm.yaml"
        alt_config.write_text(config.read_text().replace(str(pki), str(alt)))
        _run_kubeadm(kubeadm, "init", "phase", "certs", "apiserver", "--config", str(alt_config))
        for ext in ("crt", "key"):
            (pki / f"apiserver.{ext}").write_bytes((alt / f"apiserver.{ext}").read_bytes())
    server_ca = base64.b64encode((pki / "server-ca.crt").read_bytes()).decode()
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf"):
        doc = yaml.safe_load((pki / conf).read_text())
        for cluster in doc.get("clusters") or []:
            cluster["cluster"].pop("certificate-authority", None)
            cluster["cluster"]["certificate-authority-data"] = server_ca
        (pki / conf).write_text(yaml.safe_dump(doc, sort_keys=False))


def read_disk(pki: Path) -> dict[str, bytes]:
    """SyncSecret's data: exactly the certMap files present on disk."""
    return {key: (pki / path).read_bytes() for path, key in FILE_TO_KEY.items() if (pki / path).exists()}


def download(data: Mapping[str, bytes], pki: Path) -> None:
    """downloadCertsFromSecret + splitCACert: every entry written over what is there (certMap keys to
    their paths, others under their key), an empty certMap value fails start-up with vCluster's own
    message, and the CA copies are made only where no file exists."""
    pki.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        rel = KEY_TO_FILE.get(key)
        if rel is not None and not value:
            raise RuntimeError(f"secret is missing {key}")
        path = pki / (rel or key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
        path.chmod(0o600)
    split_ca_cert(pki)


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def volume_key(pod: Any) -> str:
    """Where the pod's /data lives: its `data` PersistentVolumeClaim (a StatefulSet's claim template
    gives every replica its own, kept across restarts) or else an emptyDir (this pod only)."""
    for volume in pod.spec.volumes or ():
        if volume.name == "data" and volume.persistent_volume_claim is not None:
            return f"claim-{volume.persistent_volume_claim.claim_name}"
    return f"pod-{pod.metadata.uid}"


def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def readiness_status(pod: Any, *, serving: bool, restarts: int = 0, began: datetime | None = None,
                     previous: datetime | None = None) -> dict[str, Any]:
    """A status patch as the kubelet writes it: Ready with the containers running since `began` (this
    container start), or not Ready with them crash-looping (waiting, the start that crashed as the last
    state); `restarts` earlier starts crashed, the last of them began at `previous`."""
    now = datetime.now(UTC)
    began = began or now
    flag = "True" if serving else "False"
    conditions = [{"type": kind, "status": flag, "lastTransitionTime": _rfc3339(now),
                   **({} if serving else {"reason": "ContainersNotReady"})}
                  for kind in ("Ready", "ContainersReady")]
    if serving:
        state: dict[str, Any] = {"running": {"startedAt": _rfc3339(began)}}
        count, last = restarts, previous
    else:
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": "emulated: the plane cannot start"}}
        count, last = restarts + 1, began
    last_state = ({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": _rfc3339(last),
                                  "finishedAt": _rfc3339(now)}} if last is not None and count else {})
    statuses = [{"name": c.name, "image": c.image, "ready": serving, "started": serving,
                 "restartCount": count, "state": state, "lastState": last_state}
                for c in pod.spec.containers]
    # the uid makes the patch apply to this pod only, never to a successor of the same name that a late
    # report would otherwise mark with the old start
    return {"metadata": {"uid": pod.metadata.uid},
            "status": {"conditions": conditions, "containerStatuses": statuses}}


class Store:
    """Deployed etcd (`NAME-etcd`): one REAL etcd member per NAME-etcd pod, all of one cluster
    (`tests.support.etcd_cluster`), which every emulated control plane uses.

    The members' certificate files are NAME-certs' etcd entries, rewritten in place whenever the secret
    changes (the etcd pods mount NAME-certs as a secret volume, which the kubelet updates); etcd reads
    its key pair at every handshake but its trusted CA only at start. A member starts when its pod
    appears (a new uid: the pod was replaced) on that pod's `data` volume — its PVC, kept per claim, or
    an emptyDir, new with every pod — and stops when its pod goes (chart: etcd-statefulset.yaml). What
    etcd does then is etcd's: a member back on its data rejoins, one back without data while the
    others run is refused, a majority is needed to serve."""

    FILES: ClassVar[dict[str, str]] = {
        "etcd-ca.crt": "ca.crt", "etcd-server.crt": "server.crt", "etcd-server.key": "server.key",
        "etcd-peer.crt": "peer.crt", "etcd-peer.key": "peer.key"}

    def __init__(self, session: KubeSession, namespace: str, name: str, workdir: Path, *,
                 replicas: int = 1) -> None:
        self.session, self.namespace, self.name, self.workdir = session, namespace, name, workdir
        self.cluster = EtcdCluster([f"{name}-etcd-{i}" for i in range(replicas)], workdir, token=name)
        self._version = ""
        self._lock = threading.RLock()
        self._reported: set[str] = set()  # pod uids reported Ready

    @property
    def generation(self) -> int:
        """How many times a member was started."""
        return self.cluster.starts

    def _pods(self) -> dict[str, Any]:
        pods = self.session.core.list_namespaced_pod(
            self.namespace, label_selector=f"app=vcluster-etcd,release={self.name}").items
        return {p.metadata.name: p for p in pods if p.metadata.deletion_timestamp is None
                and (p.status.phase if p.status else "") == "Running"}

    def _refresh_files(self) -> None:
        secret = self.session.core.read_namespaced_secret(f"{self.name}-certs", self.namespace)
        if secret.metadata.resource_version == self._version:
            return
        self._version = secret.metadata.resource_version
        target = self.workdir / "pki" / "etcd"
        target.mkdir(parents=True, exist_ok=True)
        for key, file in self.FILES.items():
            value = base64.b64decode((secret.data or {}).get(key) or "")
            if value:  # swapped whole, as the kubelet swaps a secret volume (etcd may read at any time)
                staged = target / f".{file}.new"
                staged.touch(mode=0o600, exist_ok=True)
                staged.write_bytes(value)
                staged.replace(target / file)

    def endpoint(self) -> str:
        """The addresses for a starting plane, once the etcd pods are there (while they are being
        replaced none is, and a plane started against the old members would fail where the real one
        retries)."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self._pods() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self.tend()
        return self.cluster.endpoints

    def tend(self) -> None:
        """Follow the secret (files in place) and the etcd pods (members stop with their pod and start
        with a new one)."""
        with self._lock:
            self._refresh_files()
            pods = self._pods()
            for member in self.cluster.members.values():
                pod = pods.get(member.name)
                if member.owner and (pod is None or pod.metadata.uid != member.owner):
                    self.cluster.stop(member.name)
            for name, pod in pods.items():
                wanted = self.cluster.members.get(name)
                if wanted is not None and wanted.owner != pod.metadata.uid:
                    self.cluster.start(name, pki=self.workdir / "pki", owner=pod.metadata.uid,
                                       data_dir=self.workdir / "volumes" / volume_key(pod) / "etcd-data")
            for name, pod in pods.items():
                self._report_ready(name, pod)

    def _report_ready(self, name: str, pod: Any) -> None:
        """A pod labelled for emulated readiness turns Ready once its member's /readyz answers (the
        chart's startup probe; no readiness probe after it, so it stays Ready)."""
        uid = pod.metadata.uid
        if EMULATED_READINESS_LABEL not in (pod.metadata.labels or {}) or uid in self._reported:
            return
        member = self.cluster.members.get(name)
        if member is None or member.owner != uid or not self.cluster.ready(name):
            return
        with contextlib.suppress(Exception):  # the pod may be gone already
            self.session.core.patch_namespaced_pod_status(name, self.namespace,
                                                          readiness_status(pod, serving=True))
            self._reported.add(uid)

    def stop(self) -> None:
        self.cluster.stop_all()


class Forwarder:
    """A stable loopback address in front of the serving syncer, like the Service NAME (443 → 8443) in
    front of the Ready pods: plain TCP, so TLS is end-to-end with the syncer. A new backend takes the new
    connections; open ones stay with theirs until it stops (`drop`). Without a backend, connections are
    closed at once (what a client of a Service without endpoints sees)."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.backend: int | None = None
        self._open: dict[socket.socket, int] = {}  # open socket -> the backend port it belongs to
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="emulator-forwarder", daemon=True).start()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def set_backend(self, port: int | None) -> None:
        with self._lock:
            self.backend = port

    def drop(self, port: int | None = None) -> None:
        """Close the connections to backend `port` (every one when None): it is stopping."""
        with self._lock:
            stale = [sock for sock, backend in self._open.items() if port is None or backend == port]
            for sock in stale:
                del self._open[sock]
        for sock in stale:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self.set_backend(None)
        self.drop()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                backend = self.backend
            if backend is None:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", backend), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update({client: backend, upstream: backend})
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.pop(src, None)
                self._open.pop(dst, None)


class Emulator:
    """Plays vCluster's control plane for NAME in NAMESPACE of the host cluster (see module docstring)."""

    def __init__(
        self,
        kubeconfig: Path | str,
        namespace: str,
        name: str,
        *,
        workdir: Path | None = None,
        poll_seconds: float = POLL_SECONDS,
        watcher_interval: float | None = None,
        crash_backoff: float = CRASH_BACKOFF,
        export_delay: float = EXPORT_DELAY,
        pod_forwards: bool = True,
    ) -> None:
        """`watcher_interval`: run vCluster's cert watcher (>= 0.34) in every pod, ticking that often
        (seconds; vCluster: a day). None: no watcher. `crash_backoff`: seconds before a crashed
        start-up is tried again in the same pod, doubled after each crash (see the module docstring).
        `export_delay`: seconds from leading to writing vc-NAME. `pod_forwards=False`: a kubelet that
        forwards nothing (pods/portforward to the pods fails)."""
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.name = name
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"vcerts-emu-{name}-"))
        self.poll_seconds = poll_seconds
        self.watcher_interval = watcher_interval
        self.crash_backoff = crash_backoff
        self.export_delay = export_delay
        self._pod_forwards = pod_forwards
        self._forwards: PodForwards | None = None
        self.generations: list[Generation] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: KubeSession | None = None
        self._handled: set[str] = set()  # pod uids whose start-up ran
        self._starting: set[str] = set()  # pod uids whose start-up runs now (each on its own thread)
        self._starters: list[threading.Thread] = []
        # pod uid -> (its generation that crashed last, when the kubelet starts it again)
        self._crash_loops: dict[str, tuple[Generation, float]] = {}
        self._store: Store | None = None  # deployed etcd, when the vCluster has it
        self._members: EtcdCluster | None = None  # HA embedded etcd: one member per replica
        self.forwarder: Forwarder | None = None

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> Emulator:
        self._session = connect(KubeTarget(kubeconfig=str(self.kubeconfig), namespace=self.namespace))
        self.forwarder = Forwarder()
        if self._pod_forwards:
            self._forwards = PodForwards(self._session, self.namespace)
        self._thread = threading.Thread(target=self._run, name=f"emulator-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT + 30)
        for starter in list(self._starters):  # a start under way finishes first
            starter.join(timeout=START_TIMEOUT + 30)
        self._stop_all()
        if self.forwarder is not None:
            self.forwarder.close()
        if self._session is not None:
            self._session.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def host_session(self) -> KubeSession:
        """The emulator's own session to the host cluster."""
        assert self._session is not None, "start the emulator first"
        return self._session

    @property
    def service(self) -> str:
        """https://127.0.0.1:PORT: the Service NAME in front of the serving syncers, reachable from here."""
        assert self.forwarder is not None, "start the emulator first"
        return self.forwarder.server

    @property
    def store(self) -> Store | None:
        """Deployed etcd, once a plane of a vCluster with it started."""
        return self._store

    def wait_for(self, *, after: int = 0, timeout: float = START_TIMEOUT, serving: bool = True) -> Generation:
        """The newest generation numbered > `after` that serves (with `serving=False`: that finished
        starting, serving or crashed); raises TimeoutError with what happened otherwise. A crashed
        start-up is not the end (the pod's container is started again), so only the time is."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done = [g for g in self.generations if g.number > after
                        and (g.serving or (g.crashed and not serving))]
                if done:
                    return done[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    crashes = [f"#{g.number} {g.pod_name}: {g.crashed}" for g in self.generations
                               if g.number > after and g.crashed][-3:]
                    raise TimeoutError(
                        f"no emulated control plane after #{after} within {timeout:.0f}s; "
                        f"crashed: {crashes}; errors: {self.errors[-3:]}"
                    )
                self._cond.wait(min(left, 1.0))

    def wait_exported(self, *, after: int = 0, timeout: float = START_TIMEOUT) -> Generation:
        """The newest generation numbered > `after` that wrote vc-NAME as the leader; TimeoutError
        otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done = [g for g in self.generations if g.number > after and g.exported is not None]
                if done:
                    return done[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no leader after #{after} wrote vc-{self.name} within "
                                       f"{timeout:.0f}s; errors: {self.errors[-3:]}")
                self._cond.wait(min(left, 1.0))

    # ---------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep playing; tests read .errors
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                with self._cond:
                    self.errors.append(message)
                    self._cond.notify_all()
                log.warning("emulator %s: %s", self.name, message)
            self._stop.wait(self.poll_seconds)

    def _pods(self) -> list[Any]:
        assert self._session is not None
        pods = self._session.core.list_namespaced_pod(
            self.namespace, label_selector=f"app=vcluster,release={self.name}"
        ).items
        return sorted(pods, key=lambda p: p.metadata.name)

    def _tick(self) -> None:
        pods = self._pods()
        live = {
            p.metadata.uid: p
            for p in pods
            if p.metadata.deletion_timestamp is None and (p.status.phase if p.status else "") == "Running"
        }
        for gen in self._running():
            if gen.pod_uid not in live:  # its pod was deleted: its processes end with it
                self._stop_generation(gen)
        if self._store is not None:
            self._store.tend()
        with self._cond:
            for uid in [uid for uid in self._crash_loops if uid not in live]:
                del self._crash_loops[uid]
            # every pod its own start-up, all at once (HA replicas, a surge rollout)
            for uid, pod in live.items():
                if uid in self._starting:
                    continue
                if uid not in self._handled:
                    self._handled.add(uid)
                    self._spawn(pod, None)
                elif uid in self._crash_loops and self._crash_loops[uid][1] <= time.monotonic():
                    self._spawn(pod, self._crash_loops.pop(uid)[0])
            self._starters = [t for t in self._starters if t.is_alive()]
        self._lead()

    def _lead(self) -> None:
        """Who writes vc-NAME: with HA (replicas > 1) the leader only, without HA every pod (vCluster
        elects no leader then: StartLeaderElection); each once, `export_delay` after it began to lead,
        then every EXPORT_RETRY seconds until a write succeeds."""
        serving = sorted((g for g in self._running() if g.serving and g.served_at is not None),
                         key=lambda g: g.served_at or 0.0)
        if not serving:
            return
        leaders = serving[:1] if _replicas(serving[0].values) > 1 else serving
        assert self._session is not None
        for leader in leaders:
            now = time.monotonic()
            if leader.leading_since is None:
                leader.leading_since, leader.export_at = now, now + self.export_delay
            if leader.exported is not None or now < leader.export_at:
                continue
            try:
                write_kubeconfig_secret(self._session, self.namespace, self.name, leader.admin_conf,
                                        leader.values)
            except Exception:
                leader.export_at = now + EXPORT_RETRY
                raise  # _run records it
            with self._cond:
                leader.exported = datetime.now(UTC)
                self._cond.notify_all()

    def _spawn(self, pod: Any, after: Generation | None) -> None:
        """A start-up of `pod` on a thread of its own (the caller holds `_cond`): the replicas of a
        StatefulSet with podManagementPolicy Parallel start together, and one member of an etcd
        cluster cannot serve before the others run."""
        uid = pod.metadata.uid
        self._starting.add(uid)

        def run() -> None:
            try:
                self._start_generation(pod, after=after)
            except Exception as exc:  # keep playing; tests read .errors
                with self._cond:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                with self._cond:
                    self._starting.discard(uid)
                    self._cond.notify_all()

        thread = threading.Thread(target=run, name=f"emulator-start-{pod.metadata.name}", daemon=True)
        self._starters.append(thread)
        thread.start()

    def _running(self) -> list[Generation]:
        with self._cond:
            return [g for g in self.generations if g.plane is not None]

    def _route(self) -> None:
        """The Service: new connections go to the newest serving plane whose pod is there."""
        serving = [g for g in self._running() if g.serving and g.syncer is not None]
        if self.forwarder is not None:
            self.forwarder.set_backend(serving[-1].syncer.port if serving and serving[-1].syncer else None)

    def _stop_generation(self, gen: Generation) -> None:
        if gen.watcher is not None:  # first: one past its read of the secret finishes its write
            gen.watcher.stop()
        syncer, plane = gen.syncer, gen.plane
        gen.syncer, gen.plane = None, None
        self._route()
        if self.forwarder is not None and syncer is not None:
            self.forwarder.drop(syncer.port)
        if self._forwards is not None and syncer is not None:
            with contextlib.suppress(Exception):  # the cluster may be going away with the test
                self._forwards.withdraw(gen.pod_name, syncer.port)
        if syncer is not None:
            syncer.stop()
        if plane is not None:
            plane.stop()
        self._stop_member(gen)

    def _stop_all(self) -> None:
        for gen in self._running():
            self._stop_generation(gen)
        if self._store is not None:
            self._store.stop()
        if self._members is not None:
            self._members.stop_all()

    # ---------------------------------------------------------------------------- start-up
    def _read_secret(self, name: str) -> Any | None:
        assert self._session is not None
        try:
            return self._session.core.read_namespaced_secret(name, self.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def _values(self) -> tuple[dict[str, Any], str]:
        """(merged chart values from vc-config-NAME, syncer image tag)."""
        assert self._session is not None
        secret = self._read_secret(f"vc-config-{self.name}")
        values: dict[str, Any] = {}
        if secret is not None and secret.data and secret.data.get("config.yaml"):
            values = yaml.safe_load(base64.b64decode(secret.data["config.yaml"])) or {}
        tag = ""
        for kind in ("stateful_set", "deployment"):
            try:
                workload = getattr(self._session.apps, f"read_namespaced_{kind}")(self.name, self.namespace)
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    continue
                raise
            for container in workload.spec.template.spec.containers:
                if container.name == "syncer" and container.image.count(":") == 1:
                    tag = container.image.split(":")[1]
            break
        return values, tag

    def _service_cidr(self, values: Mapping[str, Any]) -> str:
        assert self._session is not None
        networking = values.get("networking") or {}
        if networking.get("serviceCIDR"):
            return str(networking["serviceCIDR"])
        try:
            service = self._session.core.read_namespaced_service(self.name, self.namespace)
            cidr = (service.metadata.annotations or {}).get("vcluster.loft.sh/service-cidr")
        except Exception:
            cidr = None
        return cidr or "10.96.0.0/12"

    def _start_generation(self, pod: Any, *, after: Generation | None = None) -> None:
        """A container start in `pod`: its first, or the kubelet's restart `after` a crashed one."""
        assert self._session is not None
        with self._cond:
            gen = Generation(
                number=len(self.generations) + 1, pod_uid=pod.metadata.uid, pod_name=pod.metadata.name,
                volume=volume_key(pod), restarts=after.restarts + 1 if after else 0,
            )
            self.generations.append(gen)
        try:
            self._start(gen, pod)
        except Exception as exc:
            gen.crashed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if gen.crashed is not None:  # the kubelet's back-off: base, doubled per crash, capped
            delay = min(self.crash_backoff * 2 ** gen.restarts, self.crash_backoff * CRASH_BACKOFF_CAP)
            with self._cond:
                self._crash_loops[gen.pod_uid] = (gen, time.monotonic() + delay)
        self._route()
        self._report_readiness(pod, gen, previous=after)
        with self._cond:
            self._cond.notify_all()

    def _report_readiness(self, pod: Any, gen: Generation, *, previous: Generation | None) -> None:
        """The pod's readiness as the kubelet would report it (pods labelled for emulated readiness)."""
        if EMULATED_READINESS_LABEL not in (pod.metadata.labels or {}):
            return
        assert self._session is not None
        status = readiness_status(pod, serving=gen.serving, restarts=gen.restarts, began=gen.began,
                                  previous=previous.began if previous else None)
        with contextlib.suppress(Exception):  # the pod may be gone already
            self._session.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, status)

    def _start(self, gen: Generation, pod: Any) -> None:
        assert self._session is not None
        core = self._session.core
        values, tag = self._values()
        service_cidr = self._service_cidr(values)
        # /data lives as long as the pod's `data` volume: its PVC, else (emptyDir) this pod only
        volume = self.workdir / "volumes" / gen.volume
        pki = volume / "pki"
        now = datetime.now(UTC)
        certs_name = f"{self.name}-certs"
        secret = self._read_secret(certs_name)
        if secret is None:
            # EnsureCerts without a secret: generate (kubeadm) and create NAME-certs.
            data = generate_vcluster_pki(
                self.workdir / "generate", name=self.name, namespace=self.namespace, service_cidr=service_cidr
            )
            core.create_namespaced_secret(
                self.namespace,
                {
                    "metadata": {
                        "name": certs_name,
                        "labels": {"app": "vcluster", "vcluster-name": self.name},
                        "ownerReferences": service_owner(self._session, self.namespace, self.name, values),
                    },
                    "type": "Opaque",
                    "data": _b64(data),
                },
            )
            gen.generated = True
        else:
            data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        if _version_tuple(tag or "0.36.0") >= RENEWAL_SINCE:
            expiring = expiring_leaves(data, now=now)
            if expiring:
                download(data, pki)
                renew_on_disk(
                    pki, name=self.name, namespace=self.namespace, values=values, service_cidr=service_cidr
                )
                new = read_disk(pki)
                # SyncSecret: JSON merge patch of the data, no resourceVersion precondition.
                patch = {"data": {**{k: None for k in data if k not in new}, **_b64(new)}}
                core.patch_namespaced_secret(certs_name, self.namespace, patch)
                gen.renewed = tuple(sorted(k for k in new if new.get(k) != data.get(k)))
                data = new
        download(data, pki)
        reason = why_it_cannot_serve(data, pki, now=now)
        if reason is not None:
            gen.crashed = reason
            return
        endpoint = self._etcd_endpoint(gen, values, pki, volume)
        try:
            plane = start_control_plane(pki, volume / "plane", timeout=START_TIMEOUT, etcd_endpoint=endpoint)
        except BaseException:
            self._stop_member(gen)
            raise
        gen.plane = plane
        assert self.forwarder is not None
        try:
            gen.syncer = self._start_syncer(gen, pki, plane, data, values, now=now)
            server = self.forwarder.server
            self._publish(gen.syncer.server, server, data, pki,
                          private_nodes=bool((values.get("privateNodes") or {}).get("enabled")))
            if self._forwards is not None:
                self._forwards.publish(pod, gen.syncer.port)
        except BaseException:
            if gen.syncer is not None:
                gen.syncer.stop()
                gen.syncer = None
            plane.stop()
            gen.plane = None
            self._stop_member(gen)
            raise
        gen.admin_conf, gen.values = data["admin.conf"], values
        gen.server, gen.apiserver, gen.ca_file = server, plane.server, plane.ca_file
        gen.served_at = time.monotonic()
        if self.watcher_interval is not None and _version_tuple(tag or "0.36.0") >= WATCHER_SINCE:
            gen.watcher = CertWatcher(self._session, self.namespace, self.name, pki,
                                      volume / f"watcher-{gen.number}", values=values,
                                      service_cidr=service_cidr, holder=gen.pod_name,
                                      interval=self.watcher_interval).start()

    def _etcd_endpoint(self, gen: Generation, values: Mapping[str, Any], pki: Path,
                       volume: Path) -> str | None:
        """Where the plane's kube-apiserver finds etcd: deployed etcd's members (`Store`); with HA
        embedded etcd this pod's member of the replicas' one cluster, started here on the pod's
        volume with the certificates it downloaded; None: the plane runs its own etcd (embedded etcd
        of one replica; the embedded database is played by etcd too)."""
        assert self._session is not None
        plane = values.get("controlPlane") or {}
        etcd = (plane.get("backingStore") or {}).get("etcd") or {}
        if (etcd.get("deploy") or {}).get("enabled"):
            with self._cond:
                if self._store is None:
                    replicas = int(((etcd["deploy"].get("statefulSet") or {}).get("highAvailability") or {})
                                   .get("replicas") or 1)
                    self._store = Store(self._session, self.namespace, self.name, self.workdir / "store",
                                        replicas=replicas)
            return self._store.endpoint()
        replicas = _replicas(values)
        if not (etcd.get("embedded") or {}).get("enabled") or replicas < 2:
            return None
        with self._cond:
            if self._members is None:
                self._members = EtcdCluster([f"{self.name}-{i}" for i in range(replicas)],
                                            self.workdir / "embedded-etcd", token=self.name)
        if gen.pod_name not in self._members.members:
            raise RuntimeError(f"{gen.pod_name} is not a member of the embedded etcd cluster")
        member = self._members.start(gen.pod_name, pki=pki, data_dir=volume / "plane" / "etcd-data",
                                     owner=gen.pod_uid)
        gen.member = gen.pod_name
        if not member.alive:
            raise RuntimeError(f"etcd member {gen.pod_name} exited: "
                               f"{self._members.log_tail(gen.pod_name, 1)[-200:]}")
        return member.client_url

    def _stop_member(self, gen: Generation) -> None:
        members, name = self._members, gen.member
        if name is not None and members is not None and members.members[name].owner == gen.pod_uid:
            members.stop(name)

    def _start_syncer(self, gen: Generation, pki: Path, plane: RunningControlPlane, data: Mapping[str, bytes],
                      values: Mapping[str, Any], *, now: datetime) -> SyncerProxy:
        """The syncer's API in front of the pod's kube-apiserver, with its own serving certificate."""
        networking = (values.get("networking") or {}).get("advanced") or {}
        proxy = (values.get("controlPlane") or {}).get("proxy") or {}
        return SyncerProxy(
            pki, self.workdir / f"syncer-{gen.number}", upstream_port=int(plane.server.rsplit(":", 1)[1]),
            admin_conf=data["admin.conf"], now=now,
            cluster_domain=str(networking.get("clusterDomain") or "cluster.local"),
            extra_sans=[str(san) for san in proxy.get("extraSANs") or ()],
        ).start()

    def virtual_session(self, admin_conf: bytes, server: str) -> KubeSession:
        """A session to the emulated virtual API server with the given admin kubeconfig."""
        from kubectl_vcerts.kube.virtual import build_session, with_server

        return build_session(with_server(yaml.safe_load(admin_conf), server))

    def _publish(self, server: str, endpoint: str, data: Mapping[str, bytes], pki: Path, *,
                 private_nodes: bool) -> None:
        """What the starting pod publishes through its own API (`server`); `endpoint` is the reachable
        address (the Service)."""
        session = self.virtual_session(data["admin.conf"], server)
        try:
            root_ca = (pki / "server-ca.crt").read_text()
            for ns in ROOT_CA_NAMESPACES:
                self._apply_config_map(session, ns, "kube-root-ca.crt", {"ca.crt": root_ca})
            if private_nodes:
                cluster = {
                    "apiVersion": "kubeadm.k8s.io/v1beta4",
                    "kind": "ClusterConfiguration",
                    "clusterName": "kubernetes",
                    "controlPlaneEndpoint": endpoint.removeprefix("https://"),
                    "certificatesDir": "/data/pki",
                }
                self._apply_config_map(
                    session,
                    "kube-system",
                    "kubeadm-config",
                    {"ClusterConfiguration": yaml.safe_dump(cluster, sort_keys=False)},
                )
        finally:
            session.close()

    @staticmethod
    def _apply_config_map(session: KubeSession, namespace: str, name: str, data: dict[str, str]) -> None:
        body = {"metadata": {"name": name, "namespace": namespace}, "data": data}
        try:
            session.core.create_namespaced_config_map(namespace, body)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
            session.core.patch_namespaced_config_map(name, namespace, {"data": data})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.emulator",
        description="emulate a vCluster control plane for a fixture vCluster",
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="emulator: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    emulator = Emulator(args.kubeconfig, args.namespace, args.name, workdir=args.workdir).start()
    seen = 0
    try:
        while not stop.wait(0.5):
            with contextlib.suppress(IndexError):
                while len(emulator.generations) > seen and (
                    emulator.generations[seen].serving or emulator.generations[seen].crashed
                ):
                    gen = emulator.generations[seen]
                    state = f"serving on {gen.server}" if gen.serving else f"crashed: {gen.crashed}"
                    renewed = f" (start-up renewal of {', '.join(gen.renewed)})" if gen.renewed else ""
                    print(
                        f"emulator: control plane #{gen.number} for pod {gen.pod_name}: {state}{renewed}",
                        flush=True,
                    )
                    seen += 1
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
