"""After a CA change: wire rotation/follow_up.py to the cluster and the user's files, and turn its
result into the lines shown under the report ("What else to do after a CA change")."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kubectl_vcerts import contract
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.files import backup_file, write_private_file
from kubectl_vcerts.pki.stage_state import Stage, StagedState
from kubectl_vcerts.rotation.follow_up import CaFollowUp, UserKubeconfig, follow_up
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.trust import TrustedContext, stale_in_window


class _Files:
    """PrivateFiles over cli/files.py."""

    def write(self, path: Path, data: bytes, *, overwrite: bool, keep_mode: bool = False) -> None:
        write_private_file(path, data, overwrite=overwrite, keep_mode=keep_mode)

    def backup(self, path: Path, unix_time: int) -> Path:
        return backup_file(path, unix_time)


def user_kubeconfig(deps: Deps) -> UserKubeconfig:
    """The user's kubeconfig files as kubectl reads and merges them (kube/kubeconfig.py): --kubeconfig
    alone, else the existing $KUBECONFIG entries, else ~/.kube/config."""
    from kubectl_vcerts.kube.kubeconfig import load_user_kubeconfig

    config = load_user_kubeconfig(deps.target.kubeconfig)
    return UserKubeconfig(paths=tuple(config.files), documents=tuple(dict(doc) for doc in config.documents))


def kubeconfig_follow_up(
    deps: Deps,
    report: OperationReport,
    *,
    kubeconfig_out: Path | None,
    overwrite: bool,
    update_kubeconfig: bool,
    server: str | None = None,
) -> list[str]:
    """Run the follow-up of a CA change (or, for --dry-run, say what it would touch); lines for the user."""
    from kubectl_vcerts.kube.rotation import KubeRotationPorts

    port = KubeRotationPorts(deps.session(), refresh=lambda vc: vc)
    result = follow_up(
        report,
        port=port,
        files=_Files(),
        user=user_kubeconfig(deps),
        kubeconfig_out=kubeconfig_out,
        overwrite=overwrite,
        update_kubeconfig=update_kubeconfig,
        now=deps.now(),
        server=server,
    )
    return render_follow_up(result, update_kubeconfig=update_kubeconfig)


def finish_preview(deps: Deps, plan: RotationPlan) -> list[str]:
    """Before a staged rotation's finish is confirmed: the contexts of the user's kubeconfig files that
    hold only the old CA, which stop working with it."""
    if plan.stage != "finish" or not plan.old_ca_fingerprint:
        return []
    user = user_kubeconfig(deps)
    state = StagedState(Stage.SWITCH, plan.old_ca_fingerprint, plan.new_ca_fingerprint)
    stale = stale_in_window(user.documents, state)
    if not stale:
        return []
    return [f"  - contexts of {_files_label(user.paths)} that trust only the old CA (stop working now): "
            + _contexts_where(stale, user.paths)]


def _contexts_where(stale: Sequence[TrustedContext], paths: Sequence[Path]) -> str:
    """`name` for one file, `name (in FILE)` when several files are merged."""
    if len(paths) == 1:
        return ", ".join(c.name for c in stale)
    return ", ".join(f"{c.name} (in {paths[c.context_file]})" for c in stale)


def _files_label(paths: Sequence[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else "your kubeconfig (" + os.pathsep.join(map(str, paths)) + ")"


def render_follow_up(result: CaFollowUp, *, update_kubeconfig: bool) -> list[str]:
    if not result.applied:
        return _render_dry_run(result, update_kubeconfig=update_kubeconfig)
    if result.stage in ("trust", "switch", "rollback"):
        return _render_window(result)
    vc, paths, stale = result.vcluster, result.paths, result.stale
    lines: list[str] = ["", "What else to do after a CA change:"]
    if result.kubeconfig_out is not None:
        lines.append(
            f"  - wrote a new admin kubeconfig to {result.kubeconfig_out} "
            f"(mode 0600, server {result.server or 'from admin.conf'})"
        )
        if result.server_in_pod:
            lines.append(
                f"    {result.server} is vCluster's in-pod address (vc-{vc.name}): use the file through "
                f"`kubectl port-forward -n {vc.namespace} svc/{vc.name} 8443:443`, or write a reachable "
                "server with --vcluster-server URL"
            )
    if result.updated:
        lines.append(
            f"  - updated {len(stale)} context(s) of {_files_label(paths)}: "
            + ", ".join(
                c.name + (" (CA + admin credentials)" if c.uses_old_admin_cert else " (CA)") for c in stale
            )
        )
        for update in result.updated:
            what = [f"cluster {name} (CA)" for name in update.clusters] + [
                f"user {name} (admin credentials)" for name in update.users
            ]
            lines.append(f"    {update.path} (backup {update.backup}): {', '.join(what)}")
    elif stale:
        lines.append(
            f"  - these contexts of {_files_label(paths)} still trust the old CA: "
            f"{_contexts_where(stale, paths)} (fix with --update-kubeconfig, or reconnect)"
        )
    lines.append(
        f"  - reconnect: `vcluster connect {vc.name} -n {vc.namespace}` (kubeconfigs from before "
        f"the change fail with a certificate error)"
    )
    if vc.private_nodes:
        lines.append(
            "  - private nodes: re-join every node with a token from `vcluster token create` and "
            "`--force-join`; auto nodes: delete their NodeClaims on the Platform"
        )
    lines.append(
        "  - if vCluster Platform manages it: recreate the kubeconfigs and access keys it issued from the "
        "old CA"
    )
    lines.append(
        f"  - service-account tokens keep working (sa.key is kept); "
        f"{contract.kubeconfig_secret_name(vc.name)} is rewritten by vCluster on start"
    )
    return lines


def _render_window(result: CaFollowUp) -> list[str]:
    """After trust, switch or the rollback of a phase: nothing has stopped working; say what to move
    before finish."""
    vc, paths, stale = result.vcluster, result.paths, result.stale
    lines: list[str] = ["", "Before finish (old kubeconfigs keep working until then):"]
    if result.kubeconfig_out is not None:
        lines.append(f"  - wrote a new admin kubeconfig to {result.kubeconfig_out} (mode 0600, server "
                     f"{result.server or 'from admin.conf'}): it trusts both CAs and outlives finish")
    if result.updated:
        lines.append(f"  - updated {len(stale)} context(s) of {_files_label(paths)} to trust both CAs: "
                     + ", ".join(c.name for c in stale))
        lines += [f"    {u.path} (backup {u.backup})" for u in result.updated]
    elif stale:
        lines.append(f"  - these contexts of {_files_label(paths)} trust only the old CA: "
                     f"{_contexts_where(stale, paths)} (add the new one with --update-kubeconfig, or "
                     f"reconnect; they stop working at finish)")
    lines.append(f"  - hand out new kubeconfigs (vc-{vc.name}, `vcluster connect`, --kubeconfig-out) and "
                 "update CI secrets now: those made since trust outlive finish")
    if vc.private_nodes:
        when = "after switch" if result.stage == "trust" else "now"
        lines.append(f"  - private nodes keep working until finish: re-join them {when} (the control plane "
                     "issues kubelet certificates from the new CA from switch on; `kubectl vcerts token "
                     f"create {vc.name} --kubeadm` pins both CAs); finish runs the private-node and "
                     "Platform steps for those left")
    return lines


def _render_dry_run(result: CaFollowUp, *, update_kubeconfig: bool) -> list[str]:
    lines: list[str] = []
    if result.kubeconfig_out is not None:
        lines.append(f"  would write a new admin kubeconfig to {result.kubeconfig_out} (mode 0600)")
    if result.stale:
        if result.stage:
            verb = ("would update" if update_kubeconfig
                    else "stop working at finish" if result.stage != "finish" else "would stop working")
            what = "trust only the old CA"
        else:
            verb = "would update" if update_kubeconfig else "would stop working"
            what = "trust the current CA"
        lines.append(
            f"  contexts of {_files_label(result.paths)} that {what} ({verb}): "
            + _contexts_where(result.stale, result.paths)
        )
    return lines
