"""Every refusal leaves NAME-certs (data, resourceVersion, annotations) and the pods (UIDs) unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ConflictError
from kubectl_vcerts.kube.backups import read_certs, write_certs
from tests.integration.rotation_support import backups, leases, run_cli, snapshot
from tests.support.pki_builder import issuing_ca_under_root

pytestmark = pytest.mark.cluster


def test_refusals_on_one_vcluster_change_nothing(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    before = snapshot(kube_session, ns, name)

    # not on a terminal and no --yes
    result = run_cli(config, ns, "rotate", name)
    assert result.returncode == 2 and "--yes" in result.stderr

    # a lock held by someone else (live, not expired)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": contract.lock_lease_name(name)},
        "spec": {
            "holderIdentity": "bob@elsewhere:1 rotate-ca",
            "leaseDurationSeconds": 600,
            "acquireTime": now,
            "renewTime": now,
        },
    }
    kube_session.coordination.create_namespaced_lease(ns, lease)
    result = run_cli(config, ns, "rotate", name, "--yes")
    assert result.returncode == 15 and "bob@elsewhere:1 rotate-ca" in result.stderr
    kube_session.coordination.delete_namespaced_lease(contract.lock_lease_name(name), ns)

    # vCluster's own cert watcher is rotating (its Lease held by a replica)
    lease["metadata"]["name"] = contract.vcluster_rotation_lease_name(name)
    lease["spec"]["holderIdentity"] = f"{name}-0"
    kube_session.coordination.create_namespaced_lease(ns, lease)
    result = run_cli(config, ns, "rotate", name, "--yes")
    assert result.returncode == 15 and "cert watcher" in result.stderr
    kube_session.coordination.delete_namespaced_lease(contract.vcluster_rotation_lease_name(name), ns)

    # an interrupted `vcluster certs rotate` (loft.sh/restoring on the workload)
    patch = {
        "metadata": {
            "annotations": {contract.RESTORING_ANNOTATION: "true", contract.PAUSED_REPLICAS_ANNOTATION: "1"}
        }
    }
    kube_session.apps.patch_namespaced_stateful_set(name, ns, patch)
    result = run_cli(config, ns, "rotate", name, "--yes")
    assert result.returncode == 12 and "--finish-interrupted" in result.stderr
    unpatch = {
        "metadata": {
            "annotations": {contract.RESTORING_ANNOTATION: None, contract.PAUSED_REPLICAS_ANNOTATION: None}
        }
    }
    kube_session.apps.patch_namespaced_stateful_set(name, ns, unpatch)

    # an invalid bring-your-own CA
    result = run_cli(
        config, ns, "rotate-ca", name, "--yes", "--ca-cert", "/dev/null", "--ca-key", "/dev/null"
    )
    assert result.returncode == 14

    # a bring-your-own intermediate: vCluster would hand out trust that OpenSSL clients refuse
    bundle, key = issuing_ca_under_root(now=datetime.now(UTC))
    (tmp_path / "issuing.crt").write_bytes(bundle)
    (tmp_path / "issuing.key").write_bytes(key)
    result = run_cli(config, ns, "rotate-ca", name, "--yes", "--ca-cert", str(tmp_path / "issuing.crt"),
                     "--ca-key", str(tmp_path / "issuing.key"))
    assert result.returncode == 14 and "intermediate" in result.stderr, result.stderr
    assert "self-signed root" in result.stderr

    # dry runs
    for command in (
        ["rotate", name, "--dry-run"],
        ["rotate-ca", name, "--dry-run", "-o", "json"],
        ["restore", name, "--dry-run"],
    ):
        result = run_cli(config, ns, *command)
        assert result.returncode in (0, 10), result.stderr  # restore without backups: not found

    assert snapshot(kube_session, ns, name) == before
    assert backups(kube_session, ns, name) == [] and leases(kube_session, ns) == {}
    assert json.loads(run_cli(config, ns, "rotate-ca", name, "--dry-run", "-o", "json").stdout)["ca"][
        "changed"
    ]


def test_a_k3s_vcluster_is_refused(kube_cluster: Any, kube_session: Any, make_vcluster: Any) -> None:
    vc = make_vcluster(distro="k3s")
    before = snapshot(kube_session, vc.namespace, vc.name)
    for command in ("rotate", "rotate-ca", "restore"):
        result = run_cli(kube_cluster.kubeconfig, vc.namespace, command, vc.name, "--yes")
        assert result.returncode == 11 and "k3s" in result.stderr, result.stderr
    assert snapshot(kube_session, vc.namespace, vc.name) == before


def test_a_write_based_on_a_stale_read_is_refused_and_the_secret_is_left_as_the_other_writer_left_it(
    kube_session: Any, make_vcluster: Any
) -> None:
    """vCluster's watcher writes NAME-certs between our read and our write: our write fails, unchanged."""
    vc = make_vcluster()
    ours = read_certs(kube_session, namespace=vc.namespace, vcluster=vc.name)
    secret = kube_session.core.read_namespaced_secret(contract.certs_secret_name(vc.name), vc.namespace)
    secret.metadata.annotations = {**(secret.metadata.annotations or {}), "someone": "else"}
    kube_session.core.replace_namespaced_secret(secret.metadata.name, vc.namespace, secret)
    theirs = snapshot(kube_session, vc.namespace, vc.name)
    with pytest.raises(ConflictError):
        write_certs(
            kube_session,
            namespace=vc.namespace,
            vcluster=vc.name,
            data=ours.data,
            annotations={contract.OPERATION_ANNOTATION: "{}"},
            resource_version=ours.resource_version,
        )
    assert snapshot(kube_session, vc.namespace, vc.name) == theirs
