"""The `kubectl vcerts` command line: kubectl's global flags, lazily registered commands, error rendering.

Registering a command
---------------------
`COMMANDS` below is the one list of commands. Each line is

    Entry("<command name>", "<module path>", "<one-line help for `kubectl vcerts --help`>"),

and the module exposes either

  * ``def command(ctx: typer.Context, ...) -> None`` — a plain command (its docstring is its help), or
  * ``app: typer.Typer`` — a group of sub-commands (e.g. ``backups list|export|prune``).

Registering one is a one-line additive edit; list only modules that exist. A module is imported only
when its command runs, its own help is shown, or the shell completes inside it — never for
`kubectl vcerts --help`, which stays free of the Kubernetes client (and fast). Commands get their
dependencies with `cli.deps.get_deps(ctx)`; the root callback builds them from the global flags.

Global flags (`--kubeconfig`, `--context`, `-n/--namespace`, `--request-timeout`, `-v/--verbose`) may
be written anywhere on the line, as with kubectl: `run` moves them in front of the sub-command.

Errors: every `VcertsError` is caught once, in `run`, and printed by `cli.failure.report_failure` as
``kubectl vcerts: error: …`` and ``  hint: …`` on stderr, exiting with its `ExitCode`. Anything else
prints one line and "run with -v for details" (the traceback only with -v; never local variables: they
hold keys).

The console entry point is `cli.entry.main`: it runs the common forms of `check` on the quick path
(cli/quick.py, no typer) and hands everything else to `run`.

Imports typer only; nothing from kube/, kubernetes or rich at import time.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, NamedTuple

import typer
from typer.core import TyperGroup

from kubectl_vcerts import __version__
from kubectl_vcerts.cli.failure import print_error, report_failure
from kubectl_vcerts.cli.flags import BOOL_FLAGS, COMPLETE_VAR, hoist_global_flags, parse_request_timeout
from kubectl_vcerts.errors import ExitCode, UsageError, VcertsError


class Entry(NamedTuple):  # a NamedTuple: defining it costs a fraction of a dataclass at every start
    name: str  # the sub-command, as typed
    module: str  # exposes `command` (plain command) or `app` (typer.Typer sub-group)
    help: str  # short help shown by `kubectl vcerts --help` without importing the module


COMMANDS: tuple[Entry, ...] = (
    Entry("check", "kubectl_vcerts.cli.check", "Show the certificates of vClusters and when they expire."),
    Entry("rotate", "kubectl_vcerts.cli.rotate", "Renew the leaf certificates (the CA is kept)."),
    Entry("rotate-ca", "kubectl_vcerts.cli.rotate_ca", "Replace the CA (or bring your own) and all leaves."),
    Entry("restore", "kubectl_vcerts.cli.restore", "Put a backup (or a PKI directory) back."),
    Entry("backups", "kubectl_vcerts.cli.backups", "List, export and prune backups."),
    Entry("nodeclaims", "kubectl_vcerts.cli.nodeclaims", "NodeClaims of vCluster Platform instances."),
    Entry("nodes", "kubectl_vcerts.cli.nodes", "Private nodes of a vCluster: automatic or manually joined."),
    Entry("token", "kubectl_vcerts.cli.token", "Join tokens for private nodes (`vcluster token create`)."),
    Entry("exporter", "kubectl_vcerts.cli.exporter", "Serve certificate expiry as Prometheus metrics."),
)

# --------------------------------------------------------------------------------- lazy commands


def load_command(entry: Entry) -> Any:
    """Import an entry's module and turn what it exposes into a click command named `entry.name`."""
    module = importlib.import_module(entry.module)
    sub_app = getattr(module, "app", None)
    if isinstance(sub_app, typer.Typer):
        group = typer.main.get_group(sub_app)
        group.name = entry.name
        return group
    function = getattr(module, "command", None)
    if function is None:
        raise RuntimeError(f"{entry.module} exposes neither `command` nor `app`")
    single = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)  # root has them
    single.command(name=entry.name)(function)
    command = typer.main.get_command(single)
    command.name = entry.name
    return command


class LazyGroup(TyperGroup):
    """The root group: commands defined in this module, plus `COMMANDS` imported on first use."""

    lazy: ClassVar[dict[str, Entry]] = {entry.name: entry for entry in COMMANDS}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name not in self.lazy:
            return own
        loaded = load_command(self.lazy[cmd_name])
        self.commands[cmd_name] = loaded  # later look-ups (and help) reuse it
        return loaded

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Plain help (no rich) for the lazy entries without importing them."""
        rows = [(name, cmd.get_short_help_str(limit=70)) for name, cmd in sorted(self.commands.items())
                if name not in self.lazy and not cmd.hidden]
        rows += [(entry.name, entry.help) for entry in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    name="kubectl vcerts",
    help="Check and rotate vCluster certificates through the host cluster's API (no exec, no helper pods).",
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: fast, and no rich import for --help
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# --------------------------------------------------------------------------------- global flags

EXECUTABLE = "kubectl-vcerts"

@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
        show_default=False)] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help="The kubeconfig context to use.", show_default=False)] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Namespace of the vCluster (default: the context's).",
        show_default=False)] = None,
    request_timeout: Annotated[str, typer.Option(
        "--request-timeout", help='Per-request timeout, e.g. "5s", "1m"; "0" means none.')] = "0",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug output; tracebacks on failure.")]
    = False,
) -> None:
    """kubectl vcerts: check and rotate vCluster certificates through the host cluster's API."""
    from kubectl_vcerts.cli.deps import Deps
    from kubectl_vcerts.cli.entry import resume_collection

    resume_collection()  # the command starts: see entry.main
    from kubectl_vcerts.kube.client import KubeTarget

    target = KubeTarget(kubeconfig=kubeconfig, context=context, namespace=namespace,
                        request_timeout=parse_request_timeout(request_timeout))
    if isinstance(ctx.obj, Deps):  # tests inject clocks or connections; flags still choose the target
        ctx.obj.target = target
        ctx.obj.verbose = ctx.obj.verbose or verbose
    else:
        ctx.obj = Deps(target=target, verbose=verbose)


# --------------------------------------------------------------------------------- version


@app.command("version")
def version(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="Output format: table or json.")] = "table",
    client_only: Annotated[bool, typer.Option("--client", help="Do not contact the cluster.")] = False,
) -> None:
    """Print the plugin, Python and Kubernetes server versions."""
    from kubectl_vcerts.cli.deps import get_deps

    deps = get_deps(ctx)
    if output not in ("table", "json"):
        raise UsageError(f"--output {output} is not supported by version", hint="use table or json")
    import platform

    doc: dict[str, Any] = {"plugin": __version__, "python": platform.python_version(), "server": None}
    error: str | None = None
    if not client_only:
        try:
            from kubectl_vcerts.kube.discovery import server_version

            doc["server"] = server_version(deps.session())
        except VcertsError as exc:
            error = exc.message
    if output == "json":
        import json

        print(json.dumps(doc, indent=2))
        return
    print(f"kubectl vcerts: {doc['plugin']}")
    print(f"Python:         {doc['python']}")
    if not client_only:
        print(f"Server:         {doc['server'] or f'unreachable ({error})'}")


# --------------------------------------------------------------------------------- entry points


def click_error_type() -> type[Exception]:
    """click's ClickException, the base of every usage error the parser raises.

    typer vendors click in a private module and exports this class only through its public subclass
    `typer.BadParameter`, so it is found there instead of imported from a private path."""
    return next(base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException")


def run(argv: Sequence[str] | None = None, *, obj: Any = None) -> int:
    """Run the command line and return the exit code (everything is caught and rendered here)."""

    args = hoist_global_flags(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    verbose = any(a in BOOL_FLAGS for a in head)
    try:
        # Completion scripts must name the executable on PATH (and a variable without a space).
        completion = {"--install-completion", "--show-completion"} & set(head)
        result = app(args=args, prog_name=EXECUTABLE if completion else "kubectl vcerts",
                     complete_var=COMPLETE_VAR, standalone_mode=False, obj=obj)
        return int(result) if isinstance(result, int) else 0
    except typer.Abort:
        return report_failure(KeyboardInterrupt(), verbose=verbose)
    except click_error_type() as exc:
        error: Any = exc  # a click exception: show(), format_message(), ctx
        if type(error).__name__ == "NoArgsIsHelpError":  # `kubectl vcerts` alone: the help, exit 2
            error.show()
            return int(ExitCode.USAGE)
        context = getattr(error, "ctx", None)
        path = context.command_path if context is not None else "kubectl vcerts"
        print_error(error.format_message(), f"see `{path} --help`")
        return int(ExitCode.USAGE)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, verbose=verbose)
