"""`check`: read a vCluster's `NAME-certs` and judge it with the PKI library; never changes anything.

`check_vcluster` reads one vCluster (find + one secret get). `check_all` builds one summary row per
vCluster from a fixed number of list calls, whatever their number: Secrets labelled app=vcluster (certs
secrets carry app=vcluster,vcluster-name=NAME since vCluster v0.24, and vc-config-NAME carries the chart
labels), StatefulSets, Deployments and control-plane pods. A certs secret without those labels (made by
vCluster < v0.24) is not in the list; for such vClusters only, one extra get of NAME-certs is made.
The gateway reads each list in chunks (kubectl's --chunk-size), and each NAME-certs is reduced to its
report as it arrives, so memory grows with the reports, not with the secrets (the exporter's 500).

Works on a vCluster in any state (crash-looping, scaled down) and any distro: reading needs neither.
Imports nothing from kube/, cli/, kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ExitCode, ForbiddenError, NotFoundError
from kubectl_vcerts.pki import PkiReport, Status, inspect_pki
from kubectl_vcerts.pki.inspect import worst_of
from kubectl_vcerts.pki.stage_state import StagedState, staged_state
from kubectl_vcerts.rotation.discovery import assemble_vclusters, find_vcluster, list_accessible_workloads
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.unrestarted import Unrestarted, unrestarted

if TYPE_CHECKING:  # annotations only: importing the ports would cost `check` start-up time
    from kubectl_vcerts.rotation.ports import VClusterReader
    from kubectl_vcerts.rotation.records import SecretObject, WorkloadRecord

DEFAULT_WARN_WITHIN = timedelta(days=90)


@dataclass(frozen=True)
class CheckReport:
    """The certificates of one vCluster. `pki` is None when NAME-certs does not exist."""

    vcluster: VCluster
    secret_name: str
    pki: PkiReport | None
    checked_at: datetime
    warn_within: timedelta
    unrestarted: Unrestarted | None = None  # our last write is not running yet
    staged: StagedState | None = None  # a staged CA rotation under way (rotate-ca --phase)

    @property
    def worst(self) -> Status:
        """A missing secret is INVALID: there is nothing a vCluster could start with."""
        return Status.INVALID if self.pki is None else self.pki.worst


@dataclass(frozen=True)
class SummaryRow:
    """One vCluster in `check -A`."""

    vcluster: VCluster
    secret_name: str
    pki: PkiReport | None

    @property
    def worst(self) -> Status:
        return Status.INVALID if self.pki is None else self.pki.worst


@dataclass(frozen=True)
class CheckSummary:
    rows: tuple[SummaryRow, ...]
    checked_at: datetime
    warn_within: timedelta
    namespace: str | None  # None: all namespaces

    @property
    def worst(self) -> Status:
        return worst_of([row.worst for row in self.rows])


def exit_code_for(worst: Status) -> ExitCode:
    """The documented exit codes of `check`: 0 all fine, CHECK_EXPIRING when something expires within
    --warn-within, CHECK_EXPIRED when something is expired, not yet valid, invalid or missing."""
    if worst is Status.OK:
        return ExitCode.OK
    if worst is Status.EXPIRING:
        return ExitCode.CHECK_EXPIRING
    return ExitCode.CHECK_EXPIRED


def inspect_secret(secret: SecretObject | None, *, now: datetime, warn_within: timedelta) -> PkiReport | None:
    if secret is None:
        return None
    return inspect_pki(secret.data, now=now, warn_within=warn_within)


def check_vcluster(reader: VClusterReader, *, name: str, namespace: str, now: datetime,
                   warn_within: timedelta = DEFAULT_WARN_WITHIN) -> CheckReport:
    """Find the vCluster and inspect its NAME-certs (NotFoundError lists other namespaces)."""
    vcluster = find_vcluster(reader, name=name, namespace=namespace)
    secret_name = contract.certs_secret_name(name)
    secret = reader.read_secret(namespace=namespace, name=secret_name)
    return CheckReport(vcluster=vcluster, secret_name=secret_name,
                       pki=inspect_secret(secret, now=now, warn_within=warn_within),
                       checked_at=now, warn_within=warn_within,
                       unrestarted=unrestarted(vcluster, secret.annotations) if secret else None,
                       staged=staged_state(secret.data) if secret else None)


def _read_secrets(reader: VClusterReader, workloads: Sequence[WorkloadRecord], listed: str | None, *,
                  names: Sequence[str], now: datetime,
                  warn_within: timedelta) -> tuple[list[SecretObject], dict[tuple[str, str], PkiReport]]:
    """The vc-config-NAME secrets and the inspected NAME-certs, from one list of Secrets labelled
    app=vcluster read chunk by chunk: each NAME-certs is reduced to its report as it arrives, so its
    data (private keys included) is held only while it is inspected. vc-NAME (kubeconfigs) carry the
    label too and are not even decoded."""
    releases = {w.labels.get(contract.RELEASE_LABEL, "") for w in workloads}
    if names:
        releases &= set(names)
    certs = {contract.certs_secret_name(r) for r in releases}
    config_names = {contract.config_secret_name(r) for r in releases}
    configs: list[SecretObject] = []
    reports: dict[tuple[str, str], PkiReport] = {}
    for secret in reader.iter_secrets(namespace=listed, selector=contract.VCLUSTER_CERTS_SELECTOR,
                                      keep=lambda name: name in certs or name in config_names):
        if secret.name in config_names:
            configs.append(secret)
        if secret.name in certs:
            reports[(secret.namespace, secret.name)] = inspect_pki(secret.data, now=now,
                                                                  warn_within=warn_within)
    return configs, reports


def check_all(reader: VClusterReader, *, namespace: str | None, now: datetime, names: Sequence[str] = (),
              warn_within: timedelta = DEFAULT_WARN_WITHIN, selector: str = "") -> CheckSummary:
    """One row per vCluster in `namespace` (None: every namespace), optionally only those in `names`
    and those whose workload (StatefulSet or Deployment) matches the label selector `selector`.

    A name in `names` that matches no vCluster raises NotFoundError before anything is reported.
    """
    workloads, listed = list_accessible_workloads(reader, namespace=namespace, selector=selector)
    reports: dict[tuple[str, str], PkiReport] = {}
    vclusters: list[VCluster] = []
    if workloads:
        try:
            configs, reports = _read_secrets(reader, workloads, listed, names=names, now=now,
                                             warn_within=warn_within)
        except ForbiddenError:
            if listed is not None:
                raise
            listed = reader.default_namespace
            workloads = [w for w in workloads if w.namespace == listed]
            configs, reports = _read_secrets(reader, workloads, listed, names=names, now=now,
                                             warn_within=warn_within)
        pods = reader.list_pods(namespace=listed, selector=contract.VCLUSTER_SELECTOR)
        vclusters = assemble_vclusters(workloads, configs=configs, pods=pods)
    if names:
        asked = set(names)
        missing = sorted(asked - {vc.name for vc in vclusters})
        if missing:
            where = "any namespace" if namespace is None else f"namespace {namespace}"
            where += f" with labels {selector}" if selector else ""
            raise NotFoundError(f"vcluster {', '.join(missing)} not found in {where}",
                                hint="list vClusters with `kubectl vcerts check -A`")
        vclusters = [vc for vc in vclusters if vc.name in asked]
    rows = []
    for vc in vclusters:
        secret_name = contract.certs_secret_name(vc.name)
        if (vc.namespace, secret_name) in reports:
            pki: PkiReport | None = reports[(vc.namespace, secret_name)]
        else:
            # vCluster < v0.24 wrote NAME-certs without labels: the list cannot see it.
            secret = reader.read_secret(namespace=vc.namespace, name=secret_name)
            pki = inspect_secret(secret, now=now, warn_within=warn_within)
        rows.append(SummaryRow(vcluster=vc, secret_name=secret_name, pki=pki))
    rows.sort(key=lambda r: (r.vcluster.namespace, r.vcluster.name))
    return CheckSummary(rows=tuple(rows), checked_at=now, warn_within=warn_within, namespace=namespace)
