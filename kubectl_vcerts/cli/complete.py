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


def kubectl_complete() -> None:
    """Entry point `kubectl_complete-vcerts`: kubectl (>= 1.26) runs it to complete `kubectl vcerts …`.

    kubectl passes the words after `vcerts`, the last one being the word to complete (maybe empty), and
    reads one candidate per line followed by cobra's directive line (":4" = do not complete file names).
    The candidates come from typer's own shell-completion protocol (the variables bash sets: the
    instruction in COMPLETE_VAR, COMP_WORDS and COMP_CWORD), its public interface.
    """
    import contextlib
    import io
    import os
    import shlex
    import sys

    from kubectl_vcerts.cli.app import EXECUTABLE, app
    from kubectl_vcerts.cli.flags import COMPLETE_VAR, hoist_global_flags

    words = sys.argv[1:]
    incomplete = words[-1] if words else ""
    args = hoist_global_flags(words[:-1])
    protocol = {
        COMPLETE_VAR: "complete_bash",  # any shell: we format the candidates ourselves
        "COMP_WORDS": shlex.join([EXECUTABLE, *args, incomplete]),
        "COMP_CWORD": str(len(args) + 1),
    }
    saved = {name: os.environ.get(name) for name in protocol}
    printed = io.StringIO()
    try:
        os.environ.update(protocol)
        with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
            app(args=[], prog_name=EXECUTABLE, complete_var=COMPLETE_VAR)
    except Exception:
        printed = io.StringIO()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    for value in printed.getvalue().splitlines():
        if value:
            print(value)
    print(":4")
