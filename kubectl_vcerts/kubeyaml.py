"""YAML loading for the documents `check` reads, without importing PyYAML for the usual ones.

`load(text)` returns exactly what `yaml.load(text, Loader=CSafeLoader or SafeLoader)` returns. Importing
PyYAML costs about a tenth of a `check` run (yaml.reader compiles a huge Unicode pattern), yet the
kubeconfigs and vc-config-NAME's config.yaml that `check` reads are written by Go encoders (kubectl,
kubeadm, Helm, vCluster) or by PyYAML's safe_dump, in plain block style. `fast_load` parses a strict
subset of that style itself:

  * one document (optionally opened by a `---` line), blank lines, full-line comments and ` #` comments
    after a value; printable ASCII only, no tabs, no carriage returns;
  * block mappings whose keys are plain scalars resolving to str, or one-line quoted scalars;
  * block sequences (`key:` + `- item` indented or not), compact `- key: value` and `- - item`;
  * `{}` and `[]`; plain scalars resolving to str, null, bool or a decimal int; one-line single-quoted
    scalars and one-line double-quoted scalars without backslashes.

Anything else (and anything it is unsure of) returns the `FALLBACK` sentinel, and `load` then imports
PyYAML and lets it decide. Plain scalars are resolved with PyYAML's YAML 1.1 implicit resolvers (the
patterns below are copied from yaml/resolver.py); floats, timestamps, merge keys and the other
non-decimal forms go to PyYAML too. Every error comes out as `YamlError`, never a PyYAML exception, so
callers need not import yaml; its message never quotes the document (a kubeconfig line may hold a key).

Imports only the standard library (PyYAML lazily, in the fallback); never patterns with large Unicode
ranges (that compile cost is what this module avoids).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["FALLBACK", "YamlError", "dump", "fast_load", "load", "load_mapping"]


class YamlError(ValueError):
    """The text is not a valid YAML document (PyYAML's error, when it found one, is `__cause__`).
    `line` is the 1-based line of the problem when the parser knows it."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Fallback:
    """The type of `FALLBACK`."""

    def __repr__(self) -> str:
        return "FALLBACK"


FALLBACK: Final = _Fallback()
"""What `fast_load` returns for text outside its subset."""

# PyYAML's implicit resolvers for numbers and timestamps (yaml/resolver.py, class Resolver), compiled
# only when a plain scalar could match one: the usual numeric-looking strings ("0.36.1", "10.96.0.0/12",
# "5Gi") are told apart by `_resolve` without them, and compiling them would cost a millisecond or two.
_FLOAT = r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$'''
_INT = r'''^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$'''
_TIMESTAMP = r'''^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
                     (?:[Tt]|[ \t]+)[0-9][0-9]?
                     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
                     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$'''
# Every character those three patterns can match: a scalar with any other is a string. Each of their
# alternatives matches at most one '.', so a scalar with two ("0.36.1", "10.0.0.1") is a string too.
_NUMERIC_CHARS: Final = frozenset("0123456789-+_.: \tabcdefABCDEFinINxTtZ")
_numeric_patterns: list[re.Pattern[str]] = []
_BOOLS: Final = {"yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
                 "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
                 "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False}
_NULLS: Final = frozenset({"~", "null", "Null", "NULL"})
_RESOLVED_FIRST: Final = frozenset("yYnNtTfFoO-+0123456789.<~=")  # first characters with a resolver
_NUMERIC_FIRST: Final = frozenset("-+0123456789.")
# Characters that cannot start a plain scalar (PyYAML Scanner.check_plain); '-' can when followed by a
# non-space, '?' and ':' too but those we leave to PyYAML.
_INDICATORS: Final = frozenset("-?:,[]{}#&*!|>'\"%@`")
_MAX_KEY: Final = 1000  # PyYAML and libyaml refuse simple keys longer than 1024 characters
_MAX_DEPTH: Final = 64


class _Unsure(Exception):
    """Raised inside the fast parser for text outside its subset."""


def load(text: str | bytes) -> Any:
    """The document, as `yaml.load(text, Loader=CSafeLoader or SafeLoader)` returns it; `YamlError` when
    the text is not valid YAML (or holds a value PyYAML cannot construct)."""
    value = fast_load(text)
    if value is FALLBACK:
        return _pyyaml(text)
    return value


def load_mapping(text: str | bytes) -> dict[str, Any]:
    """The one loader of every kubeconfig the project reads (the user's files, the PKI's kubeconfigs,
    vc-NAME): the document as a mapping, an empty or null document as {}; `YamlError` for invalid YAML
    and for any other kind of document."""
    value = load(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise YamlError(f"not a YAML mapping (a {type(value).__name__})")
    return value


def dump(doc: Any) -> bytes:
    """`doc` in block style with its key order kept, as PyYAML's safe dumper writes it (libyaml's
    emitter when present). PyYAML is imported only here: commands that only read never pay for it."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False).encode()


def fast_load(text: str | bytes) -> Any:
    """The document if the text is in the subset this module parses itself, else `FALLBACK`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return FALLBACK
    if not text.isascii():
        return FALLBACK
    try:
        return _Parser(text).document()
    except _Unsure:
        return FALLBACK


def _pyyaml(text: str | bytes) -> Any:
    import yaml  # only here: most documents never need it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise YamlError(f"not valid YAML{where}", line=None if mark is None else mark.line + 1) from exc
    except yaml.YAMLError as exc:
        raise YamlError("not valid YAML") from exc
    except ValueError as exc:
        # SafeConstructor's int()/date() on a resolved scalar: 2001-13-45, an int past Python's limit.
        raise YamlError("YAML holds a value that cannot be constructed") from exc
    except RecursionError as exc:
        raise YamlError("YAML nested too deeply") from exc


def _resolve(plain: str) -> Any:
    """A one-line plain scalar as SafeLoader constructs it; `_Unsure` for the forms left to PyYAML."""
    if plain[0] not in _RESOLVED_FIRST:
        return plain
    if plain in _BOOLS:
        return _BOOLS[plain]
    if plain in _NULLS:
        return None
    if plain in ("<<", "="):
        raise _Unsure  # merge key, value key
    if plain[0] not in _NUMERIC_FIRST or plain.count(".") > 1 or not _NUMERIC_CHARS.issuperset(plain):
        return plain
    digits = plain[1:] if plain[0] in "-+" else plain
    if digits.isdigit() and (digits == "0" or digits[0] != "0") and len(digits) <= 18:
        return int(plain)  # what SafeConstructor.construct_yaml_int makes of a plain decimal
    if not _numeric_patterns:
        _numeric_patterns.extend(re.compile(source, re.X) for source in (_FLOAT, _INT, _TIMESTAMP))
    if any(pattern.match(plain) for pattern in _numeric_patterns):
        raise _Unsure  # float, 0x/0o/0b/_/sexagesimal int, long int, timestamp: PyYAML constructs it
    return plain


def _comment_only(rest: str) -> bool:
    """Whether what follows a token on its line is nothing or a comment (`#` after a space)."""
    if not rest:
        return True
    stripped = rest.lstrip(" ")
    if not stripped:
        return True
    if stripped[0] == "#" and len(stripped) < len(rest):
        return True
    raise _Unsure


def _quoted(s: str) -> tuple[str, str]:
    """(value, rest of line) of a one-line quoted scalar at the start of `s`."""
    quote = s[0]
    if quote == "'":
        i = 1
        while True:
            j = s.find("'", i)
            if j < 0:
                raise _Unsure  # continues on the next line
            if s.startswith("''", j):
                i = j + 2
                continue
            return s[1:j].replace("''", "'"), s[j + 1:]
    j = s.find('"', 1)
    if j < 0 or "\\" in s[1:j]:
        raise _Unsure  # multi-line or escapes
    return s[1:j], s[j + 1:]


def _plain_ok(plain: str) -> None:
    """`_Unsure` unless `plain` is one whole plain scalar of a block context."""
    if not plain:
        raise _Unsure
    first = plain[0]
    if first in _INDICATORS and not (first == "-" and len(plain) > 1 and plain[1] != " "):
        raise _Unsure
    if ": " in plain or " #" in plain or plain.endswith((":", " ")):
        raise _Unsure
    if plain.startswith(("---", "...")):
        raise _Unsure  # a document marker at column 0; never worth the doubt


def _inline(s: str) -> Any:
    """A node that starts and ends on this line (after `key: ` or `- `): scalar, `{}` or `[]`."""
    if s[0] in "'\"":
        value, rest = _quoted(s)
        _comment_only(rest)
        return value
    cut = s.find(" #")
    if cut >= 0:
        s = s[:cut].rstrip(" ")
    if s == "{}":
        return {}
    if s == "[]":
        return []
    _plain_ok(s)
    return _resolve(s)


def _key(s: str) -> tuple[str, str] | None:
    """(key, text after `key:`) when the line starts a mapping entry, None when it is a lone node."""
    if s[0] in "'\"":
        key, rest = _quoted(s)
        if len(s) - len(rest) > _MAX_KEY:
            raise _Unsure
        if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
            return key, rest[1:]
        return None
    colon = s.find(": ")
    if colon < 0:
        if not s.endswith(":"):
            return None
        colon = len(s) - 1
    key = s[:colon]
    if not key or ":" in key or " #" in key or key.endswith(" ") or len(key) > _MAX_KEY:
        raise _Unsure
    _plain_ok(key)
    resolved = _resolve(key)
    if not isinstance(resolved, str):
        raise _Unsure  # a bool/int/null key: rare, and PyYAML knows how
    return key, s[colon + 1:]


class _Parser:
    """Recursive descent over (column, text) lines; blank and comment lines are dropped up front."""

    def __init__(self, text: str) -> None:
        lines: list[tuple[int, str]] = []
        for raw in text.split("\n"):
            line = raw.rstrip(" ")
            if not line.isprintable():
                raise _Unsure  # tabs, \r, control characters
            text_part = line.lstrip(" ")
            if not text_part or text_part[0] == "#":
                continue
            lines.append((len(line) - len(text_part), text_part))
        self.lines = lines
        self.pos = 0

    def document(self) -> Any:
        lines = self.lines
        if lines and lines[0] == (0, "---"):
            self.pos = 1
        if self.pos == len(lines):
            return None
        col, text = lines[self.pos]
        if text.startswith(("---", "...", "%")):
            raise _Unsure
        value = self.block(col, 0)
        if self.pos != len(lines):
            raise _Unsure  # a less indented line, a second document, ...
        return value

    def block(self, col: int, depth: int) -> Any:
        """The node whose first line is `lines[pos]`, at column `col`."""
        if depth > _MAX_DEPTH:
            raise _Unsure
        text = self.lines[self.pos][1]
        if text == "-" or text.startswith("- "):
            return self.sequence(col, depth)
        if _key(text) is not None:
            return self.mapping(col, depth)
        if depth > 0 or len(self.lines) - self.pos != 1:
            raise _Unsure  # a scalar on its own line may continue on the next: PyYAML's business
        self.pos += 1
        return _inline(text)

    def _next_col(self) -> int:
        return self.lines[self.pos][0] if self.pos < len(self.lines) else -1

    def mapping(self, col: int, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        lines = self.lines
        while self.pos < len(lines) and lines[self.pos][0] == col:
            text = lines[self.pos][1]
            entry = _key(text)
            if entry is None:
                raise _Unsure  # a sequence entry or a lone scalar among the keys
            key, rest = entry
            self.pos += 1
            value_text = rest.lstrip(" ")
            if value_text and value_text[0] != "#":
                result[key] = _inline(value_text)  # later duplicates win, as in SafeConstructor
            else:
                result[key] = self.nested(col, depth, indentless=True)
        if self._next_col() > col:
            raise _Unsure  # a continuation line or bad indentation
        return result

    def sequence(self, col: int, depth: int) -> list[Any]:
        result: list[Any] = []
        lines = self.lines
        while self.pos < len(lines) and lines[self.pos][0] == col:
            text = lines[self.pos][1]
            if text == "-":
                self.pos += 1
                result.append(self.nested(col, depth, indentless=False))
                continue
            if not text.startswith("- "):
                break  # the parent mapping's next key (an indentless sequence ends here)
            item = text[2:].lstrip(" ")
            if item[0] == "#":
                self.pos += 1
                result.append(self.nested(col, depth, indentless=False))
                continue
            item_col = col + len(text) - len(item)
            if item == "-" or item.startswith("- ") or _key(item) is not None:
                lines[self.pos] = (item_col, item)  # the compact node starts at its own column
                result.append(self.block(item_col, depth + 1))
            else:
                self.pos += 1
                result.append(_inline(item))
        if self._next_col() > col:
            raise _Unsure
        return result

    def nested(self, col: int, depth: int, *, indentless: bool) -> Any:
        """The node after `key:` or `-` with nothing else on the line: a block on the following lines
        (more indented, or for a mapping value also a sequence at the key's column), else null."""
        if self.pos == len(self.lines):
            return None
        next_col, text = self.lines[self.pos]
        if next_col > col:
            return self.block(next_col, depth + 1)
        if indentless and next_col == col and (text == "-" or text.startswith("- ")):
            return self.sequence(col, depth + 1)
        return None
