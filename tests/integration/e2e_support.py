"""Helpers for the end-to-end tests: the emulator around a fixture vCluster, and the virtual cluster as
users reach it (the REAL kubectl binary with a kubeconfig file, the plugin's console script).

Never prints key material: kubeconfig files are written with mode 0600 and only their paths are shown.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.emulator import Emulator, Generation
from tests.support.testbin import binary

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / ".venv" / "bin" / "kubectl-vcerts"


def plugin(
    kubeconfig: Path, namespace: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`kubectl-vcerts ARGS --kubeconfig K -n NS` as users run it (console script of the venv)."""
    command = [str(PLUGIN)] if PLUGIN.exists() else [sys.executable, "-m", "kubectl_vcerts"]
    env = {k: v for k, v in os.environ.items() if k != "VCERTS_TEST_PAUSE_AFTER"}
    return subprocess.run(
        [*command, *args, "--kubeconfig", str(kubeconfig), "-n", namespace],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=False,
    )


def kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real kubectl against a kubeconfig file (no retries: one request is what a user sees)."""
    return subprocess.run(
        [str(binary("kubectl")), "--kubeconfig", str(kubeconfig), "--request-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_secret(session: Any, namespace: str, name: str) -> dict[str, bytes]:
    secret = session.core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def save_vc_kubeconfig(emulator: Emulator, path: Path, *, after: Generation | None = None) -> Path:
    """What a user keeps after `vcluster connect --server URL`: the kubeconfig vCluster's leader wrote
    to vc-NAME (by a start after `after`: waits for it), its server (`https://localhost:8443`, the pod's
    own address) replaced by the Service's reachable one, written to a file."""
    emulator.wait_exported(after=after.number if after else 0)
    session = emulator.host_session
    config = yaml.safe_load(read_secret(session, emulator.namespace, f"vc-{emulator.name}")["config"])
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = emulator.service
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def token_kubeconfig(saved: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the same cluster (server, CA) as `saved` and a ServiceAccount token user."""
    doc = yaml.safe_load(saved.read_text())
    doc["users"] = [{"name": "sa", "user": {"token": token}}]
    for context in doc["contexts"]:
        context["context"]["user"] = "sa"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def with_server(path: Path, server: str, out: Path) -> Path:
    """A copy of a kubeconfig file pointing at `server` (a restarted emulator listens on a new port)."""
    doc = yaml.safe_load(path.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = server
    out.write_text(yaml.safe_dump(doc))
    out.chmod(0o600)
    return out


@contextmanager
def emulated(
    kube_cluster: Any, namespace: str, name: str, workdir: Path, **options: Any
) -> Iterator[Emulator]:
    """The emulator for one fixture vCluster (`options`: Emulator's keyword arguments)."""
    emulator = Emulator(kube_cluster.kubeconfig, namespace, name, workdir=workdir, **options)
    with emulator:
        yield emulator


@contextmanager
def port_forward(kubeconfig: Path, namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward TARGET :PORT` with the REAL kubectl, as a user opens a tunnel: yields the
    loopback port it listens on, and stops it afterwards."""
    proc = subprocess.Popen(
        [str(binary("kubectl")), "--kubeconfig", str(kubeconfig), "-n", namespace, "port-forward",
         "--address", "127.0.0.1", target, f":{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 8443", or EOF when it failed
        found = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        if found is None:
            proc.kill()
            error = proc.stderr.read().strip()
            raise AssertionError(f"kubectl port-forward {target}: {line.strip()} {error}")
        yield int(found.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def whoami(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")


def wait_serving(emulator: Emulator, after: Generation | None, timeout: float = 120) -> Generation:
    return emulator.wait_for(after=after.number if after else 0, timeout=timeout)
