"""Writing files that hold keys or credentials: new files 0600 in 0700 directories, no silent overwrite.

Used by rotate-ca (--kubeconfig-out, --update-kubeconfig) and backups export.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kubectl_vcerts.errors import InvalidInputError, UsageError


def write_private_file(path: Path, data: bytes, *, overwrite: bool, keep_mode: bool = False) -> None:
    """Write atomically (temp file + rename) with mode 0600 (or the existing mode when keep_mode)."""
    if path.exists() and not overwrite:
        raise UsageError(
            f"{path} exists", hint="pass --force/--overwrite to replace it, or choose another path"
        )
    mode = 0o600
    if keep_mode and path.exists():
        mode = path.stat().st_mode & 0o777
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.vcerts-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        tmp.chmod(mode)  # umask must not widen or narrow what we chose
        tmp.replace(path)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write {path}: {exc.strerror}", hint="check the path and permissions"
        ) from exc


def backup_file(path: Path, unix_time: int) -> Path:
    """Copy `path` to `path.bak-<unix>` (same mode) before it is changed; returns the copy."""
    target = path.with_name(f"{path.name}.bak-{unix_time}")
    try:
        shutil.copy2(path, target)
    except OSError as exc:
        raise InvalidInputError(f"cannot back up {path}: {exc.strerror}", hint="check permissions") from exc
    return target
