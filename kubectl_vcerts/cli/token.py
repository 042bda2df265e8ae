"""`kubectl vcerts token create NAME [--expires 1h] [--kubeadm]`: a join token for private nodes, made
exactly as `vcluster token create` makes it (Secret kube-system/bootstrap-token-<id> in the virtual
cluster, type bootstrap.kubernetes.io/token), printing the join command (or the `kubeadm join` line).

`--expires` takes 1h, 30m, 2d …; "0" or "" means the token never expires.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from kubectl_vcerts.cli.deps import get_deps
from kubectl_vcerts.cli.operation import NameArgument, VclusterServerOption
from kubectl_vcerts.cli.options import parse_duration

app = typer.Typer(help="Join tokens for private nodes (like `vcluster token create`).", no_args_is_help=True)


def parse_expires(text: str) -> timedelta | None:
    value = text.strip()
    if value in ("", "0"):
        return None
    return parse_duration(value, flag="--expires")


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArgument,
    expires: Annotated[str, typer.Option("--expires", help='Lifetime of the token ("0": never).')] = "1h",
    kubeadm: Annotated[
        bool, typer.Option("--kubeadm", help="Print a `kubeadm join` command instead.")
    ] = False,
    force_join: Annotated[
        bool,
        typer.Option(
            "--force-join", help="Add --force-join to the join command (re-joining a node after a CA change)."
        ),
    ] = False,
    vcluster_server: VclusterServerOption = None,
) -> None:
    """Create a bootstrap token in the virtual cluster and print the command that joins a node."""
    from kubectl_vcerts.kube.virtual import open_gateway
    from kubectl_vcerts.rotation.join_tokens import FORCE_JOIN_WARNING, create_token

    ttl = parse_expires(expires)
    deps = get_deps(ctx)
    session = deps.session()
    gateway = open_gateway(
        session,
        namespace=session.namespace,
        vcluster=name,
        server=vcluster_server,
        request_timeout=deps.target.request_timeout,
    )
    try:
        created = create_token(gateway, now=deps.now(), ttl=ttl, kubeadm=kubeadm)
    finally:
        gateway.close()
    print(created.command(kubeadm=kubeadm, force_join=force_join and not kubeadm))
    if force_join and not kubeadm:
        deps.err.print(f"warning: {FORCE_JOIN_WARNING}", markup=False, highlight=False)
