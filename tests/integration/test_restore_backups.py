"""`restore` (latest, by ID, --from-dir, --no-renew) and `backups list|export|prune` on a real cluster."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.pki import Status, ca_fingerprint, from_files, inspect_pki
from tests.integration.rotation_support import backups, decode, run_cli, snapshot

pytestmark = pytest.mark.cluster


def test_backups_restore_export_and_prune(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    original = snapshot(kube_session, ns, name)

    rotated = run_cli(config, ns, "rotate-ca", name, "--yes", "--timeout", "90s")
    assert rotated.returncode == 0, rotated.stderr
    after_ca = snapshot(kube_session, ns, name)

    # list: newest first, with operation and the CA fingerprint of the backed-up state
    listed = run_cli(config, ns, "backups", "list", name, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["operation"] == "rotate-ca" and entry["caFingerprint"] == ca_fingerprint(original.data)
    table = run_cli(config, ns, "backups", "list", name)
    assert entry["name"] in table.stdout and "rotate-ca" in table.stdout

    # restore by ID without renewing: the original bytes are back, the CA change restarts everything
    restored = run_cli(
        config, ns, "restore", name, "--backup", entry["id"], "--no-renew", "--yes", "--timeout", "90s"
    )
    assert restored.returncode == 0, restored.stderr
    now = snapshot(kube_session, ns, name)
    assert now.data == original.data
    assert not set(now.pods.values()) & set(after_ca.pods.values())
    newest = backups(kube_session, ns, name)[-1]
    assert newest.metadata.annotations[contract.BACKUP_OPERATION_ANNOTATION] == "restore"

    # restore latest (the rotate-ca state) and renew its leaves
    latest = run_cli(config, ns, "restore", name, "--yes", "--timeout", "90s")
    assert latest.returncode == 0, latest.stderr
    renewed = snapshot(kube_session, ns, name)
    assert ca_fingerprint(renewed.data) == ca_fingerprint(after_ca.data)
    assert renewed.data["apiserver.crt"] != after_ca.data["apiserver.crt"]

    # export: vCluster's /data/pki layout, files 0600, dirs 0700; no silent overwrite
    out = tmp_path / "pki"
    exported = run_cli(config, ns, "backups", "export", name, "--backup", entry["id"], "--dir", str(out))
    assert exported.returncode == 0, exported.stderr
    assert (out / "etcd" / "ca.crt").exists() and (out / "admin.conf").exists()
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "etcd").stat().st_mode) == 0o700
    again = run_cli(config, ns, "backups", "export", name, "--backup", entry["id"], "--dir", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert (
        run_cli(
            config, ns, "backups", "export", name, "--backup", entry["id"], "--dir", str(out), "--force"
        ).returncode
        == 0
    )
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert from_files(files) == original.data

    # restore --from-dir (a /data/pki.bak/<ts> copy): the exported original, leaves renewed
    from_dir = run_cli(config, ns, "restore", name, "--from-dir", str(out), "--yes", "--timeout", "90s")
    assert from_dir.returncode == 0, from_dir.stderr
    final = snapshot(kube_session, ns, name)
    assert ca_fingerprint(final.data) == ca_fingerprint(original.data)
    assert inspect_pki(final.data, now=datetime.now(UTC)).worst is Status.OK
    (out / "etcd" / "peer.key").unlink()
    incomplete = run_cli(config, ns, "restore", name, "--from-dir", str(out), "--yes")
    assert incomplete.returncode == 13 and "etcd-peer.key" in incomplete.stderr
    assert snapshot(kube_session, ns, name) == final

    # prune: keep 2 of the 4 backups (dry run first)
    assert len(backups(kube_session, ns, name)) == 4
    dry = run_cli(config, ns, "backups", "prune", name, "--keep", "2", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("Would delete") == 2
    assert len(backups(kube_session, ns, name)) == 4
    pruned = run_cli(config, ns, "backups", "prune", name, "--keep", "2", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    kept = [b.metadata.name for b in backups(kube_session, ns, name)]
    assert len(kept) == 2 and decode(backups(kube_session, ns, name)[0].data)


def test_backups_are_owned_like_name_certs_pruned_after_success_and_never_taken_from_another_vcluster(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    from tests.support.polling import wait_until

    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    core = kube_session.core
    certs = core.read_namespaced_secret(vc.certs_secret, ns)
    [owner] = certs.metadata.owner_references
    assert owner.kind == "Service"

    for _ in range(3):
        result = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s", "--keep-backups", "2")
        assert result.returncode == 0, result.stderr
    kept = backups(kube_session, ns, name)
    assert len(kept) == 2, "the oldest backup is pruned after the third rotation"
    for backup in kept:
        assert [(o.kind, o.name, o.uid) for o in backup.metadata.owner_references] == [
            (owner.kind, owner.name, owner.uid)
        ]
        assert backup.metadata.annotations[contract.BACKUP_IDENTITY_ANNOTATION] == owner.uid

    # A backup left by an earlier vCluster of the same name (another owner uid, no owner left).
    source = core.read_namespaced_secret(kept[-1].metadata.name, ns)
    foreign_name = f"{name}-certs-backup-9999999999"
    core.create_namespaced_secret(ns, {
        "metadata": {"name": foreign_name, "labels": dict(source.metadata.labels),
                     "annotations": {**source.metadata.annotations,
                                     contract.BACKUP_IDENTITY_ANNOTATION: "uid-of-an-earlier-vcluster",
                                     contract.BACKUP_CREATED_ANNOTATION: "2286-11-20T17:46:39Z"}},
        "type": "Opaque", "immutable": True, "data": source.data,
    })
    before = snapshot(kube_session, ns, name)
    refused = run_cli(config, ns, "restore", name, "--backup", foreign_name, "--yes", "--timeout", "90s")
    assert refused.returncode == 14, refused.stderr
    assert "another vCluster" in refused.stderr and "--from-dir" in refused.stderr
    assert snapshot(kube_session, ns, name).data == before.data
    latest = run_cli(config, ns, "restore", name, "--dry-run", "-o", "json")
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout)["source"] != foreign_name

    # Deleting the vCluster (its Service) deletes the backups and the keys they hold.
    core.delete_namespaced_service(name, ns)
    wait_until(lambda: [b.metadata.name for b in backups(kube_session, ns, name)] == [foreign_name],
               timeout=60, fail=lambda: AssertionError("the backups owned by the Service were not deleted"))
