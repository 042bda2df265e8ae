"""`kubectl vcerts check NAME` / `check -A` / `check NAME1 NAME2`: the typer command.

Declares the options and hands over to `cli.checking.execute`, which holds what `check` does (and its
output schemas). The common invocations also reach `execute` through the quick path (cli/quick.py),
which parses these same options without typer: keep the two in step (tests/unit/test_quick.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_vcerts.cli.checking import execute
from kubectl_vcerts.cli.complete import complete_vcluster_name
from kubectl_vcerts.cli.deps import get_deps
from kubectl_vcerts.cli.formats import CheckFormat, OutputFormat

NamesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="vCluster name(s); none: every vCluster in the namespace (with -A: in every namespace).",
        show_default=False,
        autocompletion=complete_vcluster_name,
    ),
]
AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Every vCluster in every namespace, one row each.")
]
WarnWithinOption = Annotated[
    str, typer.Option("--warn-within", help="Report EXPIRING (exit 3) when a certificate ends within this.")
]
SelectorOption = Annotated[
    str | None,
    typer.Option("--selector", "-l",
                 help="Only vClusters whose StatefulSet/Deployment matches this label selector."),
]
CheckOutputOption = Annotated[
    CheckFormat,
    typer.Option("--output", "-o", case_sensitive=False,
                 help="Output format: table, wide, json, yaml or prometheus (the text format, for "
                 "node-exporter's textfile collector)."),
]
EmitEventsOption = Annotated[
    bool,
    typer.Option("--emit-events",
                 help="Record a Warning Event on each vCluster whose certificates are expiring, expired or "
                 "invalid (once per condition and day)."),
]
LiveOption = Annotated[
    bool,
    typer.Option("--live", help="Also compare what the virtual API server serves with the secret."),
]
LiveServerOption = Annotated[
    str | None,
    typer.Option(
        "--vcluster-server", help="With --live: URL of the virtual API server (default: from vc-NAME)."
    ),
]


def command(
    ctx: typer.Context,
    names: NamesArgument = None,
    all_namespaces: AllNamespacesOption = False,
    warn_within: WarnWithinOption = "90d",
    output: CheckOutputOption = CheckFormat.TABLE,
    live: LiveOption = False,
    vcluster_server: LiveServerOption = None,
    selector: SelectorOption = None,
    emit_events: EmitEventsOption = False,
) -> None:
    """Show when the certificates of a vCluster expire (one row per vCluster for several, none, or -A).

    Exit codes: 0 all fine, 3 something expires within --warn-within, 4 something is expired, not yet
    valid, invalid or missing (with --live also: what is served differs from the secret). With -o
    prometheus: 0 once everything was read (the statuses are in the metrics).
    """
    prometheus = output is CheckFormat.PROMETHEUS
    code = execute(
        get_deps(ctx),
        names=names or [],
        all_namespaces=all_namespaces,
        warn_within=warn_within,
        output=OutputFormat.TABLE if prometheus else OutputFormat(output.value),
        live=live,
        vcluster_server=vcluster_server,
        selector=selector or "",
        prometheus=prometheus,
        emit_events=emit_events,
    )
    if code:
        raise typer.Exit(code)
