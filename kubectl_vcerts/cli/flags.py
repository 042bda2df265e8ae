"""kubectl's global flags: where they may be written, and --request-timeout's syntax.

Shared by the typer app (cli/app.py) and the quick path of `check` (cli/quick.py), so it imports
neither typer nor anything else that is slow to import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kubectl_vcerts.errors import UsageError

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_request_timeout(text: str) -> float | None:
    """kubectl's --request-timeout: "0" (no timeout), a bare number of seconds, or a Go duration such as
    "5s", "1m", "1m30s", "500ms". Returns seconds, None for no timeout."""
    value = text.strip()
    if re.fullmatch(r"\d+", value):
        seconds = float(value)
    else:
        pos, seconds = 0, 0.0
        for match in _GO_DURATION.finditer(value):
            if match.start() != pos:
                break
            amount, unit = float(match.group(1)), match.group(2)
            seconds += amount * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
            pos = match.end()
        if not value or pos != len(value):
            raise UsageError(f"--request-timeout: cannot parse {text!r}",
                             hint='use kubectl\'s forms: "0" (none), "30", "5s", "1m", "1m30s"')
    return seconds or None


# Shell completion: the shell sets this variable when it asks for completions (typer/click protocol); a
# prog name with a space would otherwise give an unusable variable name.
COMPLETE_VAR = "_KUBECTL_VCERTS_COMPLETE"

VALUE_FLAGS = frozenset({"--kubeconfig", "--context", "--namespace", "-n", "--request-timeout"})
BOOL_FLAGS = frozenset({"-v", "--verbose"})


def hoist_global_flags(args: Sequence[str]) -> list[str]:
    """Move kubectl's global flags (and their values), wherever typed, in front of the sub-command, so
    that `check NAME -n NS --context X` works. Forms: `--flag value`, `--flag=value`, `-n value`,
    `-nvalue`, `-n=value`. Everything after `--` is left alone."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.partition("=")[0] if arg.startswith("--") else arg
        if arg in BOOL_FLAGS:
            front.append(arg)
        elif name in VALUE_FLAGS and name != arg:
            front.append(arg)  # --flag=value
        elif arg in VALUE_FLAGS:
            front.append(arg)
            if index + 1 < len(args):
                front.append(args[index + 1])
                index += 1
        elif arg.startswith("-n") and not arg.startswith("--") and len(arg) > 2:
            front += ["-n", arg[2:].removeprefix("=")]
        else:
            rest.append(arg)
        index += 1
    return front + rest
