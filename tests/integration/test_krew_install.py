"""The built plugin archive, installed by the real krew and run by the real kubectl.

One archive is built per session by scripts/build-plugin (cached by a hash of the sources under
~/.cache/kubectl-vcerts/plugin/, so an unchanged tree only costs a copy). Every test gets a clean
KREW_ROOT and a PATH holding nothing but krew's bin directory and the kubectl and krew binaries: no
Python, no project virtualenv.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import kubectl_vcerts
from krew.manifest import current_platform
from tests.support.devcluster import DevCluster
from tests.support.testbin import binary
from tests.support.vcluster import MakeVCluster

pytestmark = pytest.mark.binaries

REPO = Path(__file__).resolve().parents[2]
PLUGIN_VERSION = f"v{kubectl_vcerts.__version__}"


@dataclass(frozen=True)
class BuiltPlugin:
    archive: Path
    manifest: Path


@dataclass(frozen=True)
class Krew:
    """A clean krew home and the environment a user with only kubectl and krew would have."""

    root: Path
    workdir: Path  # not the repository: the plugin must not depend on where it is started
    env: dict[str, str]

    def kubectl(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary("kubectl")), *args],
            env=self.env | (extra_env or {}),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,  # krew warns about (and ignores) stdin when given --manifest
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def install(self, built: BuiltPlugin, manifest: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "krew", "install", f"--manifest={manifest or built.manifest}", f"--archive={built.archive}"
        )

    @property
    def store(self) -> Path:
        return self.root / "store" / "vcerts"

    @property
    def link(self) -> Path:
        return self.root / "bin" / current_platform().bin


@pytest.fixture(scope="session")
def built_plugin(tmp_path_factory: pytest.TempPathFactory) -> BuiltPlugin:
    out = tmp_path_factory.mktemp("plugin")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build-plugin"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"scripts/build-plugin failed:\n{proc.stderr}"
    archive, manifest = (Path(line) for line in proc.stdout.strip().splitlines()[-2:])
    return BuiltPlugin(archive=archive, manifest=manifest)


@pytest.fixture
def krew(tmp_path: Path) -> Iterator[Krew]:
    root, tools, home, workdir = (tmp_path / name for name in ("krew-root", "tools", "home", "elsewhere"))
    for directory in (root / "bin", tools, home, workdir):
        directory.mkdir(parents=True)
    # `kubectl krew` is the plugin kubectl-krew. It lives outside $KREW_ROOT/bin: krew takes plugins in
    # its bin directory that have no receipt for a pre-0.3 home and refuses to run ("home outdated").
    (tools / "kubectl").symlink_to(binary("kubectl"))
    (tools / "kubectl-krew").symlink_to(binary("krew"))
    # uninstall insists on an initialised local index (a git clone under index/); an empty local one
    # is what `kubectl krew update` would leave, minus the network.
    subprocess.run(["git", "init", "-q", str(root / "index" / "default")], check=True)
    env = {
        "PATH": os.pathsep.join([str(root / "bin"), str(tools)]),
        "HOME": str(home),
        "KREW_ROOT": str(root),
        "KREW_NO_UPGRADE_CHECK": "1",
    }
    yield Krew(root=root, workdir=workdir, env=env)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def installed(krew: Krew, built_plugin: BuiltPlugin) -> Krew:
    proc = krew.install(built_plugin)
    assert proc.returncode == 0, proc.stderr
    return krew


def test_the_test_environment_offers_no_python_to_the_plugin(krew: Krew) -> None:
    # The point of the archive: it must run where kubectl runs, with no interpreter around.
    for directory in krew.env["PATH"].split(os.pathsep):
        assert not any(Path(directory).glob("python*")), directory
    assert not any(key.startswith(("PYTHON", "VIRTUAL_ENV")) for key in krew.env)


def test_the_generated_manifest_passes_the_krew_validator(built_plugin: BuiltPlugin) -> None:
    proc = subprocess.run(
        [str(binary("validate-krew-manifest")), "-manifest", str(built_plugin.manifest), "-skip-install"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [entry] = yaml.safe_load(built_plugin.manifest.read_text(encoding="utf-8"))["spec"]["platforms"]
    assert entry["uri"].endswith("/" + built_plugin.archive.name)


def test_krew_installs_the_archive_with_the_generated_manifest(krew: Krew, built_plugin: BuiltPlugin) -> None:
    proc = krew.install(built_plugin)
    assert proc.returncode == 0, proc.stderr
    assert "Installed plugin: vcerts" in proc.stderr
    installed_bin = krew.store / PLUGIN_VERSION / current_platform().bin
    assert installed_bin.is_file()
    assert (krew.store / PLUGIN_VERSION / "LICENSE").is_file()
    assert krew.link.is_symlink()
    assert krew.link.resolve() == installed_bin.resolve()
    assert (krew.root / "receipts" / "vcerts.yaml").is_file()


def test_kubectl_plugin_list_shows_the_installed_plugin(installed: Krew) -> None:
    proc = installed.kubectl("plugin", "list")
    assert proc.returncode == 0, proc.stderr
    assert str(installed.link) in proc.stdout.splitlines()


def test_kubectl_vcerts_version_prints_the_package_version(installed: Krew) -> None:
    proc = installed.kubectl("vcerts", "version", "--client")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"\b{re.escape(kubectl_vcerts.__version__)}\b", proc.stdout), proc.stdout


def test_kubectl_vcerts_help_lists_the_commands(installed: Krew) -> None:
    proc = installed.kubectl("vcerts", "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("check", "version"):
        assert re.search(rf"\b{command}\b", proc.stdout), proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.cluster
def test_kubectl_vcerts_check_reads_a_vcluster_in_the_test_cluster(
    installed: Krew, kube_cluster: DevCluster, make_vcluster: MakeVCluster
) -> None:
    vcluster = make_vcluster()
    kubeconfig = {"KUBECONFIG": str(kube_cluster.kubeconfig)}

    table = installed.kubectl(
        "vcerts", "check", vcluster.name, "-n", vcluster.namespace, extra_env=kubeconfig
    )
    assert table.returncode == 0, table.stdout + table.stderr
    assert "apiserver.crt" in table.stdout, table.stdout

    packaged = installed.kubectl(
        "vcerts", "check", vcluster.name, "-n", vcluster.namespace, "-o", "json", extra_env=kubeconfig
    )
    assert packaged.returncode == 0, packaged.stderr
    report = json.loads(packaged.stdout)
    # What the packaged program read is what the fixture wrote into NAME-certs.
    ca = x509.load_pem_x509_certificate(vcluster.certs["ca.crt"])
    expected = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert report["ca"]["fingerprint"] == f"sha256:{expected}"
    assert report["vcluster"] == report["vcluster"] | {"name": vcluster.name, "namespace": vcluster.namespace}

    # ...and the same as the source tree reads (the bundle lost no module the check needs).
    source = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubectl_vcerts",
            "check",
            vcluster.name,
            "-n",
            vcluster.namespace,
            "-o",
            "json",
        ],
        env=os.environ | kubeconfig,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert source.returncode == 0, source.stderr
    by_key = {
        cert["secretKey"]: (cert["fingerprint"], cert["notAfter"], cert["status"])
        for cert in report["certificates"]
    }
    expected_by_key = {
        cert["secretKey"]: (cert["fingerprint"], cert["notAfter"], cert["status"])
        for cert in json.loads(source.stdout)["certificates"]
    }
    assert by_key == expected_by_key
    assert {"apiserver.crt", "ca.crt", "etcd-server.crt"} <= set(by_key)


@pytest.mark.cluster
def test_kubectl_vcerts_version_reaches_the_test_cluster(installed: Krew, kube_cluster: DevCluster) -> None:
    # The server version comes through the bundled Kubernetes client: it proves that client is complete.
    proc = installed.kubectl(
        "vcerts", "version", "-o", "json", extra_env={"KUBECONFIG": str(kube_cluster.kubeconfig)}
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["plugin"] == kubectl_vcerts.__version__
    assert isinstance(doc["server"], str)
    assert doc["server"].startswith("v1."), doc


def test_kubectl_krew_uninstall_leaves_nothing_behind(installed: Krew) -> None:
    proc = installed.kubectl("krew", "uninstall", "vcerts")
    assert proc.returncode == 0, proc.stderr
    assert not installed.store.exists()
    assert not installed.link.exists()
    assert not installed.link.is_symlink()  # not even a dangling link
    assert not (installed.root / "receipts" / "vcerts.yaml").exists()
    assert "kubectl-vcerts" not in installed.kubectl("plugin", "list").stdout
    assert installed.kubectl("vcerts", "version", "--client").returncode != 0


def test_krew_rejects_a_manifest_whose_sha256_does_not_match_the_archive(
    krew: Krew, built_plugin: BuiltPlugin, tmp_path: Path
) -> None:
    doc = yaml.safe_load(built_plugin.manifest.read_text(encoding="utf-8"))
    real = doc["spec"]["platforms"][0]["sha256"]
    wrong = "0" * 64 if real != "0" * 64 else "1" * 64
    doc["spec"]["platforms"][0]["sha256"] = wrong
    tampered = tmp_path / "tampered" / "vcerts.yaml"
    tampered.parent.mkdir()
    tampered.write_text(yaml.safe_dump(doc), encoding="utf-8")

    proc = krew.install(built_plugin, manifest=tampered)
    assert proc.returncode != 0
    assert "checksum does not match" in proc.stderr
    assert not krew.store.exists()
    assert not krew.link.exists()
