#!/usr/bin/env python3
"""Benchmark: the platform hook recycling 100 instances x 10 NodeClaims on the local cluster.

Runs the hook as the Deployment does (separate process, ServiceAccount token, manifests' env) against
the stand-in Platform CRDs, annotates every instance at once, and reports:
  * time from the annotation to all instances recycled (every claim deleted and recreated),
  * API requests the hook sent per recycled instance (its vcerts_hook_api_requests_total),
  * the hook's resident memory at rest and the peak under that load (target: < 100 MiB).
Exits 1 when the peak RSS misses the target.

    .venv/bin/python scripts/bench_hook.py [--instances 100] [--claims 10] [--kubeconfig FILE]
Without --kubeconfig it brings up the DevCluster named by VCERTS_TEST_CLUSTER (default vcerts-bench).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubectl_vcerts import contract
from tests.support.platform import FAST_ENV, HookProcess, PlatformEnv, PlatformPlayer, kubectl, wait_for

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--claims", type=int, default=10)
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--target-mib", type=float, default=100.0)
    args = parser.parse_args()

    if args.kubeconfig is not None:
        return bench(args, args.kubeconfig)
    from tests.support.devcluster import DevCluster

    cluster = DevCluster(os.environ.get("VCERTS_TEST_CLUSTER", "vcerts-bench"))
    created = not cluster.exists()
    cluster.up()
    try:
        return bench(args, cluster.kubeconfig)
    finally:
        if created and os.environ.get("VCERTS_KEEP_CLUSTER") != "1":
            cluster.down()


def bench(args: argparse.Namespace, admin: Path) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-hook-"))
    env = PlatformEnv(admin, work)
    namespace = f"p-bench-{uuid.uuid4().hex[:6]}"
    kubectl(admin, "create", "namespace", namespace)
    player = PlatformPlayer(admin, namespace)
    hook: HookProcess | None = None
    try:
        names = [f"vc-{i:03d}" for i in range(args.instances)]

        def populate(name: str) -> None:
            player.make_instance(name)
            for j in range(args.claims):
                player.make_claim(name, f"{name}-claim-{j:02d}")

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(populate, names))
        print(f"created {args.instances} instances x {args.claims} claims in "
              f"{time.monotonic() - started:.1f}s", file=sys.stderr)

        overrides = {**FAST_ENV, "HOOK_NAMESPACES": namespace, "HOOK_LOG_LEVEL": "INFO",
                     "HOOK_GRACE_SECONDS": "2", "HOOK_POLL_SECONDS": "0.5", "HOOK_RESYNC_SECONDS": "300",
                     "HOOK_WATCH_SECONDS": "240"}
        overrides.pop("HOOK_WORKERS", None)  # the Deployment's worker count
        hook = HookProcess(env.hook_kubeconfig, pod_name="bench-hook", log_path=work / "hook.log",
                           overrides=overrides).start()
        hook.wait_ready()
        wait_for("leader", lambda: hook is not None and hook.metric("vcerts_hook_leader") == 1.0, timeout=60)
        wait_for("initial pass", lambda: hook is not None
                 and hook.metric("vcerts_hook_reconcile_seconds_count") >= args.instances, timeout=120)
        assert hook.proc is not None
        pid = hook.proc.pid
        time.sleep(1.0)  # settle; this measures memory, not timing of a test
        rest = rss_bytes(pid)
        calls_before = hook.metric("vcerts_hook_api_requests_total")

        peak = [rest]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_bytes(pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        marker = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: player.annotate(n, {contract.CA_ROTATED_ANNOTATION: marker}), names))
        annotated = time.monotonic() - t0

        def all_done() -> bool:
            items = player.custom.list_namespaced_custom_object(
                contract.MANAGEMENT_GROUP, contract.MANAGEMENT_VERSION, namespace,
                contract.VCI_PLURAL)["items"]
            done = [i for i in items
                    if (i["metadata"].get("annotations") or {}).get(contract.NODECLAIMS_RECYCLED_ANNOTATION)
                    == marker]
            return bool(len(done) == args.instances)

        wait_for("all recycled", all_done, timeout=1800, interval=0.5)
        elapsed = time.monotonic() - t0
        stop.set()
        sampler.join()
        calls = hook.metric("vcerts_hook_api_requests_total") - calls_before
        claims_now = len(player.claims())
        result = {
            "instances": args.instances, "claimsPerInstance": args.claims,
            "secondsToAnnotateAll": round(annotated, 2),
            "secondsAnnotationToAllRecycled": round(elapsed, 2),
            "graceSeconds": float(overrides["HOOK_GRACE_SECONDS"]),
            "apiRequestsPerRecycle": round(calls / args.instances, 1),
            "claimsDeleted": hook.metric("vcerts_hook_claims_deleted_total"),
            "claimsRecreated": hook.metric("vcerts_hook_claims_recreated_total"),
            "claimsPresentAfter": claims_now,
            "rssAtRestMiB": round(rest / MIB, 1), "rssPeakMiB": round(peak[0] / MIB, 1),
            "targetMiB": args.target_mib,
        }
        print(json.dumps(result, indent=2))
        return 0 if peak[0] / MIB < args.target_mib and claims_now == args.instances * args.claims else 1
    finally:
        if hook is not None:
            hook.stop()
        player.close()
        kubectl(admin, "delete", "namespace", namespace, "--wait=false", check=False)


if __name__ == "__main__":
    raise SystemExit(main())
