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
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--skip-all", action="store_true", help="skip the check -A part")
    args = parser.parse_args()

    from kubectl_vcerts.kube.client import KubeTarget, connect
    from tests.support.devcluster import DevCluster, cluster_name_from_env
    from tests.support.testbin import binary
    from tests.support.vcluster import create_light_vclusters, create_vcluster, delete_volumes

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
            create_light_vclusters(session, namespace, args.count, made.certs)
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
