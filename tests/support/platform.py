"""Stand-ins for the vCluster Platform API, a "Platform player", and the hook as a separate process.

* `install_crds`: CRDs `virtualclusterinstances.management.loft.sh` and `nodeclaims.management.loft.sh`
  (group management.loft.sh, version v1, namespaced, status subresource, printer columns of the real
  API). Fidelity caveat: the real group is an aggregated API; these support CRUD
  and watch only.
* `PlatformPlayer`: creates instances and claims, and plays the Platform (recreating deleted claims
  under new names, clearing finalizers).
* `HookProcess`: runs `platform-hook` with the command, args and env of
  platform_hook/deploy/30-deployment.yaml, authenticated as the manifests' ServiceAccount with a
  TokenRequest token, so the manifests' RBAC is what is exercised.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kubectl_vcerts import contract
from kubectl_vcerts.kube.client import KubeSession, KubeTarget, connect
from tests.support.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO / "platform_hook" / "deploy"
HOOK_NAMESPACE = "vcerts-system"
HOOK_SERVICE_ACCOUNT = "vcerts-platform-hook"
GROUP, VERSION = contract.MANAGEMENT_GROUP, contract.MANAGEMENT_VERSION


def _crd(plural: str, kind: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }


# NodeClaim columns Status/VCluster/NodeType as in the real API (loft-sh/api
# `management/v1/nodeclaim_types.go`; the real printcolumn
# points at .spec.nodeTypeRef, but the field is typeRef — we show the field that exists).
NODECLAIM_CRD = _crd(contract.NODECLAIM_PLURAL, contract.NODECLAIM_KIND, [
    {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
    {"name": "VCluster", "type": "string", "jsonPath": ".spec.vClusterRef"},
    {"name": "NodeType", "type": "string", "jsonPath": ".spec.typeRef"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
])
VCI_CRD = _crd(contract.VCI_PLURAL, contract.VCI_KIND, [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.cluster"},
    {"name": "VCluster", "type": "string", "jsonPath": ".spec.clusterRef.virtualCluster"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
])


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    from tests.support.testbin import binary

    return subprocess.run([str(binary("kubectl")), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, check=check, timeout=120)


def install_crds(kubeconfig: Path) -> None:
    docs = "\n---\n".join(yaml.safe_dump(d) for d in (VCI_CRD, NODECLAIM_CRD))
    kubectl(kubeconfig, "apply", "-f", "-", stdin=docs)
    for crd in (VCI_CRD, NODECLAIM_CRD):
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                f"crd/{crd['metadata']['name']}")


def apply_deploy(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -f platform_hook/deploy/`, as the README tells."""
    return kubectl(kubeconfig, "apply", "-f", str(DEPLOY_DIR) + "/")


def wait_for(what: str, probe: Callable[[], bool], *, timeout: float = 60.0, interval: float = 0.2) -> None:
    """Poll until `probe()` is true (a condition, not a timing assertion)."""
    wait_until(probe, timeout=timeout, interval=interval,
               fail=lambda: AssertionError(f"timed out waiting for {what}"))


class PlatformPlayer:
    """Plays the vCluster Platform against the stand-in CRDs, as cluster admin."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.session: KubeSession = connect(KubeTarget(kubeconfig=str(kubeconfig), namespace=namespace))

    @property
    def custom(self) -> Any:
        return self.session.custom

    def make_instance(self, name: str, *, annotations: Mapping[str, str] | None = None,
                      cluster_namespace: str = "vcluster-host", vcluster: str | None = None,
                      labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": contract.VCI_KIND,
                "metadata": {"name": name, "annotations": dict(annotations or {}),
                             "labels": dict(labels or {})},
                "spec": {"displayName": name, "clusterRef": {"cluster": "loft-cluster",
                                                             "namespace": cluster_namespace,
                                                             "virtualCluster": vcluster or name}}}
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                                contract.VCI_PLURAL, body))

    def instance(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                             contract.VCI_PLURAL, name))

    def annotations(self, name: str) -> dict[str, str]:
        return dict(self.instance(name)["metadata"].get("annotations") or {})

    def annotate(self, name: str, changes: Mapping[str, str | None]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, contract.VCI_PLURAL, name,
            {"metadata": {"annotations": dict(changes)}})  # a merge patch, the client's default

    def make_claim(self, vcluster: str, name: str, *, node_type: str = "medium", provider: str = "aws",
                   finalizers: list[str] | None = None, spec: Mapping[str, Any] | None = None,
                   labels: Mapping[str, str] | None = None,
                   annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        full_spec: dict[str, Any] = {
            "providerRef": provider, "typeRef": node_type, "vClusterRef": vcluster, "controlPlane": False,
            "desiredCapacity": {"cpu": "2", "memory": "4Gi"},
            "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                              "values": [node_type]}],
        }
        if spec is not None:
            full_spec = dict(spec)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": contract.NODECLAIM_KIND,
                "metadata": {"name": name, "finalizers": finalizers or [],
                             "labels": dict(labels or {"karpenter.sh/nodepool": "pool-a"}),
                             "annotations": dict(annotations or {"note": f"claim {name}"})},
                "spec": full_spec}
        obj = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                          contract.NODECLAIM_PLURAL, body)
        # The Platform sets the status; through the status subresource, like the real controller.
        obj["status"] = {"phase": "Available"}
        return dict(self.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, contract.NODECLAIM_PLURAL, name, obj))

    def claims(self, vcluster: str | None = None) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                          contract.NODECLAIM_PLURAL)["items"]
        return [c for c in items if vcluster is None or c["spec"].get("vClusterRef") == vcluster]

    def claim_uids(self, vcluster: str) -> dict[str, str]:
        return {c["metadata"]["name"]: c["metadata"]["uid"] for c in self.claims(vcluster)}

    def clear_finalizers(self, name: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, contract.NODECLAIM_PLURAL, name,
            {"metadata": {"finalizers": None}})  # a merge patch, the client's default

    def recreate_as_platform(self, recorded: Mapping[str, Any], new_name: str) -> dict[str, Any]:
        """What the Platform does after a deletion: a new claim, new name, same request."""
        spec = dict(recorded["spec"])
        return self.make_claim(spec["vClusterRef"], new_name, spec=spec,
                               labels=recorded["metadata"].get("labels") or {})

    def events(self, involved: str) -> list[dict[str, Any]]:
        doc = self.session.core.list_namespaced_event(self.namespace,
                                                      field_selector=f"involvedObject.name={involved}")
        return [{"reason": e.reason, "message": e.message, "type": e.type} for e in doc.items]

    def close(self) -> None:
        self.session.close()


# --- the hook as the Deployment runs it -------------------------------------------------------------


def deployment_container() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((DEPLOY_DIR / "30-deployment.yaml").read_text()))
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return dict(containers[0])


def service_account_kubeconfig(admin_kubeconfig: Path, out: Path, *, duration: str = "2h") -> Path:
    """A kubeconfig for the hook's ServiceAccount with a token from the TokenRequest API."""
    token = kubectl(admin_kubeconfig, "create", "token", HOOK_SERVICE_ACCOUNT, "-n", HOOK_NAMESPACE,
                    "--duration", duration).stdout.strip()
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    current = admin.get("current-context")
    context = next(c for c in admin["contexts"] if c["name"] == current)["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    cluster_entry = dict(cluster["cluster"])
    ca_path = cluster_entry.get("certificate-authority")
    if ca_path and not Path(ca_path).is_absolute():
        cluster_entry["certificate-authority"] = str((admin_kubeconfig.parent / ca_path).resolve())
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "hook",
        "clusters": [{"name": "platform", "cluster": cluster_entry}],
        "users": [{"name": HOOK_SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "hook", "context": {"cluster": "platform", "user": HOOK_SERVICE_ACCOUNT,
                                                  "namespace": HOOK_NAMESPACE}}],
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HookProcess:
    """One replica of the Deployment, as a child process on this machine."""

    def __init__(self, kubeconfig: Path, *, pod_name: str, log_path: Path,
                 overrides: Mapping[str, str] | None = None) -> None:
        container = deployment_container()
        command = list(container["command"])
        # The image puts `platform-hook` on PATH; here it is the venv's console script.
        command[0] = str(Path(sys.executable).parent / command[0])
        self.argv = command + list(container.get("args") or [])
        env: dict[str, str] = {}
        # Resolve the Downward API like the kubelet would, with this machine as the pod.
        field_values = {"metadata.name": pod_name, "metadata.namespace": HOOK_NAMESPACE,
                        "status.podIP": "127.0.0.1"}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            else:
                env[item["name"]] = field_values[item["valueFrom"]["fieldRef"]["fieldPath"]]
        self.port = free_port()  # two replicas share 127.0.0.1 here; pods have their own IPs
        env["HOOK_HTTP_PORT"] = str(self.port)
        env.update(overrides or {})
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                    "KUBECONFIG": str(kubeconfig), **env}
        self.log_path = log_path
        self.pod_name = pod_name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HookProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd="/")
        log.close()
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str) -> float:
        code, text = self.get("/metrics")
        if code != 200:
            return -1.0
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for(f"hook {self.pod_name} ready", lambda: self.get("/readyz")[0] == 200, timeout=timeout)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


# --- fixtures shared by tests/integration/test_hook_*.py (imported there) ----------------------------

FAST_ENV = {
    # Small periods so the scenarios take seconds; the values are the Deployment's knobs.
    "HOOK_GRACE_SECONDS": "1",
    "HOOK_POLL_SECONDS": "0.2",
    "HOOK_RESYNC_SECONDS": "20",
    "HOOK_WATCH_SECONDS": "10",
    "HOOK_LEASE_SECONDS": "3",
    "HOOK_RENEW_SECONDS": "0.5",
    "HOOK_MAX_BACKOFF_SECONDS": "2",
    "HOOK_LOG_LEVEL": "DEBUG",
}


class PlatformEnv:
    """The stand-in Platform on the test cluster: CRDs, the applied manifests, the hook's kubeconfig."""

    def __init__(self, admin_kubeconfig: Path, workdir: Path) -> None:
        self.admin_kubeconfig = admin_kubeconfig
        self.workdir = workdir
        install_crds(admin_kubeconfig)
        self.apply_result = apply_deploy(admin_kubeconfig)
        self.hook_kubeconfig = service_account_kubeconfig(admin_kubeconfig, workdir / "hook.kubeconfig")


class Hooks:
    """Starts hook replicas for one test (scoped to its namespace) and stops them afterwards."""

    def __init__(self, env: PlatformEnv, namespace: str, logdir: Path) -> None:
        self.env, self.namespace, self.logdir = env, namespace, logdir
        self.started: list[HookProcess] = []

    def start(self, pod_name: str, **overrides: str) -> HookProcess:
        extra = {**FAST_ENV, "HOOK_NAMESPACES": self.namespace, **overrides}
        hook = HookProcess(self.env.hook_kubeconfig, pod_name=pod_name,
                           log_path=self.logdir / f"{pod_name}.log", overrides=extra).start()
        self.started.append(hook)
        return hook

    def stop_all(self) -> None:
        for hook in self.started:
            hook.stop()
