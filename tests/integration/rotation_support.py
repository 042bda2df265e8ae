"""Helpers for the rotate / rotate-ca / restore / backups integration tests.

They run the real CLI as a subprocess (`python -m kubectl_vcerts`) against the real local cluster and
read back what is on the cluster: NAME-certs (data, resourceVersion, annotations), backups, leases and
the pods' UIDs and readiness. Secret data is held in `SecretData` so that failures never print keys.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.rotation.records import SecretData
from tests.support.polling import wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Snapshot:
    """Everything a refusal must leave byte-for-byte unchanged."""

    resource_version: str
    data: SecretData = field(repr=False)
    annotations: dict[str, str]
    pods: dict[str, str]  # pod name -> uid (control plane and deployed etcd)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VCERTS_TEST_PAUSE_AFTER",)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def cli_args(kubeconfig: Path, namespace: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "kubectl_vcerts", "--kubeconfig", str(kubeconfig), "-n", namespace, *args]


def run_cli(
    kubeconfig: Path,
    namespace: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 240,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_args(kubeconfig, namespace, *args),
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
        input=stdin if stdin is not None else "",
        cwd=REPO,
        check=False,
    )


def start_cli(
    kubeconfig: Path,
    namespace: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_args(kubeconfig, namespace, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(env),
        cwd=REPO,
    )


def wait_for_pause(proc: subprocess.Popen[str], step: str, *, timeout: float = 180) -> str:
    """Read stderr until the CLI says it paused after `step`; returns what it printed."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(
                    f"CLI exited {proc.returncode} before pausing after {step}: {''.join(seen)}"
                )
            continue
        seen.append(line)
        if f"paused after {step}" in line:
            return "".join(seen)
    raise AssertionError(f"CLI did not pause after {step}: {''.join(seen)}")


def decode(data: dict[str, str] | None) -> SecretData:
    return SecretData({k: base64.b64decode(v) for k, v in (data or {}).items()})


def read_certs(session: Any, namespace: str, name: str) -> Any:
    return session.core.read_namespaced_secret(contract.certs_secret_name(name), namespace)


def pod_uids(session: Any, namespace: str, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for selector in (f"app=vcluster,release={name}", f"app=vcluster-etcd,release={name}"):
        for pod in session.core.list_namespaced_pod(namespace, label_selector=selector).items:
            out[pod.metadata.name] = pod.metadata.uid
    return out


def pods_ready(session: Any, namespace: str, name: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for selector in (f"app=vcluster,release={name}", f"app=vcluster-etcd,release={name}"):
        for pod in session.core.list_namespaced_pod(namespace, label_selector=selector).items:
            conditions = pod.status.conditions or []
            out[pod.metadata.name] = pod.metadata.deletion_timestamp is None and any(
                c.type == "Ready" and c.status == "True" for c in conditions
            )
    return out


def snapshot(session: Any, namespace: str, name: str) -> Snapshot:
    secret = read_certs(session, namespace, name)
    return Snapshot(
        resource_version=secret.metadata.resource_version,
        data=decode(secret.data),
        annotations=dict(secret.metadata.annotations or {}),
        pods=pod_uids(session, namespace, name),
    )


def backups(session: Any, namespace: str, name: str) -> list[Any]:
    selector = f"{contract.BACKUP_LABEL}=true,{contract.VCLUSTER_NAME_LABEL}={name}"
    items = session.core.list_namespaced_secret(namespace, label_selector=selector).items
    return sorted(items, key=lambda s: s.metadata.name)


def leases(session: Any, namespace: str) -> dict[str, str]:
    return {
        lease.metadata.name: lease.spec.holder_identity or ""
        for lease in session.coordination.list_namespaced_lease(namespace).items
    }


def wait_ready(session: Any, namespace: str, name: str, *, timeout: float = 120) -> None:
    def all_ready() -> bool:
        ready = pods_ready(session, namespace, name)
        return bool(ready) and all(ready.values())

    wait_until(all_ready, timeout=timeout, fail=lambda: AssertionError(
        f"pods of {namespace}/{name} not Ready: {pods_ready(session, namespace, name)}"))
