#!/usr/bin/env python3
"""Benchmark: `kubectl vcerts exporter` over 500 vClusters — scrape time and memory.

Against the local dev cluster ($VCERTS_TEST_CLUSTER, default vcerts-test; started if needed) it creates
--count vCluster-shaped sets of objects (one PKI reused; a Deployment with one kwok pod each) in a fresh
namespace, starts the exporter on 127.0.0.1 (Events on, as shipped), lets it read --reads times and
reports
  scrape   GET /metrics, median of --scrapes requests (what Prometheus waits for)     target < 1 s
  read     one read of every vCluster (the exporter's own log line), median             (reported)
  rss      the exporter's resident memory after the reads (VmRSS; VmHWM: its peak)      target < 100 MiB
Exits 1 over a target. The namespace is deleted afterwards.
Usage: scripts/bench_exporter.py [--count N] [--scrapes N] [--reads N]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCRAPE_TARGET = 1.0
RSS_TARGET_MIB = 100.0


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, field
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--reads", type=int, default=3)
    args = parser.parse_args()

    from kubectl_vcerts.kube.client import KubeTarget, connect
    from tests.support.devcluster import DevCluster, cluster_name_from_env
    from tests.support.vcluster import create_light_vclusters, create_vcluster, delete_volumes

    cluster = DevCluster(cluster_name_from_env())
    cluster.up()
    kubeconfig = str(cluster.kubeconfig)
    session = connect(KubeTarget(kubeconfig=kubeconfig))
    namespace = f"bench-exporter-{secrets.token_hex(3)}"
    session.core.create_namespace({"metadata": {"name": namespace}})
    proc = None
    try:
        made = create_vcluster(session, name="pki", namespace=namespace)
        delete_volumes(session, made)
        start = time.perf_counter()
        create_light_vclusters(session, namespace, args.count, made.certs)
        print(f"cluster {cluster.name}, namespace {namespace}: created {args.count} vClusters in "
              f"{time.perf_counter() - start:.1f} s")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["PYTHONPATH"] = str(REPO)
        env["MALLOC_ARENA_MAX"] = "2"  # as the shipped Deployment sets it
        proc = subprocess.Popen([sys.executable, "-m", "kubectl_vcerts", "--kubeconfig", kubeconfig, "-n",
                                 namespace, "exporter", "--listen", "127.0.0.1:0", "--interval", "2s"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=REPO)
        lines: list[str] = []
        stderr = proc.stderr
        assert stderr is not None
        threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True).start()
        deadline = time.monotonic() + 300
        pattern = f"read {args.count + 1} vCluster(s) in "
        while sum(pattern in line for line in lines) < args.reads:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("exporter did not read in time:\n" + "".join(lines))
            time.sleep(0.1)
        url = next(f"http://{m.group(1)}:{m.group(2)}" for line in lines
                   if (m := re.search(r"serving /metrics on ([\d.]+):(\d+)", line)))
        scrapes, size = [], 0
        for _ in range(args.scrapes):
            begin = time.perf_counter()
            with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:  # noqa: S310 - loopback
                size = len(response.read())
            scrapes.append(time.perf_counter() - begin)
        reads = [float(line.split(pattern)[1].split("s")[0]) for line in lines if pattern in line]
        rss, peak = _status_kib(proc.pid, "VmRSS") / 1024, _status_kib(proc.pid, "VmHWM") / 1024
        scrape = statistics.median(scrapes)
        ok = scrape < SCRAPE_TARGET and rss < RSS_TARGET_MIB
        print(f"scrape GET /metrics  {scrape * 1000:7.1f} ms median of {args.scrapes} "
              f"({size / 1024:.0f} KiB)   target < {SCRAPE_TARGET:g} s")
        print(f"read of {args.count + 1} vClusters {statistics.median(reads):7.3f} s median of {len(reads)}")
        print(f"rss                  {rss:7.1f} MiB (peak {peak:.1f} MiB)   target < {RSS_TARGET_MIB:g} MiB")
        print("OK" if ok else "OVER TARGET")
        return 0 if ok else 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stderr is not None:
                proc.stderr.close()
        session.core.delete_namespace(namespace, propagation_policy="Background")
        session.close()


if __name__ == "__main__":
    raise SystemExit(main())
