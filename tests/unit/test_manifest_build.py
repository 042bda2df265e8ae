"""The pure parts of the plugin build (krew/build.py): version, pins, cache key, archive layout."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from krew.build import (
    REPO,
    BuildError,
    build_key,
    prune_cache,
    read_version,
    registered_commands,
    registered_entries,
    runtime_pins,
    write_archive,
)
from krew.manifest import Platform, sha256_file

LINUX_AMD64 = Platform("linux", "amd64")


def test_the_version_is_read_from_the_package_source() -> None:
    import kubectl_vcerts

    assert read_version() == kubectl_vcerts.__version__


def test_a_package_without_a_version_is_refused(tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_text('"""No version here."""\nVERSION = "1.0.0"\n', encoding="utf-8")
    with pytest.raises(BuildError, match="no __version__"):
        read_version(init)


def test_the_runtime_pins_are_the_exact_dev_pins_of_the_pyproject_dependencies(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["typer>=0.12", "PyYAML>=6.0"]\n', encoding="utf-8")
    pins = tmp_path / "requirements-dev.txt"
    pins.write_text("# comment\ntyper==0.29.1\npytest==9.2.0\npyyaml==6.0.3\n", encoding="utf-8")
    assert runtime_pins(pyproject, pins) == ["typer==0.29.1", "pyyaml==6.0.3"]


def test_a_runtime_dependency_without_a_pin_stops_the_build(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["typer>=0.12", "rich>=13"]\n', encoding="utf-8")
    pins = tmp_path / "requirements-dev.txt"
    pins.write_text("typer==0.29.1\n", encoding="utf-8")
    with pytest.raises(BuildError, match="no exact pin for rich"):
        runtime_pins(pyproject, pins)


def test_the_repository_pins_every_runtime_dependency() -> None:
    names = {pin.split("==")[0].lower() for pin in runtime_pins()}
    assert {"typer", "rich", "kubernetes", "cryptography"} <= names


def test_the_cache_key_changes_with_any_source_and_with_the_platform() -> None:
    # Keys hash paths relative to the repository, so the files must live inside it.
    source = REPO / "krew" / "manifest.py"
    key = build_key(LINUX_AMD64, [source])
    assert build_key(LINUX_AMD64, [source]) == key
    assert build_key(Platform("linux", "arm64"), [source]) != key
    assert build_key(LINUX_AMD64, [source, REPO / "LICENSE"]) != key


def test_the_archive_holds_the_bundle_and_license_at_its_root_with_modes_kept(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "_internal" / "pkg").mkdir(parents=True)
    exe = bundle / "kubectl-vcerts"
    exe.write_bytes(b"\x7fELF")
    exe.chmod(0o755)
    (bundle / "_internal" / "pkg" / "mod.pyc").write_bytes(b"code")
    (bundle / "_internal" / "libpython.so.1").write_bytes(b"lib")
    (bundle / "_internal" / "libpython.so").symlink_to("libpython.so.1")
    (bundle / "_internal" / "linked").symlink_to("pkg", target_is_directory=True)
    license_file = tmp_path / "LICENSE"
    license_file.write_text("Apache", encoding="utf-8")

    archive = write_archive(bundle, license_file, tmp_path / "out" / "a.tar.gz")

    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {
            "kubectl-vcerts",
            "LICENSE",
            "_internal",
            "_internal/pkg",
            "_internal/pkg/mod.pyc",
            "_internal/libpython.so",
            "_internal/libpython.so.1",
            "_internal/linked",
            "_internal/linked/mod.pyc",
        }
        assert stat.S_IMODE(members["kubectl-vcerts"].mode) == 0o755
        # krew unpacks regular files and directories; a symlink is stored as its target's bytes.
        assert members["_internal/libpython.so"].isfile()
        assert members["_internal/linked"].isdir()
        assert members["_internal/linked/mod.pyc"].isfile()
        assert members["LICENSE"].uid == 0
        extracted = tar.extractfile("LICENSE")
        assert extracted is not None
        assert extracted.read() == b"Apache"


def test_archiving_the_same_bundle_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "kubectl-vcerts").write_bytes(b"exe")
    license_file = tmp_path / "LICENSE"
    license_file.write_text("Apache", encoding="utf-8")
    first = write_archive(bundle, license_file, tmp_path / "1.tar.gz")
    (bundle / "kubectl-vcerts").touch()  # a later mtime must not change the archive
    second = write_archive(bundle, license_file, tmp_path / "2.tar.gz")
    assert sha256_file(first) == sha256_file(second)


def test_every_lazily_registered_command_is_bundled_and_smoke_tested(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    lines = [
        "COMMANDS = (",
        '    Entry("check", "m.check", "help"),',
        '    Entry("rotate-ca", "m.rotate_ca", "help"),',
        ")",
        'OTHER = dict(name="not-a-command")',
    ]
    app.write_text("\n".join(lines), encoding="utf-8")
    assert registered_entries(app) == [("check", "m.check"), ("rotate-ca", "m.rotate_ca")]
    assert registered_commands(app) == ["check", "rotate-ca"]
    assert ("check", "kubectl_vcerts.cli.check") in registered_entries()


def test_only_the_newest_cached_builds_of_a_platform_are_kept(tmp_path: Path) -> None:
    for age, name in enumerate(["0.1.0-linux_amd64-new", "0.1.0-linux_amd64-mid", "0.1.0-linux_amd64-old"]):
        entry = tmp_path / name
        entry.mkdir()
        (tmp_path / f".lock-{name}").touch()
        os.utime(entry, (1_000_000 - age * 100, 1_000_000 - age * 100))
    other = tmp_path / "0.1.0-linux_arm64-older"
    other.mkdir()
    os.utime(other, (1, 1))

    removed = prune_cache(tmp_path, LINUX_AMD64, keep=2)

    assert removed == [tmp_path / "0.1.0-linux_amd64-old"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "0.1.0-linux_amd64-mid",
        "0.1.0-linux_amd64-new",
        "0.1.0-linux_arm64-older",
    ]
    assert not (tmp_path / ".lock-0.1.0-linux_amd64-old").exists()
