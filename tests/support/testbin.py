"""Locate the real binaries built by scripts/testbin (building them on a cold cache)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@cache
def testbin_dir() -> Path:
    """The directory holding etcd, kube-apiserver, kubeadm, kwokctl, krew, ... (scripts/testbin)."""
    override = os.environ.get("VCERTS_TESTBIN_BIN")
    if override:
        return Path(override)
    out = subprocess.run(
        [str(REPO / "scripts" / "testbin")], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def binary(name: str) -> Path:
    path = testbin_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"{name} missing from {path.parent}; run scripts/testbin")
    return path
