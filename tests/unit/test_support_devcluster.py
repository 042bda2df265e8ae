"""DevCluster never signals a process that is not one of its own components."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.devcluster import (
    EMULATED_READINESS_LABEL,
    STAGES,
    WAITING_REASON_LABEL,
    WAITING_STAGE,
    DevCluster,
)


def _cluster(tmp_path: Path) -> DevCluster:
    cluster = DevCluster("unit", bin_dir=tmp_path / "bin", workdir=tmp_path / "kwok")
    (cluster.cluster_dir / "pids").mkdir(parents=True)
    return cluster


def test_a_pid_file_naming_a_foreign_process_is_dropped_not_trusted(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    pid_file = cluster.cluster_dir / "pids" / "kube-apiserver.pid"
    pid_file.write_text(str(os.getpid()))  # alive, but its command line does not name the cluster
    assert cluster.component_pid("kube-apiserver") is None
    assert not pid_file.exists()


def test_a_pid_file_naming_an_exited_process_is_dropped(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pid_file = cluster.cluster_dir / "pids" / "etcd.pid"
    pid_file.write_text(str(child.pid))
    assert cluster.component_pid("etcd") is None
    assert not pid_file.exists()


def test_a_running_component_of_this_cluster_is_recognised(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    marker = cluster.cluster_dir / "kwok.yaml"
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(30)", str(marker)])
    try:
        # Until the child has exec'd, /proc shows the parent's command line: wait for the exec.
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        deadline = time.monotonic() + 30  # bounded: a loaded 2-core runner may be slow to exec
        while str(marker).encode() not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "the child never exec'd its command line"
            time.sleep(0.01)
        (cluster.cluster_dir / "pids" / "kwok-controller.pid").write_text(str(child.pid))
        assert cluster.component_pid("kwok-controller") == child.pid
    finally:
        child.kill()
        child.wait()


def test_the_waiting_stage_selects_labelled_pending_pods_and_outweighs_pod_ready() -> None:
    stage = yaml.safe_load(WAITING_STAGE)
    keys = [e["jq"]["key"] for e in stage["spec"]["selector"]["matchExpressions"]]
    assert f'.metadata.labels["{WAITING_REASON_LABEL}"]' in keys
    assert stage["spec"]["weight"] > 0
    assert f'index .metadata.labels "{WAITING_REASON_LABEL}"' in stage["spec"]["next"]["statusTemplate"]


def test_the_starting_stage_holds_labelled_pods_running_but_not_ready() -> None:
    stage = yaml.safe_load(STAGES["vcerts-pod-starting"])
    keys = [e["jq"]["key"] for e in stage["spec"]["selector"]["matchExpressions"]]
    assert f'.metadata.labels["{EMULATED_READINESS_LABEL}"]' in keys and stage["spec"]["weight"] > 0
    template = stage["spec"]["next"]["statusTemplate"]
    assert "phase: Running" in template and "running:" in template
    assert 'status: "False"\n  reason: ContainersNotReady\n  type: Ready' in template
    assert set(STAGES) == {yaml.safe_load(text)["metadata"]["name"] for text in STAGES.values()}
