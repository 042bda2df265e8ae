"""Shared renderers of the commands: tables, JSON/YAML documents, progress on stderr, confirmation.

    jsonable(value) -> Any                 dataclasses/enums/datetimes/timedeltas → plain JSON values
    rfc3339(dt) -> str | None              "2026-11-29T04:17:26Z" (UTC, whole seconds)
    format_expiry(dt) -> str               vCluster's EXPIRES ON format, "Jan 02, 2006 15:04 UTC"
    format_remaining(delta) -> str         "364d", "23h", "-2d" (negative: expired that long ago)
    emit_document(deps, doc, output)       -o json | yaml of a document (dict), to stdout
    print_table(deps, headers, rows)       a plain kubectl-like table on stdout (colour only on a TTY)
    progress(deps) -> Progress             live status on stderr on a TTY; plain lines with -v; else silent
    confirm(deps, question, yes=...)       True with --yes; ask on a TTY; else raise UsageError

Documents are built by each command from its report (the command owns its schema and documents it);
these helpers only serialise. Time values in documents: RFC 3339 UTC with a trailing "Z"; durations:
whole seconds. Imports rich lazily (through Deps); never imports kubernetes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from kubectl_vcerts import timefmt
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.formats import OutputFormat
from kubectl_vcerts.errors import UsageError

if TYPE_CHECKING:
    from kubectl_vcerts.rotation.ports import Progress, ProgressEvent


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else timefmt.rfc3339(value)


def format_expiry(value: datetime | None) -> str:
    """`vcluster certs check`'s EXPIRES ON column (Go layout "Jan 02, 2006 15:04 MST", in UTC)."""
    return "-" if value is None else timefmt.expiry(value)


def format_remaining(delta: timedelta | None) -> str:
    """Residual time, coarse like kubectl's AGE: days when ≥ 2 days, else hours, else minutes."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds >= 2 * 86400:
        text = f"{seconds // 86400}d"
    elif seconds >= 2 * 3600:
        text = f"{seconds // 3600}h"
    else:
        text = f"{seconds // 60}m"
    return sign + text


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: dataclass fields (repr=False fields are left out: they may hold key
    material), enums by value, datetimes RFC 3339 UTC, timedeltas in seconds, bytes never."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, bytes | bytearray):
        raise TypeError("refusing to serialise bytes (could be key material)")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def dump_document(doc: Mapping[str, Any], output: OutputFormat) -> str:
    """The text of a document as JSON (indented 2) or YAML (keys in document order)."""
    plain = jsonable(doc)
    if output is OutputFormat.YAML:
        import yaml

        return str(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
    return json.dumps(plain, indent=2, ensure_ascii=False) + "\n"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def stdout_is_terminal(deps: Deps) -> bool:
    """Like `deps.out.is_terminal`, without importing rich (80 ms) when nothing needs it."""
    return deps.out.is_terminal if deps._out is not None else _isatty(sys.stdout)


def stderr_is_terminal(deps: Deps) -> bool:
    return deps.err.is_terminal if deps._err is not None else _isatty(sys.stderr)


def _stdout(deps: Deps) -> Any:
    return deps._out.file if deps._out is not None else sys.stdout


def echo(deps: Deps, line: str, *, err: bool = False) -> None:
    """One line of plain text on stdout (or stderr): through rich on a terminal, else written as is —
    which keeps rich (tens of milliseconds to import) out of `check` run from cron or a pipe."""
    console, stream = (deps._err, sys.stderr) if err else (deps._out, sys.stdout)
    if console is None and not _isatty(stream):
        stream.write(line + "\n")
        stream.flush()
        return
    (deps.err if err else deps.out).print(line, markup=False, highlight=False)


def emit_document(deps: Deps, doc: Mapping[str, Any], output: OutputFormat) -> None:
    stream = _stdout(deps)
    stream.write(dump_document(doc, output))
    stream.flush()


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """kubectl's layout: left-aligned columns separated by three spaces, never cut or wrapped."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return ["   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in [list(headers), *rows]]


def print_table(deps: Deps, headers: Sequence[str], rows: Sequence[Sequence[str]],
                styles: Sequence[str | None] | None = None) -> None:
    """A table on stdout like `kubectl get`. `styles` gives a rich style per row, applied only when
    stdout is a terminal (pipes and files get plain text)."""
    lines = table_lines(headers, rows)
    if not stdout_is_terminal(deps):
        stream = _stdout(deps)
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()
        return
    from rich.text import Text

    deps.out.print(Text(lines[0], style="bold"), crop=False, overflow="ignore")
    for index, line in enumerate(lines[1:]):
        style = (styles[index] if styles is not None else None) or ""
        deps.out.print(Text(line, style=style), crop=False, overflow="ignore")


STATUS_STYLES = {"OK": "green", "EXPIRING": "yellow", "EXPIRED": "red", "NOT YET VALID": "red",
                 "INVALID": "red bold"}


def progress(deps: Deps) -> Progress:
    """A Progress callback: on a terminal, a live status line on stderr; with -v and no terminal, one
    plain line per event on stderr; otherwise nothing (stdout stays pure data)."""
    if stderr_is_terminal(deps):
        status = deps.err.status("")
        started = False

        def live(event: ProgressEvent) -> None:
            nonlocal started
            if event.done:
                status.stop()
                started = False
                deps.err.print(f"✓ {event.step}: {event.message}", markup=False, highlight=False)
                return
            status.update(f"{event.step}: {event.message}")
            if not started:
                status.start()
                started = True

        return live
    if deps.verbose:
        def plain(event: ProgressEvent) -> None:
            mark = "done" if event.done else "..."
            deps.err.print(f"{event.step}: {event.message} {mark}", markup=False, highlight=False)

        return plain

    def silent(_event: ProgressEvent) -> None:
        return None

    return silent


@contextmanager
def spinner(deps: Deps, message: str) -> Iterator[None]:
    """A transient status on stderr while a read is under way (only on a terminal)."""
    if not stderr_is_terminal(deps):
        yield
        return
    with deps.err.status(message):
        yield


def confirm(deps: Deps, question: str, *, yes: bool) -> bool:
    """True when --yes; on a terminal ask (default no); not on a terminal without --yes: UsageError."""
    if yes:
        return True
    if not deps.interactive:
        raise UsageError(
            f"refusing to {question.rstrip('?').lower()} without --yes when not on a terminal",
            hint="pass --yes to confirm (or --dry-run to see the plan)",
        )
    answer = deps.err.input(f"{question} [y/N] ", markup=False)  # "[y/N]" is not a rich tag
    return answer.strip().lower() in ("y", "yes")
