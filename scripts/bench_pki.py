#!/usr/bin/env python3
"""Benchmark: renew_leaves and rotate_ca next to `kubeadm certs renew all` on one PKI (target: ratio <= 1).

Makes one PKI with the REAL kubeadm in vCluster's layout (tests/support/kubeadm_pki.py), then, several
times each, measures:
  renew      kubectl_vcerts.pki.renew_leaves on the secret data (7 leaves + 3 kubeconfigs: 10 new keys);
  rotate     kubectl_vcerts.pki.rotate_ca (3 new CAs + everything re-issued: 13 new keys);
  kubeadm    `kubeadm certs renew all` on a fresh copy of the same files (7 leaves + 4 kubeconfigs,
             super-admin.conf included). As root it runs with --rootfs so the kubeconfigs under
             /etc/kubernetes are renewed too; otherwise with --config (certificates only; the
             kubeconfig renewals are reported MISSING and the comparison flatters kubeadm).
Our numbers are in-process function times (no interpreter start); kubeadm's are process wall times,
which is how each is used. Prints medians and the ratios ours/kubeadm.
Usage: scripts/bench_pki.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubectl_vcerts.pki import renew_leaves, rotate_ca  # noqa: E402
from tests.support.kubeadm_pki import check_expiration_config, generate_vcluster_pki, materialise  # noqa: E402
from tests.support.testbin import binary  # noqa: E402

CONFS = ("admin.conf", "controller-manager.conf", "scheduler.conf")


def kubeadm_renew_command(data: dict[str, bytes], workdir: Path) -> list[str]:
    """Lay `data` out for kubeadm in `workdir` and return the `kubeadm certs renew all` command."""
    kubeadm = str(binary("kubeadm"))
    if os.geteuid() == 0:
        etc = workdir / "root" / "etc" / "kubernetes"
        materialise(data, etc / "pki")
        for conf in CONFS:
            (etc / conf).write_bytes(data[conf])
        (etc / "super-admin.conf").write_bytes(data["admin.conf"])
        config = check_expiration_config(etc / "pki")
        (workdir / "root" / "kubeadm.yaml").write_text(
            re.sub(r"certificatesDir: .*", "certificatesDir: /etc/kubernetes/pki", config.read_text()))
        return [kubeadm, "certs", "renew", "all", "--rootfs", str(workdir / "root"),
                "--config", "/kubeadm.yaml"]
    pki = materialise(data, workdir / "pki")
    return [kubeadm, "certs", "renew", "all", "--config", str(check_expiration_config(pki))]


def timed(fn: object, *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="vcerts-bench-pki-"))
    try:
        data = generate_vcluster_pki(scratch / "kubeadm", name="vc", namespace="bench")
        now = datetime.now(UTC)
        renew_leaves(data, now=now)  # warm imports and OpenSSL before timing
        renews, rotates, kubeadms = [], [], []
        for index in range(args.runs):
            renews.append(timed(renew_leaves, data, now=now))
            rotates.append(timed(rotate_ca, data, now=now))
            workdir = scratch / f"run-{index}"
            command = kubeadm_renew_command(data, workdir)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            kubeadms.append(time.perf_counter() - start)
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"run {index + 1}: renew {renews[-1]:.3f}s  rotate {rotates[-1]:.3f}s  "
                  f"kubeadm renew all {kubeadms[-1]:.3f}s", file=sys.stderr)
        renew, rotate, kubeadm = (statistics.median(v) for v in (renews, rotates, kubeadms))
        mode = "with kubeconfigs (--rootfs)" if os.geteuid() == 0 else "certificates only (not root)"
        print(f"pki ({args.runs} runs, medians): renew_leaves {renew:.3f}s, rotate_ca {rotate:.3f}s, "
              f"kubeadm certs renew all {kubeadm:.3f}s [{mode}]")
        print(f"ratio renew/kubeadm {renew / kubeadm:.2f}, rotate/kubeadm {rotate / kubeadm:.2f} "
              f"(target <= 1: {'met' if max(renew, rotate) <= kubeadm else 'NOT met'})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
