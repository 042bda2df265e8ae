#!/usr/bin/env python3
"""Benchmark: a fleet `kubectl vcerts rotate` over 50 vClusters against the sum of single rotations.

Against the local dev cluster ($VCERTS_TEST_CLUSTER, default vcerts-test; started if needed) it creates
--count fixture vClusters (StatefulSet, one kwok pod each, their own kubeadm PKI) in a fresh namespace,
then
  singles   runs `rotate NAME --yes` for each of them one after the other: the sum of their wall times;
  fleet     runs `rotate --yes --max-parallel P` once over the namespace (all of them again).
Target: fleet ≤ singles / P + 10 s (the constant: the interpreter start, one selection read, the first
rotations' ramp-up).
Prints both, the ratio and the verdict; exits 1 over target. The namespace is deleted afterwards.
Usage: scripts/bench_fleet.py [--count N] [--max-parallel P]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONSTANT_SECONDS = 10.0


def run(kubeconfig: str, namespace: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VCERTS_TEST_PAUSE_AFTER")}
    env["PYTHONPATH"] = str(REPO)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kubectl_vcerts", "--kubeconfig", kubeconfig, "-n",
                             namespace, *args], capture_output=True, text=True, env=env, cwd=REPO,
                            check=False, timeout=3600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-800:]}")
    return elapsed, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--max-parallel", type=int, default=4)
    args = parser.parse_args()

    from kubectl_vcerts.kube.client import KubeTarget, connect
    from tests.support.devcluster import DevCluster, cluster_name_from_env
    from tests.support.vcluster import create_vcluster, delete_volumes

    cluster = DevCluster(cluster_name_from_env())
    cluster.up()
    kubeconfig = str(cluster.kubeconfig)
    session = connect(KubeTarget(kubeconfig=kubeconfig))
    namespace = f"bench-fleet-{secrets.token_hex(3)}"
    session.core.create_namespace({"metadata": {"name": namespace}})
    made = []
    try:
        start = time.perf_counter()
        names = [f"vc{i:02d}" for i in range(args.count)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            made = list(pool.map(lambda n: create_vcluster(session, name=n, namespace=namespace), names))
        print(f"cluster {cluster.name}, namespace {namespace}: created {args.count} vClusters in "
              f"{time.perf_counter() - start:.1f} s")
        singles = 0.0
        for name in names:
            elapsed, _ = run(kubeconfig, namespace, "rotate", name, "--yes", "--timeout", "120s")
            singles += elapsed
        parallel = str(args.max_parallel)
        fleet, result = run(kubeconfig, namespace, "rotate", "--yes", "--max-parallel", parallel, "--timeout",
                            "120s", "-o", "json")
        doc = json.loads(result.stdout)
        done = sum(1 for item in doc["items"] if item["result"] == "done")
        assert done == args.count, f"{done} of {args.count} rotated"
        bound = singles / args.max_parallel + CONSTANT_SECONDS
        verdict = "OK" if fleet <= bound else "OVER TARGET"
        print(f"singles (sum of {args.count})  {singles:7.1f} s   ({singles / args.count:.2f} s each)")
        print(f"fleet --max-parallel {args.max_parallel}     {fleet:7.1f} s   peak parallel "
              f"{doc['peakParallel']}   speed-up {singles / fleet:.2f}x")
        print(f"target: fleet <= singles / {args.max_parallel} + {CONSTANT_SECONDS:g} s = {bound:.1f} s  "
              f"{verdict}")
        return 0 if verdict == "OK" else 1
    finally:
        for vc in made:
            delete_volumes(session, vc)
        session.core.delete_namespace(namespace, propagation_policy="Background")
        session.close()


if __name__ == "__main__":
    raise SystemExit(main())
