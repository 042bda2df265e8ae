"""The krew manifest rendered from krew/vcerts.yaml.tmpl (pure: no binaries, no cluster)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from krew.manifest import (
    PLATFORMS,
    TEMPLATE,
    ManifestError,
    Platform,
    archive_name,
    digests_in,
    dump_manifest,
    main,
    platform_of,
    release_url,
    render_manifest,
    write_manifest,
)

DIGEST = {plat: hashlib.sha256(plat.key.encode()).hexdigest() for plat in PLATFORMS}
LINUX_AMD64 = Platform("linux", "amd64")


def render(**kwargs: object) -> dict[str, object]:
    args: dict[str, object] = {"version": "1.2.3", "digests": DIGEST, "repository": "acme/kubectl-vcerts"}
    args.update(kwargs)
    return render_manifest(TEMPLATE.read_text(encoding="utf-8"), **args)  # type: ignore[arg-type]


def platforms_of(doc: dict[str, object]) -> list[dict[str, object]]:
    spec = doc["spec"]
    assert isinstance(spec, dict)
    entries = spec["platforms"]
    assert isinstance(entries, list)
    return entries


def test_the_release_manifest_lists_all_five_platforms_with_their_digest_uri_and_bin() -> None:
    doc = render(require_all=True)
    assert doc["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert doc["kind"] == "Plugin"
    assert doc["metadata"] == {"name": "vcerts"}
    seen = {}
    for entry in platforms_of(doc):
        labels = entry["selector"]["matchLabels"]  # type: ignore[index]
        plat = Platform(labels["os"], labels["arch"])
        seen[plat] = entry
        assert entry["sha256"] == DIGEST[plat]
        assert entry["uri"] == (
            "https://github.com/acme/kubectl-vcerts/releases/download/v1.2.3/"
            f"kubectl-vcerts_1.2.3_{plat.os}_{plat.arch}.tar.gz"
        )
        assert entry["bin"] == ("kubectl-vcerts.exe" if plat.os == "windows" else "kubectl-vcerts")
    assert sorted(seen) == sorted(PLATFORMS)


def test_the_spec_carries_a_v_prefixed_version_homepage_and_one_line_short_description() -> None:
    spec = render()["spec"]
    assert isinstance(spec, dict)
    assert spec["version"] == "v1.2.3"
    assert spec["homepage"] == "https://github.com/acme/kubectl-vcerts"
    assert "\n" not in spec["shortDescription"]
    assert "kubectl" in spec["description"]
    assert spec["caveats"].strip()


def test_no_placeholder_survives_rendering() -> None:
    text = dump_manifest(render(require_all=True))
    assert "${" not in text
    assert yaml.safe_load(text) == render(require_all=True)


def test_a_local_build_lists_only_the_platforms_whose_archives_exist() -> None:
    doc = render(digests={LINUX_AMD64: DIGEST[LINUX_AMD64]})
    [entry] = platforms_of(doc)
    assert entry["selector"] == {"matchLabels": {"os": "linux", "arch": "amd64"}}
    assert entry["sha256"] == DIGEST[LINUX_AMD64]


def test_the_release_refuses_a_manifest_that_misses_a_platform() -> None:
    partial = {plat: digest for plat, digest in DIGEST.items() if plat.os != "darwin"}
    with pytest.raises(ManifestError, match="darwin_amd64, darwin_arm64"):
        render(digests=partial, require_all=True)


def test_a_manifest_without_any_archive_is_refused() -> None:
    with pytest.raises(ManifestError, match="no archive"):
        render(digests={})


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("A" * 64, id="upper-case hex"),
        pytest.param("a" * 63, id="one digit short"),
        pytest.param("g" * 64, id="not hex"),
    ],
)
def test_a_malformed_digest_is_refused(digest: str) -> None:
    with pytest.raises(ManifestError, match="64 lowercase hex"):
        render(digests={LINUX_AMD64: digest})


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        pytest.param("0.1.0", True, id="a plain release"),
        pytest.param("1.10.2-rc.1", True, id="a pre-release"),
        pytest.param("v0.1.0", False, id="a v prefix, which the template adds itself"),
        pytest.param("0.1", False, id="two components"),
        pytest.param("01.2.3", False, id="a leading zero"),
    ],
)
def test_only_semantic_versions_without_v_are_accepted(version: str, ok: bool) -> None:
    if ok:
        assert archive_name(version, LINUX_AMD64) == f"kubectl-vcerts_{version}_linux_amd64.tar.gz"
    else:
        with pytest.raises(ManifestError, match="not semantic"):
            archive_name(version, LINUX_AMD64)


def test_a_repository_must_be_owner_slash_name() -> None:
    assert release_url("o/n", "0.1.0") == "https://github.com/o/n/releases/download/v0.1.0"
    with pytest.raises(ManifestError, match="OWNER/NAME"):
        release_url("https://github.com/o/n", "0.1.0")


def test_a_template_that_drops_a_platform_is_refused() -> None:
    template = TEMPLATE.read_text(encoding="utf-8").replace("os: windows", "os: plan9")
    with pytest.raises(ManifestError, match="fix the template"):
        render_manifest(template, version="1.2.3", digests=DIGEST)


def test_a_template_whose_bin_does_not_match_its_platform_is_refused() -> None:
    template = TEMPLATE.read_text(encoding="utf-8").replace("bin: kubectl-vcerts.exe", "bin: kubectl-vcerts")
    with pytest.raises(ManifestError, match="windows_amd64 entry"):
        render_manifest(template, version="1.2.3", digests=DIGEST)


@pytest.mark.parametrize(
    ("sys_platform", "machine", "expected"),
    [
        pytest.param("linux", "x86_64", Platform("linux", "amd64"), id="ubuntu x64"),
        pytest.param("linux", "aarch64", Platform("linux", "arm64"), id="ubuntu arm64"),
        pytest.param("darwin", "x86_64", Platform("darwin", "amd64"), id="macos intel"),
        pytest.param("darwin", "arm64", Platform("darwin", "arm64"), id="macos apple silicon"),
        pytest.param("win32", "AMD64", Platform("windows", "amd64"), id="windows x64"),
    ],
)
def test_each_release_runner_maps_to_its_krew_platform(
    sys_platform: str, machine: str, expected: Platform
) -> None:
    assert platform_of(sys_platform, machine) == expected


@pytest.mark.parametrize(
    ("sys_platform", "machine"),
    [
        pytest.param("win32", "ARM64", id="windows on arm"),
        pytest.param("linux", "riscv64", id="linux on risc-v"),
        pytest.param("sunos5", "x86_64", id="solaris"),
    ],
)
def test_a_platform_without_a_release_is_refused(sys_platform: str, machine: str) -> None:
    with pytest.raises(ManifestError, match="not one the plugin is released for"):
        platform_of(sys_platform, machine)


def test_the_command_line_fills_digests_from_the_archives_in_a_directory(tmp_path: Path) -> None:
    for plat in PLATFORMS:
        (tmp_path / archive_name("1.2.3", plat)).write_bytes(plat.key.encode())
    (tmp_path / archive_name("1.2.2", LINUX_AMD64)).write_bytes(b"an older build")
    assert digests_in(tmp_path, "1.2.3") == DIGEST
    out = tmp_path / "vcerts.yaml"
    assert main(["--version", "1.2.3", "--dist", str(tmp_path), "--out", str(out), "--require-all"]) == 0
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert {entry["sha256"] for entry in doc["spec"]["platforms"]} == set(DIGEST.values())


def test_the_command_line_fails_when_the_release_misses_archives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / archive_name("1.2.3", LINUX_AMD64)).write_bytes(b"x")
    out = tmp_path / "vcerts.yaml"
    assert main(["--version", "1.2.3", "--dist", str(tmp_path), "--out", str(out), "--require-all"]) == 1
    assert "no archive for linux_arm64" in capsys.readouterr().err
    assert not out.exists()


def test_the_manifest_file_must_be_named_after_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"must be named vcerts\.yaml"):
        write_manifest(tmp_path / "manifest.yaml", version="1.2.3", digests=DIGEST)
