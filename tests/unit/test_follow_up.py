"""The follow-up of a CA change (rotation/follow_up.py) against in-memory fakes: which kubeconfig
entries are stale, which files are backed up before any is written, and what --dry-run touches."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import kubeyaml
from kubectl_vcerts.cli.follow_up import render_follow_up
from kubectl_vcerts.errors import InvalidInputError
from kubectl_vcerts.rotation import trust
from kubectl_vcerts.rotation.follow_up import CaFollowUp, UserKubeconfig, follow_up
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest
from kubectl_vcerts.rotation.recovery import Operation
from kubectl_vcerts.rotation.workflow import Ports, Workflow
from tests.unit.rotation_fakes import FakeClock, FakeCluster, make_vcluster, pki_data


@dataclass
class FollowUpCluster(FakeCluster):
    vc_config: bytes | None = None

    def vcluster_kubeconfig(self, vcluster: VCluster) -> bytes | None:
        return self.vc_config


@dataclass
class Files:
    """PrivateFiles in memory; `log` keeps the order of backups and writes."""

    contents: dict[Path, bytes] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    fail_backup_of: Path | None = None

    def write(self, path: Path, data: bytes, *, overwrite: bool, keep_mode: bool = False) -> None:
        if path in self.contents and not overwrite:
            raise InvalidInputError(f"{path} exists")
        self.contents[path] = data
        self.log.append(f"write {path}")

    def backup(self, path: Path, unix_time: int) -> Path:
        if path == self.fail_backup_of:
            raise InvalidInputError(f"cannot back up {path}")
        copy = path.with_name(f"{path.name}.bak-{unix_time}")
        self.contents[copy] = self.contents[path]
        self.log.append(f"backup {path}")
        return copy


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(cluster: str, ca: bytes, user: str, cert: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": "https://127.0.0.1:1",
                                                   "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert),
                                          "client-key-data": b64(b"k")}}],
        "contexts": [{"name": f"{cluster}-ctx", "context": {"cluster": cluster, "user": user}}],
    }


def rotated(*, dry_run: bool = False) -> tuple[FollowUpCluster, OperationReport, dict[str, bytes]]:
    cluster = FollowUpCluster(vcluster=make_vcluster(), data=pki_data())
    old = dict(cluster.data)
    wf = Workflow(Ports(cluster, cluster, cluster, cluster, cluster), FakeClock(on_sleep=cluster.tick),
                  holder_dead=lambda _h: False)
    request = OperationRequest(operation=Operation.ROTATE_CA, holder="t", timeout=timedelta(seconds=30),
                               dry_run=dry_run)
    return cluster, wf.run(cluster.vcluster, request), old


def user_files(files: Files, old: dict[str, bytes]) -> UserKubeconfig:
    """Two files: the first defines a cluster trusting the old CA used with the old admin
    certificate; the second a cluster of somebody else's CA."""
    admin, _key = trust.admin_client_cert(old)
    docs = (kubeconfig("vc", old["ca.crt"], "admin", admin),
            kubeconfig("other", old["front-proxy-ca.crt"], "someone", b"cert"))
    paths = (Path("/home/u/a.yaml"), Path("/home/u/b.yaml"))
    for path, doc in zip(paths, docs, strict=True):
        files.contents[path] = kubeyaml.dump(doc)
    return UserKubeconfig(paths=paths, documents=docs)


def test_the_stale_context_is_named_and_no_file_is_touched_without_update_kubeconfig() -> None:
    cluster, report, old = rotated()
    files = Files()
    user = user_files(files, old)
    before = dict(files.contents)
    result = follow_up(report, port=cluster, files=files, user=user, kubeconfig_out=None, overwrite=False,
                       update_kubeconfig=False, now=FakeClock().now())
    assert [(c.name, c.uses_old_admin_cert) for c in result.stale] == [("vc-ctx", True)]
    assert result.updated == ()
    assert files.contents == before and files.log == []


def test_update_kubeconfig_backs_up_then_rewrites_only_the_file_that_defines_the_stale_entries() -> None:
    cluster, report, old = rotated()
    files = Files()
    user = user_files(files, old)
    untouched = files.contents[user.paths[1]]
    result = follow_up(report, port=cluster, files=files, user=user, kubeconfig_out=None, overwrite=False,
                       update_kubeconfig=True, now=FakeClock().now())
    assert files.log == [f"backup {user.paths[0]}", f"write {user.paths[0]}"]
    assert [(u.path, u.clusters, u.users) for u in result.updated] == [(user.paths[0], ("vc",), ("admin",))]
    assert files.contents[user.paths[1]] == untouched
    written = kubeyaml.load_mapping(files.contents[user.paths[0]])
    ca = base64.b64decode(written["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == cluster.data["ca.crt"] != old["ca.crt"]
    backup = result.updated[0].backup
    assert files.contents[backup] == kubeyaml.dump(user.documents[0])


def test_a_failed_backup_leaves_every_file_as_it_was() -> None:
    cluster, report, old = rotated()
    files = Files()
    user = user_files(files, old)
    files.fail_backup_of = user.paths[0]
    before = dict(files.contents)
    with pytest.raises(InvalidInputError):
        follow_up(report, port=cluster, files=files, user=user, kubeconfig_out=None, overwrite=False,
                  update_kubeconfig=True, now=FakeClock().now())
    assert files.contents == before


OUT = Path("/home/u/new.yaml")


def kubeconfig_out(server: str | None = None) -> tuple[CaFollowUp, dict[str, Any], bytes]:
    """--kubeconfig-out after a CA rotation whose vc-NAME names vCluster's default in-pod server:
    (result, the written file, the new ca.crt)."""
    cluster, report, _old = rotated()
    cluster.vc_config = kubeyaml.dump(kubeconfig("vc", b"", "admin", b"") | {
        "clusters": [{"name": "vc", "cluster": {"server": "https://localhost:8443"}}]})
    files = Files()
    result = follow_up(report, port=cluster, files=files, user=UserKubeconfig(paths=(), documents=()),
                       kubeconfig_out=OUT, overwrite=False, update_kubeconfig=False, now=FakeClock().now(),
                       server=server)
    return result, kubeyaml.load_mapping(files.contents[OUT]), cluster.data["ca.crt"]


def test_kubeconfig_out_gets_the_new_admin_conf_with_the_server_of_vc_name() -> None:
    result, doc, ca_crt = kubeconfig_out()
    assert result.server == "https://localhost:8443" and result.server_in_pod
    assert doc["clusters"][0]["cluster"]["server"] == "https://localhost:8443"
    ca = doc["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(ca) == ca_crt
    assert result.stale == ()
    lines = render_follow_up(result, update_kubeconfig=False)
    assert any("in-pod address" in line and "--vcluster-server" in line for line in lines)


def test_kubeconfig_out_names_the_vcluster_server_when_given() -> None:
    result, doc, _ca = kubeconfig_out(server="https://vc.example.com")
    assert doc["clusters"][0]["cluster"]["server"] == result.server == "https://vc.example.com"
    assert not result.server_in_pod
    assert not any("in-pod" in line for line in render_follow_up(result, update_kubeconfig=False))


def test_a_dry_run_names_the_contexts_of_the_current_ca_and_writes_nothing() -> None:
    cluster, report, old = rotated(dry_run=True)
    assert cluster.data == old
    files = Files()
    user = user_files(files, old)
    before = dict(files.contents)
    result = follow_up(report, port=cluster, files=files, user=user, kubeconfig_out=Path("/home/u/new.yaml"),
                       overwrite=False, update_kubeconfig=True, now=FakeClock().now())
    assert not result.applied
    assert [c.name for c in result.stale] == ["vc-ctx"]
    assert files.contents == before and files.log == []


def _staged(cluster: FollowUpCluster, stage: str, *, dry_run: bool = False) -> OperationReport:
    from kubectl_vcerts.pki.stage_state import Stage

    wf = Workflow(Ports(cluster, cluster, cluster, cluster, cluster), FakeClock(on_sleep=cluster.tick),
                  holder_dead=lambda _h: False)
    request = OperationRequest(operation=Operation.ROTATE_CA, holder="t", timeout=timedelta(seconds=30),
                               dry_run=dry_run, stage=Stage(stage))
    return wf.run(cluster.refresh(cluster.vcluster), request)


def test_in_a_staged_rotation_only_contexts_lacking_the_new_ca_are_stale_and_the_update_adds_it() -> None:
    cluster = FollowUpCluster(vcluster=make_vcluster(), data=pki_data())
    old = dict(cluster.data)
    report = _staged(cluster, "trust")
    files = Files()
    user = user_files(files, old)
    result = follow_up(report, port=cluster, files=files, user=user, kubeconfig_out=None, overwrite=False,
                       update_kubeconfig=True, now=FakeClock().now())
    assert [(c.name, c.uses_old_admin_cert) for c in result.stale] == [("vc-ctx", True)]
    assert result.stage == "trust"
    written = kubeyaml.load_mapping(files.contents[user.paths[0]])
    ca = base64.b64decode(written["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == cluster.data["ca.crt"] and ca.startswith(old["ca.crt"].strip())  # old first, then new
    # the updated context now holds the new CA: after switch it is not stale, and finish's plan
    # (a dry run) names only what still lacks it
    updated = UserKubeconfig(paths=user.paths, documents=(written, user.documents[1]))
    switch = _staged(cluster, "switch")
    again = follow_up(switch, port=cluster, files=Files(), user=updated, kubeconfig_out=None,
                      overwrite=False, update_kubeconfig=False, now=FakeClock().now())
    assert again.stale == ()
    plan = _staged(cluster, "finish", dry_run=True)
    named = follow_up(plan, port=cluster, files=Files(), user=user, kubeconfig_out=None, overwrite=False,
                      update_kubeconfig=False, now=FakeClock().now())
    assert [c.name for c in named.stale] == ["vc-ctx"] and not named.applied
    lines = render_follow_up(named, update_kubeconfig=False)
    assert any("trust only the old CA (would stop working): vc-ctx" in line for line in lines), lines


def test_at_finish_a_context_never_updated_gets_the_new_ca_and_new_admin_credentials() -> None:
    cluster = FollowUpCluster(vcluster=make_vcluster(), data=pki_data())
    old = dict(cluster.data)
    for stage in ("trust", "switch"):
        _staged(cluster, stage)
    finish = _staged(cluster, "finish")
    files = Files()
    user = user_files(files, old)  # the admin certificate from before the rotation, never updated
    result = follow_up(finish, port=cluster, files=files, user=user, kubeconfig_out=None, overwrite=False,
                       update_kubeconfig=True, now=FakeClock().now())
    assert [(c.name, c.uses_old_admin_cert) for c in result.stale] == [("vc-ctx", True)]
    written = kubeyaml.load_mapping(files.contents[user.paths[0]])
    admin, _key = trust.admin_client_cert(cluster.data)
    assert base64.b64decode(written["users"][0]["user"]["client-certificate-data"]) == admin
    trusted = base64.b64decode(written["clusters"][0]["cluster"]["certificate-authority-data"])
    assert trusted == cluster.data["ca.crt"]


def test_between_phases_the_follow_up_says_nothing_stopped_and_what_to_move_before_finish() -> None:
    cluster = FollowUpCluster(vcluster=make_vcluster(), data=pki_data())
    old = dict(cluster.data)
    report = _staged(cluster, "trust")
    files = Files()
    result = follow_up(report, port=cluster, files=files, user=user_files(files, old), kubeconfig_out=None,
                       overwrite=False, update_kubeconfig=False, now=FakeClock().now())
    lines = render_follow_up(result, update_kubeconfig=False)
    assert lines[1] == "Before finish (old kubeconfigs keep working until then):"
    assert any("trust only the old CA: vc-ctx" in line and "stop working at finish" in line for line in lines)
    assert not any("fail with a certificate error" in line for line in lines)
