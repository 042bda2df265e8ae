"""Create, in a host namespace, what the vCluster Helm chart creates and what kubectl vcerts reads.

`create_vcluster` writes, for vCluster NAME (loft-sh/vcluster chart templates and pkg/certs):
  * ServiceAccount `vc-NAME`; Service `NAME` (443→8443, label vcluster.loft.sh/service=true, annotation
    vcluster.loft.sh/service-cidr) and headless Service `NAME-headless`;
  * Secret `vc-config-NAME` (labels app/chart/release/heritage, annotation vcluster.loft.sh/store,
    key `config.yaml` with the merged values we read: distro, backingStore, HA replicas, persistence,
    privateNodes, networking.advanced.clusterDomain, controlPlane.proxy.extraSANs, ...);
  * Secret `NAME-certs`: the 29 keys made by the REAL kubeadm (tests.support.kubeadm_pki), labels
    app=vcluster + vcluster-name=NAME, type Opaque, owner reference to Service NAME (setOwner);
  * Secret `vc-NAME`: admin.conf with server https://localhost:8443 plus the split-out keys;
  * the control plane: StatefulSet NAME with volumeClaimTemplates `data` (persistence), else an
    emptyDir `data` volume in a Deployment NAME (or the StatefulSet of embedded etcd); labels
    app=vcluster, release=NAME; container `syncer` with
    image ghcr.io/loft-sh/vcluster-pro:<version>;
  * deployed etcd (variant): StatefulSet NAME-etcd (pods app=vcluster-etcd, release=NAME) mounting
    NAME-certs at /run/config/pki (a secret volume, as the chart does), `data` a claim template or an
    emptyDir (`etcd_persistence=False`), Services NAME-etcd and NAME-etcd-headless;
  * one PersistentVolume per claim (pre-bound with claimRef), because nothing provisions volumes on
    the dev cluster and the scheduler does not place pods whose claims are unbound.
Then it waits until the pods are Running and Ready — or, for `pod_running=False`, until kwok shows
them crash-looping: pods carry `WAITING_REASON_LABEL=CrashLoopBackOff`, so they are phase Running with
the container waiting (reason CrashLoopBackOff), Ready=False, and vCluster's status algorithm
(kubectl's printer: last waiting reason wins) reports `CrashLoopBackOff`, i.e. not Running.

Test-support code; used by tests/conftest.py (`make_vcluster`) and scripts/demo
(`python -m tests.support.vcluster ...`). Never prints key material.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from kubectl_vcerts.kube.client import KubeSession, KubeTarget, connect
from tests.support.devcluster import EMULATED_READINESS_LABEL, WAITING_REASON_LABEL
from tests.support.k3s_migration import MIGRATED_ANNOTATION, migrate_from_k3s
from tests.support.kubeadm_pki import generate_vcluster_pki, with_expired_ca, with_expired_leaves
from tests.support.polling import wait_until

IMAGE_REPOSITORY = "ghcr.io/loft-sh/vcluster-pro"
ETCD_IMAGE = "registry.k8s.io/etcd:3.6.4-0"
DEFAULT_VERSION = "0.36.1"
PROXY_PORT = 8443
VOLUME_SIZE = "5Gi"
WAIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class VClusterSpec:
    """The variant of a fixture vCluster. Field names are the keyword arguments of `make_vcluster`."""

    version: str = DEFAULT_VERSION  # tag of the syncer image
    replicas: int = 1  # controlPlane.statefulSet.highAvailability.replicas (and of NAME-etcd)
    etcd_replicas: int | None = None  # NAME-etcd's replicas when not `replicas`
    persistence: bool = True  # StatefulSet + volumeClaimTemplates; False → Deployment + emptyDir
    deployed_etcd: bool = False  # controlPlane.backingStore.etcd.deploy.enabled → StatefulSet NAME-etcd
    etcd_persistence: bool = True  # NAME-etcd with volumeClaimTemplates `data`; False → emptyDir `data`
    private_nodes: bool = False  # privateNodes.enabled
    distro: str = "k8s"  # "k8s" or "k3s" (controlPlane.distro.<distro>.enabled)
    expired_leaves: bool = False  # every leaf and kubeconfig client cert ended a day ago
    expired_ca: bool = False  # ca.crt (and server-ca/client-ca copies, kubeconfig CA data) ended a day ago
    pod_running: bool = True  # False: pods crash-loop (status CrashLoopBackOff, not Ready)
    # Less common knobs.
    service_cidr: str = "10.96.0.0/12"
    cluster_domain: str = "cluster.local"
    extra_sans: tuple[str, ...] = ()  # controlPlane.proxy.extraSANs (also in the etcd SANs)
    waiting_reason: str = "CrashLoopBackOff"  # the container state when pod_running=False
    with_certs_secret: bool = True  # False: no NAME-certs at all (a vCluster that never started)
    migrated_from_k3s: bool = False  # NAME-certs as vCluster's k3s → k8s migration leaves it (split CA)
    # control-plane pods Ready only when the emulator's plane for them answers (it sets their status)
    emulated_readiness: bool = False

    def __post_init__(self) -> None:
        if self.distro not in {"k8s", "k3s"}:
            raise ValueError(f"distro must be k8s or k3s, not {self.distro!r}")
        if self.replicas < 1 or (self.etcd_replicas is not None and self.etcd_replicas < 1):
            raise ValueError("replicas must be >= 1")

    @property
    def etcd_members(self) -> int:
        return self.etcd_replicas if self.etcd_replicas is not None else self.replicas

    @property
    def kind(self) -> str:
        """The chart's `vcluster.kind`: StatefulSet with persistence (or embedded etcd), else Deployment."""
        return "StatefulSet" if self.persistence or self.backing_store == "embedded-etcd" else "Deployment"

    @property
    def backing_store(self) -> str:
        if self.deployed_etcd:
            return "deployed-etcd"
        # HA needs etcd; the chart's usual HA setup is embedded etcd.
        return "embedded-etcd" if self.replicas > 1 else "embedded-database"

    @property
    def image(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.version}"


@dataclass
class FixtureVCluster:
    """What `create_vcluster` made. `certs` is the NAME-certs data it wrote (never printed)."""

    name: str
    namespace: str
    spec: VClusterSpec
    certs: dict[str, bytes] = field(repr=False)
    persistent_volumes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def selector(self) -> str:
        return f"app=vcluster,release={self.name}"

    @property
    def etcd_selector(self) -> str:
        return f"app=vcluster-etcd,release={self.name}"

    @property
    def certs_secret(self) -> str:
        return f"{self.name}-certs"

    @property
    def config_secret(self) -> str:
        return f"vc-config-{self.name}"

    @property
    def kubeconfig_secret(self) -> str:
        return f"vc-{self.name}"

    @property
    def etcd_name(self) -> str:
        return f"{self.name}-etcd"


class MakeVCluster(Protocol):
    """The `make_vcluster` fixture: make_vcluster(name="vc", **VClusterSpec fields) -> FixtureVCluster."""

    def __call__(self, name: str = "vc", **variant: Any) -> FixtureVCluster: ...


# --- manifests ---------------------------------------------------------------------------------------


def _chart_labels(name: str, spec: VClusterSpec, app: str = "vcluster") -> dict[str, str]:
    return {"app": app, "chart": f"vcluster-{spec.version}", "release": name, "heritage": "Helm"}


def _version_tuple(version: str) -> tuple[int, ...]:
    core = version.lstrip("v").split("-")[0]
    return tuple(int(p) for p in core.split(".") if p.isdigit())


def vc_config(name: str, namespace: str, spec: VClusterSpec) -> dict[str, Any]:
    """The `config.yaml` of vc-config-NAME: the merged chart values, limited to what matters here."""
    distro: dict[str, Any] = {
        "k8s": {"enabled": spec.distro == "k8s", "version": "", "apiServer": {"enabled": True},
                "controllerManager": {"enabled": True}, "scheduler": {"enabled": False}},
    }
    if spec.distro == "k3s" or _version_tuple(spec.version) < (0, 33):
        # k3s existed up to v0.32; its key is part of the merged values of those charts.
        distro["k3s"] = {"enabled": spec.distro == "k3s", "token": "", "image": {"tag": "v1.32.1-k3s1"}}
    store = spec.backing_store
    return {
        "global": {"annotations": {}, "labels": {}},
        "controlPlane": {
            "distro": distro,
            "backingStore": {
                "database": {"embedded": {"enabled": store == "embedded-database"},
                             "external": {"enabled": False}},
                "etcd": {
                    "embedded": {"enabled": store == "embedded-etcd"},
                    "deploy": {"enabled": store == "deployed-etcd",
                               "statefulSet": {"enabled": store == "deployed-etcd",
                                               "highAvailability": {"replicas": spec.etcd_members},
                                               "persistence": {"volumeClaim": {
                                                   "enabled": spec.etcd_persistence}}}},
                    "external": {"enabled": False},
                },
            },
            "proxy": {"bindAddress": "0.0.0.0",  # noqa: S104 - a chart value inside a Secret, nothing binds
                       "port": PROXY_PORT, "extraSANs": list(spec.extra_sans)},
            "statefulSet": {
                "highAvailability": {"replicas": spec.replicas, "leaseDuration": 60, "renewDeadline": 40,
                                     "retryPeriod": 15},
                "persistence": {"volumeClaim": {"enabled": "auto" if spec.persistence else False,
                                                "size": VOLUME_SIZE, "accessModes": ["ReadWriteOnce"],
                                                "retentionPolicy": "Retain"}},
                "image": {"registry": "ghcr.io", "repository": "loft-sh/vcluster-pro", "tag": spec.version},
            },
            "service": {"enabled": True, "spec": {"type": "ClusterIP"}},
        },
        "networking": {
            "serviceCIDR": spec.service_cidr if spec.private_nodes else "",
            "advanced": {"clusterDomain": spec.cluster_domain, "fallbackHostCluster": False,
                         "proxyKubelets": {"byHostname": True, "byIP": True}},
        },
        "privateNodes": {"enabled": spec.private_nodes, "autoUpgrade": {"enabled": False},
                         "joinNode": {"containerd": {"enabled": True}}, "autoNodes": []},
        "exportKubeConfig": {"context": "", "server": "", "insecure": False,
                             "serviceAccount": {"name": "", "namespace": "", "clusterRole": ""},
                             "secret": {"name": "", "namespace": ""}, "additionalSecrets": []},
        "experimental": {"syncSettings": {"setOwner": True}},
        "sleepMode": {"enabled": False},
    }


def vc_kubeconfig_secret_data(certs: dict[str, bytes]) -> dict[str, bytes]:
    """vc-NAME: admin.conf with every server set to https://localhost:8443, plus split-out keys."""
    conf = yaml.safe_load(certs["admin.conf"])
    for cluster in conf["clusters"]:
        cluster["cluster"]["server"] = f"https://localhost:{PROXY_PORT}"
    user = conf["users"][0]["user"]
    return {
        "config": yaml.safe_dump(conf, sort_keys=False).encode(),
        "certificate-authority": base64.b64decode(
            conf["clusters"][0]["cluster"]["certificate-authority-data"]),
        "client-certificate": base64.b64decode(user["client-certificate-data"]),
        "client-key": base64.b64decode(user["client-key-data"]),
        "token": b"",
    }


def _b64(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _owner(service: Any) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "name": service.metadata.name,
             "uid": service.metadata.uid}]


def _claim_template(size: str = VOLUME_SIZE) -> dict[str, Any]:
    return {"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def _persistent_volume(pv_name: str, namespace: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": {"vcerts.io/test-namespace": namespace}},
        "spec": {
            "capacity": {"storage": VOLUME_SIZE},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            # Never mounted (kwok runs no containers); pre-bound so the PV controller binds at once.
            "hostPath": {"path": f"/tmp/vcerts-pv/{pv_name}"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                         "name": claim},
        },
    }


def _pod_template(name: str, spec: VClusterSpec, config_hash: str) -> dict[str, Any]:
    labels = {"app": "vcluster", "release": name}
    if not spec.pod_running:
        labels[WAITING_REASON_LABEL] = spec.waiting_reason
    elif spec.emulated_readiness:
        labels[EMULATED_READINESS_LABEL] = "emulated"
    volumes: list[dict[str, Any]] = [
        {"name": "vcluster-config", "secret": {"secretName": f"vc-config-{name}"}}]
    if not spec.persistence:
        volumes.append({"name": "data", "emptyDir": {}})
    return {
        "metadata": {"labels": labels, "annotations": {"vClusterConfigHash": config_hash}},
        "spec": {
            "serviceAccountName": f"vc-{name}",
            "terminationGracePeriodSeconds": 10,
            "enableServiceLinks": False,
            "containers": [{
                "name": "syncer",
                "image": spec.image,
                "ports": [{"name": "https", "containerPort": PROXY_PORT, "protocol": "TCP"}],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "VCLUSTER_NAME", "value": name},
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                 {"name": "vcluster-config", "mountPath": "/var/lib/vcluster"}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": PROXY_PORT, "scheme": "HTTPS"}},
            }],
            "volumes": volumes,
        },
    }


def _workload(name: str, namespace: str, spec: VClusterSpec, config_hash: str) -> dict[str, Any]:
    selector = {"matchLabels": {"app": "vcluster", "release": name}}
    metadata = {"name": name, "namespace": namespace, "labels": _chart_labels(name, spec)}
    template = _pod_template(name, spec, config_hash)
    if spec.kind == "StatefulSet":
        return {
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata,
            "spec": {
                "replicas": spec.replicas, "selector": selector, "serviceName": f"{name}-headless",
                "podManagementPolicy": "Parallel",
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": template,
                "volumeClaimTemplates": [_claim_template()] if spec.persistence else [],
            },
        }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": spec.replicas, "selector": selector,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": template},
    }


def _etcd_statefulset(name: str, namespace: str, spec: VClusterSpec) -> dict[str, Any]:
    etcd = f"{name}-etcd"
    labels = {"app": "vcluster-etcd", "release": name}
    # with emulated readiness a member is Ready once etcd's /readyz answers (the chart's startup probe)
    template_labels = {**labels, EMULATED_READINESS_LABEL: "emulated"} if spec.emulated_readiness else labels
    pki = "/run/config/pki"
    command = [
        "etcd", f"--cert-file={pki}/etcd-server.crt", f"--key-file={pki}/etcd-server.key",
        f"--peer-cert-file={pki}/etcd-peer.crt", f"--peer-key-file={pki}/etcd-peer.key",
        f"--trusted-ca-file={pki}/etcd-ca.crt", f"--peer-trusted-ca-file={pki}/etcd-ca.crt",
        "--client-cert-auth=true", "--peer-client-cert-auth=true", "--data-dir=/var/lib/etcd",
        "--name=$(NAME)", f"--advertise-client-urls=https://$(NAME).{etcd}-headless.{namespace}:2379",
        "--listen-client-urls=https://0.0.0.0:2379", "--listen-peer-urls=https://0.0.0.0:2380",
    ]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": etcd, "namespace": namespace,
                     "labels": _chart_labels(name, spec, "vcluster-etcd")},
        "spec": {
            "replicas": spec.etcd_members, "serviceName": f"{etcd}-headless",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": "etcd", "image": ETCD_IMAGE, "command": command,
                        "env": [{"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/etcd"},
                                         {"name": "certs", "mountPath": pki, "readOnly": True}],
                    }],
                    "volumes": [{"name": "certs", "secret": {"secretName": f"{name}-certs"}}]
                    + ([] if spec.etcd_persistence else [{"name": "data", "emptyDir": {}}]),
                },
            },
            "volumeClaimTemplates": [_claim_template()] if spec.etcd_persistence else [],
        },
    }


def _service(name: str, namespace: str, labels: dict[str, str], selector: dict[str, str],
             ports: list[dict[str, Any]], *, headless: bool = False,
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "ports": ports, "type": "ClusterIP"}
    if headless:
        spec.update({"clusterIP": "None", "publishNotReadyAddresses": True})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "annotations": annotations or {}},
            "spec": spec}


# --- create + wait -----------------------------------------------------------------------------------


def make_certs(name: str, namespace: str, spec: VClusterSpec, *, workdir: Path | None = None,
               now: datetime | None = None) -> dict[str, bytes]:
    """The NAME-certs data of this variant (real kubeadm output, then the requested breakage)."""
    with tempfile.TemporaryDirectory(prefix="vcerts-kubeadm-") as tmp:
        certs = generate_vcluster_pki(
            workdir or Path(tmp), name=name, namespace=namespace, service_cidr=spec.service_cidr,
            cluster_domain=spec.cluster_domain, extra_sans=spec.extra_sans,
        )
    moment = now or datetime.now(UTC)
    if spec.expired_leaves:
        certs = with_expired_leaves(certs, now=moment)
    if spec.expired_ca:
        certs = with_expired_ca(certs, now=moment)
    if spec.migrated_from_k3s:
        certs = migrate_from_k3s(certs, name=name, service_cidr=spec.service_cidr, now=moment)
    return certs


def create_vcluster(
    session: KubeSession, *, name: str = "vc", namespace: str | None = None,
    spec: VClusterSpec | None = None, certs: dict[str, bytes] | None = None, wait: bool = True,
    timeout: float = WAIT_TIMEOUT, now: datetime | None = None,
) -> FixtureVCluster:
    """Create the chart's objects for vCluster `name` in `namespace` (default: the session's)."""
    spec = spec or VClusterSpec()
    ns = namespace or session.namespace
    core, apps = session.core, session.apps
    data = certs if certs is not None else make_certs(name, ns, spec, now=now)
    labels = _chart_labels(name, spec)
    selector = {"app": "vcluster", "release": name}

    core.create_namespaced_service_account(ns, {"metadata": {"name": f"vc-{name}", "namespace": ns,
                                                             "labels": labels}})
    https = [{"name": "https", "port": 443, "targetPort": PROXY_PORT, "protocol": "TCP"}]
    service = core.create_namespaced_service(ns, _service(
        name, ns, {**labels, "vcluster.loft.sh/service": "true"}, selector,
        [*https, {"name": "kubelet", "port": 10250, "targetPort": PROXY_PORT, "protocol": "TCP"}],
        annotations={"vcluster.loft.sh/service-cidr": spec.service_cidr},
    ))
    headless_ports = [*https]
    if spec.backing_store == "embedded-etcd":
        headless_ports += [{"name": "etcd", "port": 2379, "targetPort": 2379, "protocol": "TCP"},
                           {"name": "peer", "port": 2380, "targetPort": 2380, "protocol": "TCP"}]
    core.create_namespaced_service(ns, _service(f"{name}-headless", ns, labels, selector, headless_ports,
                                                headless=True))

    config_text = yaml.safe_dump(vc_config(name, ns, spec), sort_keys=False)
    config_annotations = {"vcluster.loft.sh/store": spec.backing_store}
    if _version_tuple(spec.version) <= (0, 32, 99):
        config_annotations["vcluster.loft.sh/distro"] = spec.distro
    core.create_namespaced_secret(ns, {
        "metadata": {"name": f"vc-config-{name}", "namespace": ns, "labels": labels,
                     "annotations": config_annotations},
        "type": "Opaque",
        "data": _b64({"config.yaml": config_text.encode()}),
    })
    secret_labels = {"app": "vcluster", "vcluster-name": name}
    if spec.with_certs_secret:
        core.create_namespaced_secret(ns, {
            "metadata": {"name": f"{name}-certs", "namespace": ns, "labels": secret_labels,
                         "ownerReferences": _owner(service),
                         "annotations": {MIGRATED_ANNOTATION: "true"} if spec.migrated_from_k3s else {}},
            "type": "Opaque",
            "data": _b64(data),
        })
        core.create_namespaced_secret(ns, {
            "metadata": {"name": f"vc-{name}", "namespace": ns, "labels": secret_labels,
                         "ownerReferences": _owner(service)},
            "type": "Opaque",
            "data": _b64(vc_kubeconfig_secret_data(data)),
        })

    volumes: list[str] = []
    if spec.deployed_etcd:
        etcd = f"{name}-etcd"
        etcd_labels = _chart_labels(name, spec, "vcluster-etcd")
        etcd_selector = {"app": "vcluster-etcd", "release": name}
        etcd_ports = [{"name": "etcd", "port": 2379, "targetPort": 2379, "protocol": "TCP"},
                      {"name": "peer", "port": 2380, "targetPort": 2380, "protocol": "TCP"}]
        core.create_namespaced_service(ns, _service(etcd, ns, etcd_labels, etcd_selector, etcd_ports))
        core.create_namespaced_service(ns, _service(f"{etcd}-headless", ns, etcd_labels, etcd_selector,
                                                    etcd_ports, headless=True))
        if spec.etcd_persistence:
            volumes += _create_volumes(session, ns, etcd, spec.etcd_members)
        apps.create_namespaced_stateful_set(ns, _etcd_statefulset(name, ns, spec))
    if spec.kind == "StatefulSet" and spec.persistence:
        volumes += _create_volumes(session, ns, name, spec.replicas)
    workload = _workload(name, ns, spec, hashlib.sha256(config_text.encode()).hexdigest())
    if spec.kind == "StatefulSet":
        apps.create_namespaced_stateful_set(ns, workload)
    else:
        apps.create_namespaced_deployment(ns, workload)

    created = FixtureVCluster(name=name, namespace=ns, spec=spec, certs=data,
                              persistent_volumes=tuple(volumes))
    if wait:
        wait_for_vcluster(session, created, timeout=timeout)
    return created


def create_light_vclusters(session: Any, namespace: str, count: int, certs: dict[str, bytes]) -> None:
    """`count` vCluster-shaped sets of objects, cheaply (benchmarks of reads): a Deployment with one pod,
    NAME-certs (one PKI for all), vc-NAME and vc-config-NAME; named vc0000, vc0001, ..."""
    certs_b64 = _b64(certs)
    kubeconfig_b64 = _b64(vc_kubeconfig_secret_data(certs))
    spec = VClusterSpec(persistence=False)

    def one(index: int) -> None:
        name = f"vc{index:04d}"
        labels = {"app": "vcluster", "release": name}
        secret_labels = {"app": "vcluster", "vcluster-name": name}
        config = yaml.safe_dump(vc_config(name, namespace, spec)).encode()
        core, apps = session.core, session.apps
        for secret, with_labels, data in ((f"{name}-certs", secret_labels, certs_b64),
                                          (f"vc-{name}", secret_labels, kubeconfig_b64),
                                          (f"vc-config-{name}", labels, _b64({"config.yaml": config}))):
            core.create_namespaced_secret(namespace, {"metadata": {"name": secret, "labels": with_labels},
                                                      "data": data})
        apps.create_namespaced_deployment(namespace, {
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "syncer", "image": spec.image,
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                         "volumes": [{"name": "data", "emptyDir": {}}]}}},
        })

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def _create_volumes(session: KubeSession, namespace: str, statefulset: str, replicas: int) -> list[str]:
    names = []
    for i in range(replicas):
        claim = f"data-{statefulset}-{i}"
        # Unique per call: a PV of an earlier run may still be terminating under the same claim name.
        pv_name = f"vcerts-{namespace}-{claim}"[:240] + f"-{secrets.token_hex(3)}"
        session.core.create_persistent_volume(_persistent_volume(pv_name, namespace, claim))
        names.append(pv_name)
    return names


def pod_status(pod: Any) -> str:
    """kubectl's printer status of a client model pod: the product's one algorithm (kube/pods.py)."""
    from kubernetes.client import ApiClient

    from kubectl_vcerts.kube.pods import pod_status as printed_status

    return printed_status(ApiClient().sanitize_for_serialization(pod))


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _pods_settled(session: KubeSession, namespace: str, selector: str, count: int, *,
                  running: bool, reason: str, ready: bool = True) -> tuple[bool, str]:
    pods = session.core.list_namespaced_pod(namespace, label_selector=selector).items
    summary = ", ".join(f"{p.metadata.name}={pod_status(p)}/ready={pod_ready(p)}" for p in pods) or "no pods"
    if len(pods) != count:
        return False, summary
    if running:
        ok = all(pod_status(p) == "Running" and (pod_ready(p) or not ready) for p in pods)
    else:
        ok = all(pod_status(p) == reason and not pod_ready(p) for p in pods)
    return ok, summary


def wait_for_vcluster(session: KubeSession, vcluster: FixtureVCluster, *,
                      timeout: float = WAIT_TIMEOUT) -> None:
    """Wait until the control-plane pods (and etcd pods) are in the state the spec asks for."""
    spec = vcluster.spec
    # with emulated readiness the control plane turns Ready once an emulator serves it: Running will do
    checks = [(vcluster.selector, spec.replicas, spec.pod_running, not spec.emulated_readiness)]
    if spec.deployed_etcd:
        checks.append((vcluster.etcd_selector, spec.etcd_members, True, not spec.emulated_readiness))
    deadline = time.monotonic() + timeout
    for selector, count, running, ready in checks:
        _wait_settled(session, vcluster, selector, count, running=running, ready=ready, deadline=deadline,
                      timeout=timeout)


def _wait_settled(session: KubeSession, vcluster: FixtureVCluster, selector: str, count: int, *,
                  running: bool, ready: bool, deadline: float, timeout: float) -> None:
    spec = vcluster.spec
    seen = ["no pods"]

    def settled() -> bool:
        ok, seen[0] = _pods_settled(session, vcluster.namespace, selector, count,
                                    running=running, reason=spec.waiting_reason, ready=ready)
        return ok

    want = ("Running and Ready" if ready else "Running") if running else spec.waiting_reason
    wait_until(settled, timeout=max(0.0, deadline - time.monotonic()), fail=lambda: TimeoutError(
        f"pods {selector} in {vcluster.namespace} not {want} after {timeout:.0f}s: {seen[0]}"))


def delete_volumes(session: KubeSession, vcluster: FixtureVCluster) -> None:
    """Delete the PersistentVolumes made for this vCluster (cluster-scoped, not owned by the namespace)."""
    for pv in vcluster.persistent_volumes:
        try:
            session.core.delete_persistent_volume(pv)
        except Exception as exc:  # already gone is fine; anything else is worth a visible failure
            if getattr(exc, "status", None) != 404:
                raise


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.support.vcluster --kubeconfig K -n NS --name N [flags]` (used by scripts/demo)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.vcluster",
                                     description="create a vCluster-shaped set of objects in a namespace")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--name", default="vc")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--no-persistence", action="store_true")
    parser.add_argument("--deployed-etcd", action="store_true")
    parser.add_argument("--expired-leaves", action="store_true")
    args = parser.parse_args(argv)
    session = connect(KubeTarget(kubeconfig=args.kubeconfig, namespace=args.namespace))
    try:
        existing = [ns.metadata.name for ns in session.core.list_namespace().items]
        if args.namespace not in existing:
            session.core.create_namespace({"metadata": {"name": args.namespace}})
        spec = replace(VClusterSpec(), version=args.version, replicas=args.replicas,
                       persistence=not args.no_persistence, deployed_etcd=args.deployed_etcd,
                       expired_leaves=args.expired_leaves)
        created = create_vcluster(session, name=args.name, namespace=args.namespace, spec=spec)
    finally:
        session.close()
    print(f"created vCluster {created.namespace}/{created.name} ({created.kind}, {len(created.certs)} keys "
          f"in {created.certs_secret})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
