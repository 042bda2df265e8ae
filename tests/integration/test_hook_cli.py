"""`kubectl vcerts nodeclaims list|recycle` against the stand-in Platform CRDs (the hook's engine)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubectl_vcerts import contract
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.nodeclaims import app
from kubectl_vcerts.errors import ExitCode
from kubectl_vcerts.kube.client import KubeTarget
from tests.support.platform import PlatformEnv, PlatformPlayer, kubectl

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def platform_env(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> PlatformEnv:
    return PlatformEnv(Path(kube_cluster.kubeconfig), tmp_path_factory.mktemp("hook-cli"))


@pytest.fixture
def player(platform_env: PlatformEnv, namespace: str) -> Iterator[PlatformPlayer]:
    p = PlatformPlayer(platform_env.admin_kubeconfig, namespace)
    yield p
    p.close()


def run(platform_env: PlatformEnv, *args: str) -> Any:
    context = yaml.safe_load(platform_env.admin_kubeconfig.read_text())["current-context"]
    flags = ["--platform-kubeconfig", str(platform_env.admin_kubeconfig), "--platform-context", context]
    return CliRunner().invoke(app, [*args, *flags], obj=Deps(target=KubeTarget(), interactive=False))


def test_list_shows_the_claims_of_one_instance(platform_env: PlatformEnv, player: PlatformPlayer,
                                               namespace: str) -> None:
    player.make_instance("vc")
    player.make_claim("vc", "vc-a", node_type="large")
    player.make_claim("other", "other-a")
    result = run(platform_env, "list", f"{namespace}/vc", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["nodeclaims"]
    assert [(r["name"], r["status"], r["vcluster"], r["nodeType"]) for r in rows] == [
        ("vc-a", "Available", "vc", "large")]
    table = run(platform_env, "list")
    assert table.exit_code == 0, table.output
    assert "NODETYPE" in table.output and "vc-a" in table.output and "other-a" in table.output


def test_recycle_dry_run_changes_nothing(platform_env: PlatformEnv, player: PlatformPlayer,
                                         namespace: str) -> None:
    player.make_instance("vc")
    player.make_claim("vc", "vc-a")
    before = player.claim_uids("vc")
    assert list(before) == ["vc-a"]  # else "unchanged" below would hold vacuously
    result = run(platform_env, "recycle", f"{namespace}/vc", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "delete nodeclaim vc-a" in result.output
    assert player.claim_uids("vc") == before
    assert contract.RECYCLE_RECORD_ANNOTATION not in player.annotations("vc")


def test_recycle_without_yes_off_a_terminal_is_refused(platform_env: PlatformEnv, player: PlatformPlayer,
                                                       namespace: str) -> None:
    player.make_instance("vc")
    player.make_claim("vc", "vc-a")
    before = player.claim_uids("vc")
    assert list(before) == ["vc-a"]  # else "unchanged" below would hold vacuously
    result = run(platform_env, "recycle", f"{namespace}/vc")
    assert result.exit_code != 0
    assert player.claim_uids("vc") == before


def test_recycle_replaces_the_claims_and_marks_the_instance(platform_env: PlatformEnv, player: PlatformPlayer,
                                                            namespace: str) -> None:
    marker = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    player.make_instance("vc", annotations={contract.CA_ROTATED_ANNOTATION: marker})
    for name in ("vc-a", "vc-b"):
        player.make_claim("vc", name)
    before = player.claim_uids("vc")
    result = run(platform_env, "recycle", f"{namespace}/vc", "--yes", "--grace", "1s", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert sorted(doc["deleted"]) == ["vc-a", "vc-b"] and sorted(doc["recreated"]) == ["vc-a", "vc-b"]
    after = player.claim_uids("vc")
    assert sorted(after) == sorted(before) and not set(after.values()) & set(before.values())
    annotations = player.annotations("vc")
    assert annotations[contract.NODECLAIMS_RECYCLED_ANNOTATION] == marker
    assert contract.RECYCLE_RECORD_ANNOTATION not in annotations


def test_recycle_never_leaves_recreation_to_the_platform(platform_env: PlatformEnv, player: PlatformPlayer,
                                                         namespace: str) -> None:
    player.make_instance("vc")
    player.make_claim("vc", "vc-a")
    result = run(platform_env, "recycle", f"{namespace}/vc", "--yes", "--recreate", "never")
    assert result.exit_code == 0, result.output
    assert player.claim_uids("vc") == {}


def kubectl_vcerts(platform_env: PlatformEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed plugin executable, as kubectl runs it."""
    exe = Path(sys.executable).parent / "kubectl-vcerts"
    return subprocess.run([str(exe), *args, "--platform-kubeconfig", str(platform_env.admin_kubeconfig)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_plugin_executable_lists_and_recycles(platform_env: PlatformEnv, player: PlatformPlayer,
                                                  namespace: str) -> None:
    player.make_instance("vc")
    player.make_claim("vc", "vc-a")
    listed = kubectl_vcerts(platform_env, "nodeclaims", "list", f"{namespace}/vc", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)["nodeclaims"]] == ["vc-a"]
    before = player.claim_uids("vc")
    done = kubectl_vcerts(platform_env, "nodeclaims", "recycle", f"{namespace}/vc", "--yes",
                          "--recreate", "always")
    assert done.returncode == 0, done.stderr
    after = player.claim_uids("vc")
    assert list(after) == ["vc-a"] and after["vc-a"] != before["vc-a"]


def test_an_unknown_instance_is_a_not_found_error(platform_env: PlatformEnv, namespace: str) -> None:
    result = kubectl_vcerts(platform_env, "nodeclaims", "recycle", f"{namespace}/missing", "--yes")
    assert result.returncode == ExitCode.NOT_FOUND
    assert "missing" in result.stderr and "not found" in result.stderr


def test_kubectl_shows_the_nodeclaim_columns_of_the_real_api(
        platform_env: PlatformEnv, player: PlatformPlayer, namespace: str) -> None:
    player.make_claim("vc-2", "vcluster-5xtx3", node_type="medium")
    out = kubectl(platform_env.admin_kubeconfig, "get", "nodeclaims.management.loft.sh", "-n",
                  namespace).stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "STATUS", "VCLUSTER", "NODETYPE"]
    assert row.split()[:4] == ["vcluster-5xtx3", "Available", "vc-2", "medium"]
