"""Shell completion of vCluster names (for NAME arguments: `autocompletion=complete_vcluster_name`).

Runs while the shell completes, before the root callback: it reads the global flags from the parsed
root context itself. Any failure (no cluster, RBAC, timeout) completes nothing rather than printing.
"""

from __future__ import annotations

import typer


def complete_vcluster_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Names of the vClusters in the namespace the command would use."""
    try:
        from kubectl_vcerts.kube.client import KubeTarget, connect
        from kubectl_vcerts.kube.discovery import open_reader
        from kubectl_vcerts.rotation.discovery import list_vclusters

        params = ctx.find_root().params
        target = KubeTarget(kubeconfig=params.get("kubeconfig"), context=params.get("context"),
                            namespace=params.get("namespace"), request_timeout=5.0)
        reader = open_reader(target, lambda: connect(target))
        try:
            found = list_vclusters(reader, namespace=reader.default_namespace)
        finally:
            reader.close()
        return sorted({vc.name for vc in found if vc.name.startswith(incomplete)})
    except Exception:  # completion must never fail loudly
        return []
