"""How a failed command ends: one `kubectl vcerts: error: …` line, a hint, and a documented exit code.

Used by the typer app (cli/app.py) and the quick path of `check` (cli/quick.py), so that both end a
failure the same way. Imports neither typer nor rich. Tracebacks only with -v, and never local
variables (they may hold keys).
"""

from __future__ import annotations

import sys

from kubectl_vcerts.errors import ExitCode, VcertsError

INTERRUPTED = 130  # what shells report for SIGINT


def print_error(message: str, hint: str | None) -> None:
    print(f"kubectl vcerts: error: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)


def _print_traceback(exc: BaseException) -> None:
    import traceback  # only with -v: keeps it (and linecache, textwrap) out of every start-up

    traceback.print_exception(exc, file=sys.stderr)


def safe_line(exc: BaseException) -> str:
    """One line about an unexpected exception, without anything that looks like key material."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "PRIVATE KEY" in text or "BEGIN " in text:
        text = "(message withheld: it may contain key material)"
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def report_failure(exc: BaseException, *, verbose: bool) -> int:
    """Print what went wrong and return the exit code: a VcertsError's own, 130 for an interrupt,
    FAILURE for anything unexpected (a bug: the traceback with -v)."""
    if isinstance(exc, KeyboardInterrupt):
        print("kubectl vcerts: interrupted", file=sys.stderr)
        return INTERRUPTED
    if verbose:
        _print_traceback(exc)
    if isinstance(exc, VcertsError):
        print_error(exc.message, exc.hint)
        return int(exc.exit_code)
    print_error(f"unexpected failure: {safe_line(exc)}", "run with -v for details" if not verbose
                else "this is a bug; please report it with the output above")
    return int(ExitCode.FAILURE)
