"""Pure planning helpers (rotation/plan.py) and the kubeconfig trust logic (rotation/trust.py)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import yaml

from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.pki import rotate_ca
from kubectl_vcerts.rotation import trust
from kubectl_vcerts.rotation.model import BackingStore, Rollout, VCluster, WorkloadKind
from kubectl_vcerts.rotation.plan import (
    RestartStep,
    data_losses,
    keep_data_mode,
    leaf_validity_ok,
    majority_gaps,
    plan_restart,
    resolve_backup,
    rolls_out,
    select_prunable,
    staged_changes,
)
from kubectl_vcerts.rotation.ports import BackupRecord
from kubectl_vcerts.rotation.recovery import RestartMode
from tests.unit.rotation_fakes import FakeClock, make_vcluster, pki_data


def backups(*stamps: int) -> list[BackupRecord]:
    start = FakeClock().now()
    return [
        BackupRecord(
            name=f"vc-certs-backup-{s}",
            namespace="team-a",
            vcluster="vc",
            created=start + timedelta(seconds=s),
            operation="rotate",
            ca_fingerprint="sha256:x",
            source_resource_version="1",
        )
        for s in stamps
    ]


def test_prune_keeps_the_newest_n() -> None:
    doomed = select_prunable(backups(5, 1, 3, 2, 4), keep=2)
    assert [r.name for r in doomed] == ["vc-certs-backup-3", "vc-certs-backup-2", "vc-certs-backup-1"]
    assert select_prunable(backups(1, 2), keep=10) == []


@pytest.mark.parametrize(
    ("ident", "expected"),
    [
        pytest.param("latest", "vc-certs-backup-9", id="latest is the newest"),
        pytest.param("3", "vc-certs-backup-3", id="an ID is the unix-time suffix"),
        pytest.param("vc-certs-backup-3", "vc-certs-backup-3", id="the full Secret name works too"),
    ],
)
def test_a_backup_is_found_by_latest_id_or_name(ident: str, expected: str) -> None:
    assert resolve_backup(backups(3, 9, 1), ident, vcluster=make_vcluster()).name == expected


def test_an_unknown_backup_is_not_found_with_a_hint_to_list() -> None:
    with pytest.raises(NotFoundError) as info:
        resolve_backup(backups(3), "7", vcluster=make_vcluster())
    assert "backups list vc" in info.value.hint
    with pytest.raises(NotFoundError):
        resolve_backup([], "latest", vcluster=make_vcluster())


def test_rolling_restarts_deployed_etcd_first_then_each_control_plane_pod() -> None:
    steps = plan_restart(make_vcluster(replicas=2, etcd=2), RestartMode.ROLLING, ca_change=True)
    assert [(s.group, s.pods) for s in steps] == [
        ("etcd", ("vc-etcd-0",)),
        ("etcd", ("vc-etcd-1",)),
        ("control-plane", ("vc-0",)),
        ("control-plane", ("vc-1",)),
    ]
    together = plan_restart(make_vcluster(replicas=2, etcd=1), RestartMode.TOGETHER, ca_change=True)
    assert [(s.group, s.pods) for s in together] == [("all", ("vc-etcd-0", "vc-0", "vc-1"))]


def test_without_a_ca_change_deployed_etcd_is_not_restarted() -> None:
    for mode in RestartMode:
        steps = plan_restart(make_vcluster(replicas=2, etcd=3), mode, ca_change=False)
        assert [p for s in steps for p in s.pods] == ["vc-0", "vc-1"]


def together(vc: VCluster, *, ca_change: bool) -> tuple[RestartStep, ...]:
    return plan_restart(vc, RestartMode.TOGETHER, ca_change=ca_change)


def rolling(vc: VCluster, *, ca_change: bool) -> tuple[RestartStep, ...]:
    return plan_restart(vc, RestartMode.ROLLING, ca_change=ca_change)


EMBEDDED_ETCD = BackingStore.EMBEDDED_ETCD


@pytest.mark.parametrize(
    ("vc", "ca_change", "restart", "lost"),
    [
        pytest.param(make_vcluster(etcd=3, etcd_ephemeral=True), True, together, 1,
                     id="deployed etcd on emptyDirs restarted together"),
        pytest.param(make_vcluster(etcd=3, etcd_ephemeral=True), True, rolling, 3,
                     id="deployed etcd members on a new CA cannot resync from the old one"),
        pytest.param(make_vcluster(etcd=3, etcd_ephemeral=True), False, together, 0,
                     id="a leaf renewal leaves deployed etcd running"),
        pytest.param(make_vcluster(etcd=3), True, together, 0, id="deployed etcd on PVCs"),
        pytest.param(make_vcluster(etcd=3, ephemeral=True), True, together, 0,
                     id="a control plane on an emptyDir with deployed etcd holds no state"),
        pytest.param(make_vcluster(ephemeral=True), False, rolling, 1,
                     id="an embedded database goes with its pod"),
        pytest.param(make_vcluster(replicas=3, ephemeral=True, backing_store=EMBEDDED_ETCD), False,
                     rolling, 0, id="embedded etcd members restarted one at a time resync"),
        pytest.param(make_vcluster(replicas=3, ephemeral=True, backing_store=EMBEDDED_ETCD), False,
                     together, 1, id="embedded etcd members restarted together"),
        pytest.param(make_vcluster(replicas=1, ephemeral=True, backing_store=EMBEDDED_ETCD), False,
                     rolling, 1, id="a single embedded etcd member has no peer to resync from"),
        pytest.param(make_vcluster(ephemeral=True, backing_store=BackingStore.EXTERNAL_DATABASE), True,
                     together, 0, id="an external database"),
    ],
)
def test_data_losses_name_each_restart_step_that_deletes_the_state(
    vc: VCluster, ca_change: bool, restart: Any, lost: int
) -> None:
    losses = data_losses(vc, restart(vc, ca_change=ca_change), ca_change=ca_change)
    assert len(losses) == lost
    assert all("emptyDir" in loss and "data is lost" in loss for loss in losses)


def test_keep_data_mode_rolls_etcd_members_that_can_resync_else_keeps_the_mode() -> None:
    embedded = make_vcluster(replicas=3, ephemeral=True, backing_store=EMBEDDED_ETCD)
    assert keep_data_mode(embedded, RestartMode.TOGETHER, ca_change=False) is RestartMode.ROLLING
    assert keep_data_mode(embedded, RestartMode.TOGETHER, ca_change=True) is RestartMode.TOGETHER
    assert keep_data_mode(make_vcluster(replicas=3), RestartMode.TOGETHER, ca_change=False) is (
        RestartMode.TOGETHER)


def test_leaf_validity_must_outlive_vclusters_90_day_renewal_window() -> None:
    assert leaf_validity_ok(timedelta(days=365)) and leaf_validity_ok(timedelta(days=120))
    assert not leaf_validity_ok(timedelta(days=90))
    assert not leaf_validity_ok(timedelta(days=119)), "a margin of 30 days beyond the window"


def kubeconfig(contexts: list[tuple[str, bytes, bytes]]) -> dict[str, Any]:
    """contexts: (name, CA PEM, client cert PEM)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": f"c-{n}",
                "cluster": {
                    "server": "https://x",
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
            for n, ca, _ in contexts
        ],
        "users": [
            {
                "name": f"u-{n}",
                "user": {
                    "client-certificate-data": base64.b64encode(cert).decode(),
                    "client-key-data": base64.b64encode(b"k").decode(),
                },
            }
            for n, _, cert in contexts
        ],
        "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": f"u-{n}"}} for n, _, _ in contexts],
    }


def test_contexts_that_trust_the_old_ca_are_found_and_updated() -> None:
    old = pki_data()
    new = rotate_ca(old, now=FakeClock().now()).data
    old_admin, _ = trust.admin_client_cert(old)
    other = pki_data()["front-proxy-ca.crt"]
    doc = kubeconfig(
        [("admin", old["ca.crt"], old_admin), ("user", old["ca.crt"], other), ("elsewhere", other, other)]
    )
    stale = trust.contexts_trusting(doc, trust.old_trust_anchors(old), old_admin)
    assert [(c.name, c.uses_old_admin_cert) for c in stale] == [("admin", True), ("user", False)]
    new_cert, new_key = trust.admin_client_cert(new)
    updated = trust.update_kubeconfig(
        doc, stale, new_ca=trust.kubeconfig_ca(new), new_admin_cert=new_cert, new_admin_key=new_key
    )
    assert trust.contexts_trusting(updated, trust.old_trust_anchors(old), old_admin) == []
    assert trust.contexts_trusting(updated, trust.old_trust_anchors(new), new_cert)[0].uses_old_admin_cert
    users = {u["name"]: u["user"] for u in updated["users"]}
    assert base64.b64decode(users["u-user"]["client-certificate-data"]) == other  # not the admin: kept
    assert (
        doc["clusters"][0]["cluster"]["certificate-authority-data"]
        == base64.b64encode(old["ca.crt"]).decode()
    )


def test_the_new_admin_kubeconfig_uses_the_vcluster_server() -> None:
    out = yaml.safe_load(trust.admin_kubeconfig(pki_data(), server="https://localhost:8443"))
    assert out["clusters"][0]["cluster"]["server"] == "https://localhost:8443"
    assert trust.server_of(trust.admin_kubeconfig(pki_data(), server=None)) == "https://127.0.0.1:6443"


DEPLOYMENT = WorkloadKind.DEPLOYMENT


@pytest.mark.parametrize(
    ("vc", "mode", "groups"),
    [
        pytest.param(make_vcluster(kind=DEPLOYMENT), RestartMode.ROLLING, [("rollout", ("vc-0",))],
                     id="a Deployment is rolled out by its controller"),
        pytest.param(make_vcluster(replicas=2, etcd=1, kind=DEPLOYMENT), RestartMode.ROLLING,
                     [("etcd", ("vc-etcd-0",)), ("rollout", ("vc-0", "vc-1"))],
                     id="deployed etcd first, then one rolling update of every replica"),
        pytest.param(make_vcluster(kind=DEPLOYMENT), RestartMode.TOGETHER, [("all", ("vc-0",))],
                     id="a CA change or a control plane already down deletes the pods"),
        pytest.param(make_vcluster(kind=DEPLOYMENT, rollout=Rollout(paused=True)), RestartMode.ROLLING,
                     [("control-plane", ("vc-0",))], id="a paused Deployment would not roll out"),
        pytest.param(make_vcluster(kind=DEPLOYMENT, rollout=Rollout(strategy="Recreate")),
                     RestartMode.ROLLING, [("control-plane", ("vc-0",))], id="Recreate gains nothing"),
        pytest.param(make_vcluster(), RestartMode.ROLLING, [("control-plane", ("vc-0",))],
                     id="a StatefulSet's pods are deleted one at a time"),
    ],
)
def test_which_restarts_are_rolled_out_by_the_deployment_controller(
    vc: VCluster, mode: RestartMode, groups: list[tuple[str, tuple[str, ...]]]
) -> None:
    steps = plan_restart(vc, mode, ca_change=len(vc.etcd_pods) > 0)
    assert [(s.group, s.pods) for s in steps] == groups
    assert rolls_out(vc, mode) is any(s.rollout for s in steps)


def on_delete(vc: VCluster, *, revisions: Sequence[str], update: str = "v2",
              etcd: Rollout | None = None) -> VCluster:
    pods = tuple(replace(p, revision=r) for p, r in zip(vc.pods, revisions, strict=True))
    etcd_pods = tuple(replace(p, revision="e1") for p in vc.etcd_pods)
    return replace(vc, pods=pods, etcd_pods=etcd_pods, etcd_rollout=etcd,
                   rollout=Rollout(strategy="OnDelete", update_revision=update))


def test_deleting_pods_behind_a_template_staged_under_ondelete_is_named() -> None:
    staged = on_delete(make_vcluster(replicas=3), revisions=["v2", "v1", "v1"])
    [found] = staged_changes(staged, rolling(staged, ca_change=False))
    assert "team-a/vc (updateStrategy OnDelete)" in found and "revision v2" in found
    assert "vc-1, vc-2 do not run yet" in found
    # only the pods a step deletes count: vc-0 already runs the update revision
    assert staged_changes(staged, (RestartStep("control-plane", ("vc-0",)),)) == ()
    # all pods at the update revision, a RollingUpdate StatefulSet, or a rollout step: nothing staged
    assert staged_changes(on_delete(make_vcluster(replicas=2), revisions=["v2", "v2"]),
                          together(make_vcluster(replicas=2), ca_change=False)) == ()
    rolling_update = replace(staged, rollout=Rollout(update_revision="v2"))
    assert staged_changes(rolling_update, rolling(rolling_update, ca_change=False)) == ()
    assert staged_changes(staged, (RestartStep("rollout", ("vc-1",)),)) == ()


def test_a_ca_change_names_deployed_etcd_staged_under_ondelete_a_leaf_rotation_does_not() -> None:
    vc = on_delete(make_vcluster(etcd=2), revisions=["v2"],
                   etcd=Rollout(strategy="OnDelete", update_revision="e2"))
    [found] = staged_changes(vc, together(vc, ca_change=True))
    assert "team-a/vc-etcd" in found and "vc-etcd-0, vc-etcd-1" in found
    assert staged_changes(vc, together(vc, ca_change=False)) == ()


@pytest.mark.parametrize(
    ("vc", "mode", "gap"),
    [
        pytest.param(make_vcluster(replicas=2, backing_store=EMBEDDED_ETCD), RestartMode.ROLLING,
                     "leaves 1 of 2 etcd members running", id="2 embedded etcd members, one at a time"),
        pytest.param(make_vcluster(replicas=3, backing_store=EMBEDDED_ETCD), RestartMode.ROLLING, None,
                     id="3 members: 2 keep the majority"),
        pytest.param(make_vcluster(replicas=2, backing_store=EMBEDDED_ETCD), RestartMode.TOGETHER, None,
                     id="all together: a stop the steps already say"),
        pytest.param(make_vcluster(replicas=1, backing_store=EMBEDDED_ETCD), RestartMode.ROLLING, None,
                     id="one member: the single pod's restart is the stop"),
        pytest.param(make_vcluster(replicas=2), RestartMode.ROLLING, None,
                     id="no etcd among the control-plane pods"),
        pytest.param(make_vcluster(replicas=2, etcd=2), RestartMode.ROLLING, None,
                     id="a leaf renewal leaves deployed etcd running"),
    ],
)
def test_a_restart_that_leaves_etcd_without_a_majority_is_said(
    vc: VCluster, mode: RestartMode, gap: str | None
) -> None:
    gaps = majority_gaps(vc, plan_restart(vc, mode, ca_change=False))
    if gap is None:
        assert gaps == ()
    else:
        assert len(gaps) == 1 and gap in gaps[0] and "3 or more members" in gaps[0]


def test_deployed_etcd_members_restarted_one_by_one_can_lose_the_majority() -> None:
    vc = make_vcluster(replicas=1, etcd=2)
    steps = (RestartStep("etcd", ("vc-etcd-0",)), RestartStep("etcd", ("vc-etcd-1",)))
    assert "vc-etcd-0 leaves 1 of 2" in majority_gaps(vc, steps)[0]
    assert majority_gaps(make_vcluster(replicas=1, etcd=3), steps) == ()
