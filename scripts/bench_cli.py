#!/usr/bin/env python3
"""Benchmark the read side of `kubectl vcerts` against the local dev cluster (not a test: prints medians).

Side by side, interleaved run by run so that machine load hits both alike:
  check NAME        `kubectl-vcerts check NAME`  vs  `kubectl get secret NAME-certs -o json`   target ≤ 3×
  check -A (500)    `kubectl-vcerts check -A`    vs  `kubectl get secrets -A -l app=vcluster -o json`
                    over 500 vClusters (StatefulSet-less Deployments with one kwok pod each, and their
                    NAME-certs, vc-NAME and vc-config-NAME secrets; one PKI reused)          target ≤ 2×
  --help            `kubectl-vcerts --help`                                                  target < 0.25 s
The 500 vClusters live in a fresh namespace that is deleted afterwards. Cluster: $VCERTS_TEST_CLUSTER
(default vcerts-test; started if needed). Usage: scripts/bench_cli.py [--runs N] [--count N] [--skip-all]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENTRY = REPO / ".venv" / "bin" / "kubectl-vcerts"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 3, 4):
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return elapsed


def compare(label: str, ours: list[str], floor: list[str], *, runs: int, env: dict[str, str],
            target: float) -> None:
    timed(ours, env), timed(floor, env)  # warm caches (page cache, .pyc) once
    mine, theirs = [], []
    for _ in range(runs):
        mine.append(timed(ours, env))
        theirs.append(timed(floor, env))
    a, b = statistics.median(mine), statistics.median(theirs)
    verdict = "OK" if a <= target * b else "OVER TARGET"
    print(f"{label:<16} kubectl-vcerts {a:6.3f} s   kubectl {b:6.3f} s   ratio {a / b:4.2f}x "
          f"(target <= {target:g}x) {verdict}")


def _b64(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def create_many(session: Any, namespace: str, count: int, certs: dict[str, bytes]) -> None:
    """`count` vCluster-shaped sets of objects: Deployment (1 pod), NAME-certs, vc-NAME, vc-config-NAME."""
    import yaml

    from tests.support.vcluster import VClusterSpec, vc_config, vc_kubeconfig_secret_data

    certs_b64 = _b64(certs)
    kubeconfig_b64 = _b64(vc_kubeconfig_secret_data(certs))
    spec = VClusterSpec(persistence=False)

    def one(index: int) -> None:
        name = f"vc{index:04d}"
        labels = {"app": "vcluster", "release": name}
        secret_labels = {"app": "vcluster", "vcluster-name": name}
        config = yaml.safe_dump(vc_config(name, namespace, spec)).encode()
        core, apps = session.core, session.apps
        for secret, with_labels, data in ((f"{name}-certs", secret_labels, certs_b64),
                                          (f"vc-{name}", secret_labels, kubeconfig_b64),
                                          (f"vc-config-{name}", labels, _b64({"config.yaml": config}))):
            core.create_namespaced_secret(namespace, {"metadata": {"name": secret, "labels": with_labels},
                                                      "data": data})
        apps.create_namespaced_deployment(namespace, {
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "syncer", "image": spec.image,
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                         "volumes": [{"name": "data", "emptyDir": {}}]}}},
        })

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--skip-all", action="store_true", help="skip the check -A part")
    args = parser.parse_args()

    from kubectl_vcerts.kube.client import KubeTarget, connect
    from tests.support.devcluster import DevCluster, cluster_name_from_env
    from tests.support.testbin import binary
    from tests.support.vcluster import create_vcluster, delete_volumes

    cluster = DevCluster(cluster_name_from_env())
    cluster.up()
    kubectl = str(binary("kubectl"))
    plugin = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "kubectl_vcerts"]
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(REPO)
    # An installed plugin (pip, or the PyInstaller build krew ships) runs from bytecode; keep the .pyc
    # files out of the source tree.
    env["PYTHONPYCACHEPREFIX"] = str(Path.home() / ".cache" / "kubectl-vcerts" / "pycache")
    kubeconfig = str(cluster.kubeconfig)
    session = connect(KubeTarget(kubeconfig=kubeconfig))
    namespace = f"bench-cli-{secrets.token_hex(3)}"
    session.core.create_namespace({"metadata": {"name": namespace}})
    print(f"cluster {cluster.name}, namespace {namespace}, {args.runs} runs each (medians)")
    try:
        made = create_vcluster(session, name="vc", namespace=namespace)
        compare("check NAME", [*plugin, "check", "vc", "-n", namespace, "--kubeconfig", kubeconfig],
                [kubectl, "--kubeconfig", kubeconfig, "get", "secret", "vc-certs", "-n", namespace,
                 "-o", "json"],
                runs=args.runs, env=env, target=3.0)
        helps = [timed([*plugin, "--help"], env) for _ in range(args.runs)]
        median = statistics.median(helps)
        print(f"{'--help':<16} kubectl-vcerts {median:6.3f} s   (target < 0.25 s) "
              f"{'OK' if median < 0.25 else 'OVER TARGET'}")
        delete_volumes(session, made)
        if not args.skip_all:
            start = time.perf_counter()
            create_many(session, namespace, args.count, made.certs)
            print(f"created {args.count} vClusters in {time.perf_counter() - start:.1f} s")
            compare(f"check -A ({args.count})", [*plugin, "check", "-A", "--kubeconfig", kubeconfig],
                    [kubectl, "--kubeconfig", kubeconfig, "get", "secrets", "-A", "-l", "app=vcluster", "-o",
                     "json"], runs=args.runs, env=env, target=2.0)
    finally:
        session.core.delete_namespace(namespace, propagation_policy="Background")
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
