"""Is what kubectl vcerts last wrote to NAME-certs running? vCluster reads the secret only at start-up
(`/data/pki` is downloaded once), so pods that started before our last write (`--no-restart`, a restart
that is still pending or failed) still run the certificates from before.

That window matters beyond "not effective yet": vCluster's own `vcluster certs rotate` / `rotate-ca`
renews from the running pod's /data/pki, never from the secret, and merge-patches every key back
(pkg/certs/rotate.go), so running it then brings the old certificates — and after our rotate-ca the
old CA — back over ours. Pure: annotations and the syncer containers' start times in, names out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.rotation.model import VCluster


@dataclass(frozen=True)
class Unrestarted:
    written_at: datetime
    pods: tuple[str, ...]  # control-plane pods that started before it

    def message(self, vcluster: VCluster) -> str:
        return (
            f"{contract.certs_secret_name(vcluster.name)} was written by kubectl vcerts at "
            f"{timefmt.seconds_utc(self.written_at)}, but {', '.join(self.pods)} started before and still "
            "run the certificates from before; restart them (kubectl delete pod), and do not run "
            "vCluster's own `vcluster certs rotate` until then: it renews from the running pod's files "
            "and would write the old certificates back"
        )


def _written_at(annotations: Mapping[str, str]) -> datetime | None:
    return timefmt.parse_rfc3339(annotations.get(contract.WRITTEN_AT_ANNOTATION, ""))


def unrestarted(vcluster: VCluster, annotations: Mapping[str, str]) -> Unrestarted | None:
    """The control-plane pods that started before our last write of NAME-certs (`annotations` are its
    own), or None. A pod's start is its syncer container's (a container the kubelet restarted read
    the secret anew); pods without one (that container is not running: its next start reads the
    secret as it is then) and terminating ones are left out: they decide nothing.
    Deployed-etcd pods are left out too: they read the secret volume, which the kubelet keeps current,
    and a CA change (the one thing etcd needs a restart for) always restarts them or is refused.
    Start times have whole seconds: a pod started in the second of the write counts as started after
    it (pods we restart start right after our write; the write's second is rounded down)."""
    when = _written_at(annotations)
    if when is None:
        return None
    pods = tuple(
        p.name for p in vcluster.pods
        if p.started is not None and p.started < when and p.status != "Terminating"
    )
    return Unrestarted(written_at=when, pods=pods) if pods else None
