"""The quick path of `kubectl vcerts check`: the common invocations, run without importing typer.

`check` is what cron jobs and CI run, often, and it should cost little more than `kubectl get secret`.
Importing typer (and the standard-library modules it pulls in) is about a sixth of such a run, so the
entry point first tries `parse` here: it understands exactly the forms below and returns None for
anything else, which then goes to the typer app. Both paths end in `cli.checking.execute`,
so the output, errors and exit codes are the same; tests/unit/test_quick.py holds them to it.

Understood (after `flags.hoist_global_flags`, so global flags may be written anywhere):
  global   --kubeconfig X, --context X, -n/--namespace X, --request-timeout X, -v/--verbose
  check    NAME..., -A/--all-namespaces, --warn-within X, -o/--output X, --live, --vcluster-server X
with values as the next word or after `=` (long options). Left to typer: help, shell completion, `--`,
an option given twice, attached short values (`-ojson`), grouped short flags, empty values or values
starting with `-`, unknown options, and invalid output formats or request timeouts (typer words those
errors).
Imports neither typer nor anything slow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

from kubectl_vcerts.cli.flags import BOOL_FLAGS, COMPLETE_VAR, hoist_global_flags, parse_request_timeout
from kubectl_vcerts.cli.formats import OutputFormat
from kubectl_vcerts.errors import UsageError

COMMAND = "check"
_GLOBAL_VALUES = {"--kubeconfig": "kubeconfig", "--context": "context", "--namespace": "namespace",
                  "-n": "namespace", "--request-timeout": "request_timeout"}
_GLOBAL_FLAGS = dict.fromkeys(BOOL_FLAGS, "verbose")
_CHECK_VALUES = {"--warn-within": "warn_within", "-o": "output", "--output": "output",
                 "--vcluster-server": "vcluster_server"}
_CHECK_FLAGS = {"-A": "all_namespaces", "--all-namespaces": "all_namespaces", "--live": "live"}
_FORMATS = {f.value: f for f in OutputFormat}


class QuickCheck(NamedTuple):
    """A `check` command line, with the typer command's defaults for what it does not say."""

    names: tuple[str, ...] = ()
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float | None = None  # seconds, as parse_request_timeout gives them
    verbose: bool = False
    all_namespaces: bool = False
    warn_within: str = "90d"
    output: OutputFormat = OutputFormat.TABLE
    live: bool = False
    vcluster_server: str | None = None


class _Unsure(Exception):
    """A form the quick path leaves to typer."""


def _options(words: Sequence[str], values: dict[str, str], flags: dict[str, str], *,
             names: list[str] | None) -> tuple[dict[str, str], set[str], int]:
    """(option values, flags set, index of the first positional word) of `words`. Positional words
    go to `names` when it is a list, else they end the options."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("-") or word == "-":
            if names is None:
                break
            if word == "-":
                raise _Unsure
            names.append(word)
            index += 1
            continue
        index += 1
        option, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if option in flags and not equals:
            field = flags[option]
        elif option in values:
            field = values[option]
            if not equals:
                if index == len(words):
                    raise _Unsure
                value, index = words[index], index + 1
            if not value or value.startswith("-"):
                raise _Unsure
            found[field] = value
        else:
            raise _Unsure
        if field in seen:
            raise _Unsure  # given twice: click keeps the last one; leave that subtlety to it
        seen.add(field)
    return found, seen, index


def parse(argv: Sequence[str]) -> QuickCheck | None:
    """The `check` command line in `argv` (the words after the program name), or None."""
    if COMPLETE_VAR in os.environ:
        return None
    args = hoist_global_flags(argv)
    try:
        found, seen, at = _options(args, _GLOBAL_VALUES, _GLOBAL_FLAGS, names=None)
        if args[at:at + 1] != [COMMAND]:
            return None
        names: list[str] = []
        own, own_flags, _ = _options(args[at + 1:], _CHECK_VALUES, _CHECK_FLAGS, names=names)
        timeout = parse_request_timeout(found.get("request_timeout", "0"))
    except (_Unsure, UsageError):  # typer words a bad --request-timeout (before the other options)
        return None
    output = OutputFormat.TABLE
    if "output" in own:
        chosen = _FORMATS.get(own["output"].lower())  # typer matches formats case-insensitively
        if chosen is None:
            return None
        output = chosen
    return QuickCheck(
        names=tuple(names),
        kubeconfig=found.get("kubeconfig"),
        context=found.get("context"),
        namespace=found.get("namespace"),
        request_timeout=timeout,
        verbose="verbose" in seen,
        all_namespaces="all_namespaces" in own_flags,
        warn_within=own.get("warn_within", "90d"),
        output=output,
        live="live" in own_flags,
        vcluster_server=own.get("vcluster_server"),
    )


def run(argv: Sequence[str]) -> int | None:
    """Run `check` when `argv` is one of the forms above and return its exit code; None otherwise."""
    request = parse(argv)
    if request is None:
        return None
    from kubectl_vcerts.cli.checking import execute
    from kubectl_vcerts.cli.deps import Deps
    from kubectl_vcerts.cli.entry import resume_collection
    from kubectl_vcerts.cli.failure import report_failure
    from kubectl_vcerts.kube.client import KubeTarget

    resume_collection()
    try:
        # What the app's root callback does with the global flags.
        target = KubeTarget(kubeconfig=request.kubeconfig, context=request.context,
                            namespace=request.namespace, request_timeout=request.request_timeout)
        deps = Deps(target=target, verbose=request.verbose)
        return execute(deps, names=request.names, all_namespaces=request.all_namespaces,
                       warn_within=request.warn_within, output=request.output, live=request.live,
                       vcluster_server=request.vcluster_server)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, verbose=request.verbose)
