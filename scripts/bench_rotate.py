#!/usr/bin/env python3
"""Benchmark: `kubectl vcerts rotate NAME` wall time minus the pods' own restart time (target < 2 s).

Against the local dev cluster ($VCERTS_TEST_CLUSTER, default vcerts-test; started if needed) it creates
a fixture vCluster in a fresh namespace, runs `python -m kubectl_vcerts rotate NAME --yes -v` several
times, timestamps every progress line on stderr as it arrives, and reports per run:
  wall       the whole command, interpreter start to exit;
  restart    from the first "deleted pod(s)" line to "every restarted pod is Running and Ready" — the
             time the cluster (kwok, controller-manager, scheduler) needs to replace the pods;
  overhead   wall - restart: what kubectl vcerts itself costs (imports, API calls, new certificates).
Prints the medians. Usage: scripts/bench_rotate.py [--runs N] [--replicas N].
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_SECONDS = 2.0


def one_run(kubeconfig: Path, namespace: str, name: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("VCERTS_TEST_PAUSE_AFTER", None)
    start = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubectl_vcerts",
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "-v",
            "rotate",
            name,
            "--yes",
            "--timeout",
            "120s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stderr is not None
    first_delete = ready = None
    for line in proc.stderr:
        now = time.monotonic()
        if "deleted pod(s)" in line and first_delete is None:
            first_delete = now
        if "every restarted pod is Running and Ready" in line:
            ready = now
    code = proc.wait()
    wall = time.monotonic() - start
    if code != 0 or first_delete is None or ready is None:
        raise SystemExit(f"rotate failed (exit {code}); run it by hand with -v to see why")
    return wall, ready - first_delete


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()

    from kubectl_vcerts.kube.client import KubeTarget, connect
    from tests.support.devcluster import DevCluster, cluster_name_from_env
    from tests.support.vcluster import VClusterSpec, create_vcluster, delete_volumes

    cluster = DevCluster(cluster_name_from_env())
    cluster.up()
    namespace = f"bench-rotate-{int(time.time())}"
    admin = connect(KubeTarget(kubeconfig=str(cluster.kubeconfig)))
    admin.core.create_namespace({"metadata": {"name": namespace}})
    session = connect(KubeTarget(kubeconfig=str(cluster.kubeconfig), namespace=namespace))
    vcluster = create_vcluster(
        session, name="bench", namespace=namespace, spec=VClusterSpec(replicas=args.replicas)
    )
    try:
        walls, restarts = [], []
        for index in range(args.runs):
            wall, restart = one_run(cluster.kubeconfig, namespace, vcluster.name)
            walls.append(wall)
            restarts.append(restart)
            print(
                f"run {index + 1}: wall {wall:.2f}s  restart {restart:.2f}s  overhead {wall - restart:.2f}s",
                file=sys.stderr,
            )
            time.sleep(1.1)  # backups are named by the second
        overhead = statistics.median(w - r for w, r in zip(walls, restarts, strict=True))
        print(
            f"rotate ({args.replicas} replica(s), {args.runs} runs): "
            f"median wall {statistics.median(walls):.2f}s, "
            f"median pod restart {statistics.median(restarts):.2f}s, median overhead {overhead:.2f}s "
            f"(target < {TARGET_SECONDS:.0f}s: {'met' if overhead < TARGET_SECONDS else 'NOT met'})"
        )
    finally:
        delete_volumes(session, vcluster)
        admin.core.delete_namespace(namespace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
