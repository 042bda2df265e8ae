#!/usr/bin/env python3
"""Benchmark: start-up time of the krew-installed plugin for `--help` (target: median < 0.5 s).

Builds the archive with scripts/build-plugin (cached by a hash of the sources), installs it with the
real krew into a fresh KREW_ROOT, then times `kubectl vcerts --help` (what a user types: kubectl's
plugin lookup plus the plugin) and the plugin executable alone, each over several runs after one
warm-up run, and reports the medians. Exits 1 when the `kubectl vcerts --help` median misses the target.

    .venv/bin/python scripts/bench_krew.py [--runs N] [--target SECONDS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from krew.manifest import current_platform
from tests.support.testbin import REPO, binary


def build(out: Path) -> tuple[Path, Path]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build-plugin"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"bench_krew: scripts/build-plugin failed:\n{proc.stderr}")
    archive, manifest = (Path(line) for line in proc.stdout.strip().splitlines()[-2:])
    return archive, manifest


def install(root: Path, tools: Path, archive: Path, manifest: Path) -> dict[str, str]:
    (root / "bin").mkdir(parents=True)
    tools.mkdir()
    (tools / "kubectl").symlink_to(binary("kubectl"))
    # Outside $KREW_ROOT/bin: krew reads receipt-less plugins there as a pre-0.3 home and refuses to run.
    (tools / "kubectl-krew").symlink_to(binary("krew"))
    env = {
        "PATH": os.pathsep.join([str(root / "bin"), str(tools)]),
        "HOME": str(root.parent),
        "KREW_ROOT": str(root),
        "KREW_NO_UPGRADE_CHECK": "1",
    }
    subprocess.run(
        [str(binary("kubectl")), "krew", "install", f"--manifest={manifest}", f"--archive={archive}"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    return env


def median_seconds(command: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--target", type=float, default=0.5, help="seconds (median of kubectl vcerts --help)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vcerts-bench-") as tmp:
        base = Path(tmp)
        archive, manifest = build(base / "dist")
        size_mb = archive.stat().st_size / 1e6
        env = install(base / "krew", base / "tools", archive, manifest)
        elsewhere = base / "elsewhere"
        elsewhere.mkdir()
        via_kubectl = median_seconds([str(binary("kubectl")), "vcerts", "--help"], env, elsewhere, args.runs)
        plugin = str(base / "krew" / "bin" / current_platform().bin)
        direct = median_seconds([plugin, "--help"], env, elsewhere, args.runs)
    print(f"archive: {archive.name} ({size_mb:.1f} MB)")
    print(f"kubectl vcerts --help        median {via_kubectl:.3f} s over {args.runs} runs")
    print(f"kubectl-vcerts --help alone  median {direct:.3f} s over {args.runs} runs")
    print(f"target: kubectl vcerts --help < {args.target} s")
    if via_kubectl >= args.target:
        print("bench_krew: FAIL: start-up misses the target", file=sys.stderr)
        return 1
    print("bench_krew: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
