"""Private nodes against the emulator's REAL virtual API server: nodes are plain Node objects (no
kubelet), pods are bound to them through spec.nodeName, evictions go through the real Eviction API and
PodDisruptionBudgets, and a small "kubelet" thread finishes the deletion of terminating pods as a
kubelet would after stopping their containers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kubectl_vcerts.pki import ca_fingerprint
from tests.integration.e2e_support import emulated, plugin, read_secret, wait_serving
from tests.support.emulator import Emulator, Generation

pytestmark = pytest.mark.cluster

STOPPED = "Kubelet stopped posting node status."
# A bootstrap token is ID.SECRET; the secret half is a credential and must never reach failure output.
BOOTSTRAP_TOKEN = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")


def redacted(text: str) -> str:
    """`text` with the secret half of every bootstrap token replaced by `<secret>` (the ID is kept), for
    assertions and their messages: a failure then shows the output without the credential."""
    return BOOTSTRAP_TOKEN.sub(r"\1.<secret>", text)


def virtual(kube_session: Any, emulator: Emulator, namespace: str, name: str, *,
            after: Generation | None = None) -> Any:
    """An admin session to the virtual cluster with the credentials of vc-NAME, once a start after
    `after` wrote it, through the Service."""
    emulator.wait_exported(after=after.number if after else 0)
    config = read_secret(kube_session, namespace, f"vc-{name}")["config"]
    return emulator.virtual_session(config, emulator.service)


def make_node(
    api: Any,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    ready: str = "True",
    message: str = "kubelet is posting ready status",
) -> None:
    api.core.create_node({"metadata": {"name": name, "labels": labels or {}}})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.core.patch_node_status(
        name,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready,
                        "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown",
                        "message": message,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ]
            }
        },
    )


def make_pod(api: Any, name: str, node: str, labels: dict[str, str] | None = None) -> None:
    api.core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "nodeName": node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
            },
        },
    )
    # What the kubelet reports for a started pod (a Pending pod may always be evicted, budget or not).
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": now}
    api.core.patch_namespaced_pod_status(
        name, "default", {"status": {"phase": "Running", "conditions": [ready]}}
    )


@contextmanager
def fake_kubelet(api: Any) -> Iterator[None]:
    """Delete (grace 0) pods that are terminating, as the kubelet does once their containers stopped."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.3):
            # The API server restarts during the CA change (and the old credentials stop working): go on.
            with contextlib.suppress(Exception):
                for pod in api.core.list_pod_for_all_namespaces().items:
                    if pod.metadata.deletion_timestamp is not None:
                        api.core.delete_namespaced_pod(
                            pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                        )

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def prepare(api: Any) -> None:
    # No controller-manager runs in the emulated virtual cluster: make the `default` ServiceAccount
    # the ServiceAccount admission plugin asks for.
    api.core.create_namespaced_service_account("default", {"metadata": {"name": "default"}})


def test_nodes_are_classified_tokens_have_vclusters_shape_and_rotate_ca_refuses_with_manual_nodes(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        wait_serving(emulator, None)
        api = virtual(kube_session, emulator, vc.namespace, vc.name)
        make_node(api, "worker-manual")
        make_node(
            api, "pool-abc", labels={"karpenter.sh/nodepool": "default", "karpenter.sh/registered": "true"}
        )
        make_node(api, "platform-1", labels={"vcluster.loft.sh/provider-platform": "kubevirt"})

        listed = plugin(host, vc.namespace, "nodes", vc.name, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        classes = {i["name"]: i["class"] for i in json.loads(listed.stdout)["items"]}
        assert classes == {"worker-manual": "manual", "pool-abc": "auto", "platform-1": "auto"}
        overridden = plugin(
            host,
            vc.namespace,
            "nodes",
            vc.name,
            "-o",
            "json",
            "--manual-selector",
            "karpenter.sh/nodepool=default",
        )
        classes = {i["name"]: i["class"] for i in json.loads(overridden.stdout)["items"]}
        assert classes == {"worker-manual": "auto", "pool-abc": "manual", "platform-1": "auto"}

        # token create: the Secret `vcluster token create` writes, and its join command.
        started = datetime.now(UTC)
        made = plugin(host, vc.namespace, "token", "create", vc.name, "--expires", "2h")
        assert made.returncode == 0, redacted(made.stderr)
        match = re.fullmatch(
            r'curl -fsSLk "https://127\.0\.0\.1:\d+/node/join\?token=([a-z0-9]{6})\.'
            r'([a-z0-9]{16})" \| sh -',
            made.stdout.strip(),
        )
        assert match, redacted(made.stdout)
        token_id, token_secret = match.groups()
        secret = api.core.read_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
        data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
        assert secret.type == "bootstrap.kubernetes.io/token"
        assert secret.metadata.labels == {
            "vcluster.loft.sh/token": "true",
            "vcluster.loft.sh/token-node-type": "worker",
        }
        expiration = datetime.strptime(data.pop("expiration"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        # compared apart, as a bool, so that a failure of either assertion never shows the secret
        same_secret = data.pop("token-secret", None) == token_secret
        assert same_secret, "token-secret of the Secret is not the secret of the printed join command"
        assert data == {
            "token-id": token_id,
            "usage-bootstrap-signing": "true",
            "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
            "description": "token generated by cluster-api-bootstrap-provider-kubeadm",
        }
        assert started + timedelta(hours=2) - timedelta(seconds=5) <= expiration
        assert expiration <= datetime.now(UTC) + timedelta(hours=2)
        kubeadm = plugin(host, vc.namespace, "token", "create", vc.name, "--kubeadm")
        assert kubeadm.returncode == 0, redacted(kubeadm.stderr)
        joined = redacted(kubeadm.stdout)  # `kubeadm join … --token ID.SECRET …`
        spki = (
            x509.load_pem_x509_certificate(vc.certs["ca.crt"])
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
        assert joined.strip().endswith(
            f"--discovery-token-ca-cert-hash sha256:{hashlib.sha256(spki).hexdigest()}"
        )
        assert joined.startswith("kubeadm join 127.0.0.1:")

        # rotate-ca refuses, names the manual node and the options, and changes nothing.
        before = read_secret(kube_session, vc.namespace, vc.certs_secret)
        refused = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes")
        assert refused.returncode == 2, refused.stderr
        assert "worker-manual" in refused.stderr and "pool-abc" not in refused.stderr
        assert "--delete-manual-nodes" in refused.stderr and "--manual-selector" in refused.stderr
        assert read_secret(kube_session, vc.namespace, vc.certs_secret) == before
        assert [n.metadata.name for n in api.core.list_node().items] == [
            "platform-1",
            "pool-abc",
            "worker-manual",
        ]
        api.close()


def test_delete_manual_nodes_drains_them_before_the_ca_changes_and_prints_join_commands_after(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        api = virtual(kube_session, emulator, vc.namespace, vc.name)
        prepare(api)
        make_node(api, "worker-1")
        make_node(api, "worker-lost", ready="Unknown", message=STOPPED)
        make_node(api, "pool-abc", labels={"karpenter.sh/nodepool": "default"})
        make_pod(api, "web", "worker-1", {"app": "web"})
        make_pod(api, "guarded", "worker-1", {"app": "guarded"})
        make_pod(api, "stranded", "worker-lost")
        api.policy.create_namespaced_pod_disruption_budget(
            "default",
            {
                "metadata": {"name": "guarded"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
            },
        )
        before = read_secret(kube_session, vc.namespace, vc.certs_secret)

        with fake_kubelet(api):
            # 1. The budget forbids evicting `guarded`: the drain gives up and the CA is not changed.
            with monkeypatch.context() as patched:
                patched.setenv("VCERTS_DRAIN_TIMEOUT", "3")
                blocked = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--delete-manual-nodes")
            assert blocked.returncode != 0
            assert "worker-1" in blocked.stderr and "PodDisruptionBudget" in blocked.stderr, blocked.stderr
            assert ca_fingerprint(read_secret(kube_session, vc.namespace, vc.certs_secret)) == ca_fingerprint(
                before
            )
            assert api.core.read_namespaced_pod("guarded", "default").metadata.deletion_timestamp is None
            assert api.core.read_node("worker-1").spec.unschedulable is True  # cordoned

            # 2. Without the budget: cordon, drain, delete before the change; token and join commands after.
            api.policy.delete_namespaced_pod_disruption_budget("guarded", "default")
            done = plugin(
                host,
                vc.namespace,
                "rotate-ca",
                vc.name,
                "--yes",
                "--delete-manual-nodes",
                "--timeout",
                "120s",
            )
        assert done.returncode == 0, redacted(done.stderr)
        out = redacted(done.stdout)  # the join commands hold bootstrap tokens
        assert "node worker-1: cordoned, drained (1 pod(s) evicted)" in out  # `web` went in the first run
        assert "node worker-lost: kubelet stopped posting status; deleted without draining" in out
        token = re.search(r"join token ([a-z0-9]{6}) created", out)
        assert token, out
        for node in ("worker-1", "worker-lost"):
            assert re.search(
                # <secret> stands for exactly 16 of [a-z0-9] (BOOTSTRAP_TOKEN), as before redaction
                rf'{node}: curl -fsSLk "https://127\.0\.0\.1:\d+/node/join\?token={token.group(1)}\.'
                rf'<secret>" \| sh -s -- --force-join --node-name {node}',
                out,
            ), out
        assert "--force-join kills the containers running on the node" in out
        assert "delete nodeclaims.management.loft.sh pool-abc" in out
        api.close()

        wait_serving(emulator, gen)
        after = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert ca_fingerprint(after) != ca_fingerprint(before)
        api = virtual(kube_session, emulator, vc.namespace, vc.name, after=gen)
        assert [n.metadata.name for n in api.core.list_node().items] == ["pool-abc"]
        assert [p.metadata.name for p in api.core.list_namespaced_pod("default").items] == ["stranded"]
        assert api.core.read_namespaced_secret(f"bootstrap-token-{token.group(1)}", "kube-system").type == (
            "bootstrap.kubernetes.io/token"
        )
        api.close()
