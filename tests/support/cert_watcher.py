"""vCluster's cert watcher (>= 0.34, loft-sh/vcluster `pkg/certs/watcher.go`) for one emulated pod.

Every `interval` (vCluster: 24 h; `VCLUSTER_CERT_CHECK_INTERVAL` in development) it looks at the leaf
certificates ON DISK (`diskCertsExpiringSoon`: missing, unparseable or within 90 days). When one is:
  1. with `controlPlane.statefulSet.highAvailability.replicas` > 1 only, it takes the Lease
     `SafeConcatName("vcluster", NAME, "cert-rotation")` (create, or take over once renewTime +
     duration has passed; held by anyone else: skip this tick). With one replica there is no Lease;
  2. reads NAME-certs, downloads it into a temporary directory, removes the leaves (CA files and sa.*
     stay), re-creates them with the REAL kubeadm and merge-patches every file into the secret without
     a resourceVersion precondition (`SyncSecret`);
  3. patches the pod template annotation `vcluster.loft.sh/cert-rotation-at` of NAME-etcd (when etcd
     is deployed) and of the StatefulSet (else Deployment) NAME: a rollout.
Test hooks: `age(by)` makes the pod older than it is (its clock runs ahead, so the leaves it started
with come within 90 days); `hold_after_read()` stops it between reading the secret and writing it back
(the race with a write of ours); `read`/`wrote` are set as it goes. After a rotation its next check
would be a day later: it rotates again only once `age()` was called again. When its pod stops, a watcher
finishes what it started if that takes no longer than the pod's grace period (15 s).
Test-support code: never prints or logs key material.
"""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.kube.client import KubeSession

log = logging.getLogger("vcerts.emulator.watcher")

LEASE_SECONDS = 300  # certRotationLeaseDuration
GRACE_SECONDS = 15  # the chart's terminationGracePeriodSeconds


class CertWatcher:
    def __init__(self, session: KubeSession, namespace: str, name: str, pki: Path, workdir: Path, *,
                 values: Mapping[str, Any], service_cidr: str, holder: str, interval: float) -> None:
        self.session, self.namespace, self.name = session, namespace, name
        self.pki, self.workdir, self.values, self.service_cidr = pki, workdir, values, service_cidr
        self.holder, self.interval = holder, interval
        control = values.get("controlPlane") or {}
        replicas = ((control.get("statefulSet") or {}).get("highAvailability") or {}).get("replicas", 1)
        self.ha = isinstance(replicas, int) and replicas > 1
        self.deployed_etcd = bool((((control.get("backingStore") or {}).get("etcd") or {}).get("deploy")
                                   or {}).get("enabled"))
        self.offset = timedelta(0)
        self.gate: threading.Event | None = None
        self.read, self.wrote = threading.Event(), threading.Event()
        self.rotations = 0
        self.skipped_for_lease = 0
        self.errors: list[str] = []
        self._pending_rollout = ""
        # the clock offset of its last rotation: vCluster's next check is a day later, which no test pod
        # lives to see, so this one rotates again only once `age()` moved its clock on
        self._rotated_at: timedelta | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cert-watcher-{name}", daemon=True)

    def start(self) -> CertWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def age(self, by: timedelta) -> None:
        self.offset += by

    def hold_after_read(self) -> threading.Event:
        """Hold the next rotation after it read the secret; set the returned event to let it go on."""
        self.gate = threading.Event()
        return self.gate

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._tick()
            except Exception as exc:  # the real watcher logs and tries again at the next tick
                # the first line only: an API error's later lines echo the response body
                first = str(exc).splitlines()[0] if str(exc) else ""
                self.errors.append(f"{type(exc).__name__}: {first}"[:300])
                log.warning("cert watcher %s: %s", self.name, self.errors[-1])

    def _tick(self) -> None:
        from tests.support.emulator import expiring_leaves, read_disk

        if self._pending_rollout:
            self._roll_out()
            return
        if self._rotated_at == self.offset:
            return
        if not expiring_leaves(read_disk(self.pki), now=datetime.now(UTC) + self.offset):
            return
        if self.ha and not self._acquire_lease():
            self.skipped_for_lease += 1
            return
        if self._rotate():
            self._rotated_at = self.offset
            self._pending_rollout = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self._roll_out()

    def _rotate(self) -> bool:
        """rotateLeafCertsInCluster; False when the pod stopped while held at the gate."""
        from tests.support.emulator import _b64, download, read_disk, renew_on_disk

        secret = self.session.core.read_namespaced_secret(contract.certs_secret_name(self.name),
                                                          self.namespace)
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        self.read.set()
        gate, stopping_since = self.gate, None
        while gate is not None and not gate.wait(0.1):
            if self._stop.is_set():  # the pod is stopping: its process lives on for the grace period
                stopping_since = stopping_since or time.monotonic()
                if time.monotonic() - stopping_since > GRACE_SECONDS:
                    return False
        self.gate = None
        temp = self.workdir / f"rotate-{self.rotations + 1}"
        shutil.rmtree(temp, ignore_errors=True)
        pki = temp / "pki"
        download(data, pki)
        renew_on_disk(pki, name=self.name, namespace=self.namespace, values=self.values,
                      service_cidr=self.service_cidr)
        new = read_disk(pki)
        self.session.core.patch_namespaced_secret(
            contract.certs_secret_name(self.name), self.namespace, {"data": _b64(new)})
        self.rotations += 1
        self.wrote.set()
        return True

    def _roll_out(self) -> None:
        """finishPendingRollout: deployed etcd first, then the control plane (StatefulSet, else
        Deployment)."""
        annotations = {contract.CERT_ROTATION_AT_ANNOTATION: self._pending_rollout}
        body = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        apps = self.session.apps
        if self.deployed_etcd:
            try:
                apps.patch_namespaced_stateful_set(f"{self.name}-etcd", self.namespace, body)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise
        try:
            apps.patch_namespaced_stateful_set(self.name, self.namespace, body)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            apps.patch_namespaced_deployment(self.name, self.namespace, body)
        self._pending_rollout = ""

    def _acquire_lease(self) -> bool:
        """tryAcquireRotationLease."""
        coordination = self.session.coordination
        name = contract.vcluster_rotation_lease_name(self.name)
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.holder, "leaseDurationSeconds": LEASE_SECONDS,
                "acquireTime": stamp, "renewTime": stamp}
        try:
            lease = coordination.read_namespaced_lease(name, self.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            coordination.create_namespaced_lease(self.namespace, {"metadata": {"name": name}, "spec": spec})
            return True
        renewed, duration = lease.spec.renew_time, lease.spec.lease_duration_seconds
        if renewed is not None and duration is not None and now < renewed + timedelta(seconds=duration):
            return False
        lease.spec.holder_identity = self.holder
        lease.spec.lease_duration_seconds = LEASE_SECONDS
        lease.spec.acquire_time = lease.spec.renew_time = now
        coordination.replace_namespaced_lease(name, self.namespace, lease)
        return True
