"""The rendered krew manifest against krew's own validator (validate-krew-manifest, offline)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from krew.manifest import PLATFORMS, archive_name, digests_in, write_manifest
from tests.support.testbin import binary

pytestmark = pytest.mark.binaries

VERSION = "1.2.3"


def validate(manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary("validate-krew-manifest")), "-manifest", str(manifest), "-skip-install"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    """A directory as the release job sees it: one (stand-in) archive per platform."""
    dist = tmp_path / "dist"
    dist.mkdir()
    for plat in PLATFORMS:
        (dist / archive_name(VERSION, plat)).write_bytes(f"archive for {plat.key}".encode())
    return dist


def test_the_five_platform_release_manifest_passes_the_validator(release_dir: Path) -> None:
    manifest = write_manifest(
        release_dir / "vcerts.yaml",
        version=VERSION,
        digests=digests_in(release_dir, VERSION),
        repository="acme/kubectl-vcerts",
        require_all=True,
    )
    proc = validate(manifest)
    assert proc.returncode == 0, proc.stderr
    assert "no overlapping spec.platform[].selector" in proc.stderr


def test_the_validator_rejects_a_manifest_whose_name_differs_from_its_file(release_dir: Path) -> None:
    manifest = write_manifest(
        release_dir / "vcerts.yaml",
        version=VERSION,
        digests=digests_in(release_dir, VERSION),
        require_all=True,
    )
    renamed = release_dir / "other" / "certs.yaml"
    renamed.parent.mkdir()
    renamed.write_text(manifest.read_text(encoding="utf-8"), encoding="utf-8")
    proc = validate(renamed)
    assert proc.returncode != 0
    assert "certs" in proc.stderr


def test_the_validator_rejects_two_entries_for_one_platform(release_dir: Path) -> None:
    manifest = write_manifest(
        release_dir / "vcerts.yaml",
        version=VERSION,
        digests=digests_in(release_dir, VERSION),
        require_all=True,
    )
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("os: darwin", "os: linux"), encoding="utf-8")
    proc = validate(manifest)
    assert proc.returncode != 0
    assert "overlapping platform selectors" in proc.stderr
