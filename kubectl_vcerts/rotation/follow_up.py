"""What happens around the user's kubeconfigs once a CA change (rotate-ca, a CA-changing restore) is
done: write the new admin kubeconfig (--kubeconfig-out), find the contexts that still trust the old
CA and, when asked, fix them in the file that defines each entry, after backing that file up.

The workflow decides and writes through ports; it returns a `CaFollowUp` that the CLI renders.
The old CA and admin certificate come from the backup made before the write, which is also right
when the run finished an interrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kubectl_vcerts import kubeyaml
from kubectl_vcerts.rotation import trust
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.ports import BackupPort, CertsPort
from kubectl_vcerts.rotation.trust import TrustedContext


class FollowUpPort(CertsPort, BackupPort, Protocol):
    def vcluster_kubeconfig(self, vcluster: VCluster) -> bytes | None:
        """The `config` of `vc-NAME` (vCluster's own kubeconfig for users), or None when absent."""
        ...


class PrivateFiles(Protocol):
    """Local files that hold credentials (cli/files.py): 0600, atomic, never a silent overwrite."""

    def write(self, path: Path, data: bytes, *, overwrite: bool, keep_mode: bool = False) -> None: ...

    def backup(self, path: Path, unix_time: int) -> Path: ...


@dataclass(frozen=True)
class UserKubeconfig:
    """The user's kubeconfig files in kubectl's order, each parsed (kube/kubeconfig.py)."""

    paths: tuple[Path, ...]
    documents: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class FileUpdate:
    """One kubeconfig file rewritten, the copy made before, and the entries changed in it."""

    path: Path
    backup: Path
    clusters: tuple[str, ...]  # clusters whose CA was replaced
    users: tuple[str, ...]  # users that got the new admin credentials


@dataclass(frozen=True)
class CaFollowUp:
    vcluster: VCluster
    applied: bool  # False for --dry-run: everything below says what would happen
    paths: tuple[Path, ...]  # the user's kubeconfig files
    kubeconfig_out: Path | None
    server: str | None  # the server written to kubeconfig_out (None: admin.conf's own)
    stale: tuple[TrustedContext, ...]  # contexts that trust the old (dry run: the current) CA
    updated: tuple[FileUpdate, ...]  # empty unless asked to update
    # the server is vCluster's in-pod default (https://localhost:PORT): reachable only through a tunnel
    server_in_pod: bool = False
    stage: str = ""  # the staged rotation's phase the operation did (plan.stage); stale = lacks the new CA


def follow_up(
    report: OperationReport,
    *,
    port: FollowUpPort,
    files: PrivateFiles,
    user: UserKubeconfig,
    kubeconfig_out: Path | None,
    overwrite: bool,
    update_kubeconfig: bool,
    now: datetime,
    server: str | None = None,
) -> CaFollowUp:
    """`server` (--vcluster-server) is what --kubeconfig-out names; else the server of vc-NAME."""
    vc = report.plan.vcluster
    if not report.applied:
        return _dry_run(report, port=port, user=user, kubeconfig_out=kubeconfig_out)
    new = report.plan.new_data
    if kubeconfig_out is not None:
        if server is None:
            config = port.vcluster_kubeconfig(vc)
            server = trust.server_of(config) if config else None
        files.write(kubeconfig_out, trust.admin_kubeconfig(new, server=server), overwrite=overwrite)
    stale: tuple[TrustedContext, ...] = ()
    updated: tuple[FileUpdate, ...] = ()
    if report.backup and user.paths:
        old = port.read_backup(vc, report.backup).data or {}
        changes = trust.kubeconfig_changes(user.documents, old, new, update=update_kubeconfig)
        stale = changes.stale
        if changes.updated:
            updated = _write_files(files, user.paths, changes.updated, stale, unix_time=int(now.timestamp()))
    return CaFollowUp(
        vcluster=vc,
        applied=True,
        paths=user.paths,
        kubeconfig_out=kubeconfig_out,
        server=server if kubeconfig_out is not None else None,
        stale=stale,
        updated=updated,
        server_in_pod=kubeconfig_out is not None and in_pod_server(server),
        stage=report.plan.stage,
    )


def in_pod_server(server: str | None) -> bool:
    """vCluster writes `https://localhost:<proxy port>` into vc-NAME unless exportKubeConfig.server says
    otherwise (pkg/setup/controller_context.go): the pod's own address, which answers on the user's
    machine only through `vcluster connect` or a port-forward."""
    if not server:
        return False
    parsed = urlsplit(server)
    return parsed.hostname == "localhost"


def _dry_run(
    report: OperationReport, *, port: FollowUpPort, user: UserKubeconfig, kubeconfig_out: Path | None
) -> CaFollowUp:
    """Name what would be affected: the contexts that trust the CA in the secret now."""
    vc = report.plan.vcluster
    stale: tuple[TrustedContext, ...] = ()
    if user.paths:
        current = port.read_certs(vc).data
        stale = trust.kubeconfig_changes(user.documents, current, current, update=False).stale
    return CaFollowUp(
        vcluster=vc,
        applied=False,
        paths=user.paths,
        kubeconfig_out=kubeconfig_out,
        server=None,
        stale=stale,
        updated=(),
        stage=report.plan.stage,
    )


def _write_files(
    files: PrivateFiles,
    paths: Sequence[Path],
    updated: Mapping[int, dict[str, Any]],
    stale: Sequence[TrustedContext],
    *,
    unix_time: int,
) -> tuple[FileUpdate, ...]:
    """Back up, then write, each file that defines a stale entry (and only those). Every backup is
    made before the first write, so a failed backup leaves all files as they were."""
    saved = {index: files.backup(paths[index], unix_time) for index in sorted(updated)}
    result: list[FileUpdate] = []
    for index, doc in sorted(updated.items()):
        files.write(paths[index], kubeyaml.dump(doc), overwrite=True, keep_mode=True)
        result.append(
            FileUpdate(
                path=paths[index],
                backup=saved[index],
                clusters=tuple(sorted({c.cluster for c in stale if c.cluster_file == index})),
                users=tuple(
                    sorted({c.user for c in stale if c.uses_old_admin_cert and c.user_file == index})
                ),
            )
        )
    return tuple(result)
