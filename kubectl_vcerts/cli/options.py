"""Option types shared by the commands (typer declarations; the values are in cli/formats.py).

kubectl's global flags (--kubeconfig, --context, -n/--namespace, --request-timeout, -v) are defined
once on the app callback; `flags.hoist_global_flags` moves them in front of the sub-command so that
users can write them anywhere, as with kubectl. Per-command options that recur (-o/--output, --yes,
--dry-run) are the Annotated aliases below.
"""

from __future__ import annotations

from typing import Annotated

import typer

# The values themselves live in cli/formats.py (no typer: the quick path of `check` uses them too).
from kubectl_vcerts.cli.formats import OutputFormat as OutputFormat
from kubectl_vcerts.cli.formats import parse_duration as parse_duration

OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format: table, wide, json or yaml.", case_sensitive=False),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the exact plan and change nothing.")]
