"""The krew manifest: supported platforms, archive names, and rendering krew/vcerts.yaml.tmpl.

Holds the pure part of packaging (names, digests, template filling) and a small command line used by
scripts/build-plugin and the release workflow:

    python -m krew.manifest --version 0.1.0 --dist dist --out dist/vcerts.yaml [--require-all]

Must not import kubectl_vcerts (build tooling, run with any Python >= 3.11 and PyYAML).
"""

from __future__ import annotations

import argparse
import hashlib
import platform as host
import re
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PLUGIN = "vcerts"
EXECUTABLE = "kubectl-vcerts"
TEMPLATE = Path(__file__).resolve().with_name("vcerts.yaml.tmpl")
# The GitHub repository whose releases hold the archives. The release workflow passes the real one
# (github.repository); local builds use this default, which only shapes the (unused) download URI.
DEFAULT_REPOSITORY = "kubectl-vcerts/kubectl-vcerts"

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(Exception):
    """The manifest cannot be rendered (bad version, missing archive, template out of step)."""


@dataclass(frozen=True, order=True)
class Platform:
    """One krew platform selector (krew's os/arch names, which are Go's GOOS/GOARCH)."""

    os: str
    arch: str

    @property
    def key(self) -> str:
        return f"{self.os}_{self.arch}"

    @property
    def bin(self) -> str:
        return f"{EXECUTABLE}.exe" if self.os == "windows" else EXECUTABLE


PLATFORMS: tuple[Platform, ...] = (
    Platform("linux", "amd64"),
    Platform("linux", "arm64"),
    Platform("darwin", "amd64"),
    Platform("darwin", "arm64"),
    Platform("windows", "amd64"),
)

# sys.platform prefix → krew os; platform.machine() (lower-cased) → krew arch.
_OS_NAMES = {"linux": "linux", "darwin": "darwin", "win32": "windows"}
_ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def platform_of(sys_platform: str, machine: str) -> Platform:
    """The krew platform of a Python `sys.platform` and `platform.machine()` pair."""
    os_name = next((v for k, v in _OS_NAMES.items() if sys_platform.startswith(k)), None)
    arch = _ARCH_NAMES.get(machine.lower())
    found = Platform(os_name, arch) if os_name and arch else None
    if found is None or found not in PLATFORMS:
        raise ManifestError(
            f"platform {sys_platform}/{machine} is not one the plugin is released for; "
            f"supported: {', '.join(p.key for p in PLATFORMS)}"
        )
    return found


def current_platform() -> Platform:
    return platform_of(sys.platform, host.machine())


def check_version(version: str) -> str:
    """A semantic version without the `v` prefix (krew's spec.version adds it)."""
    if not _VERSION.match(version):
        raise ManifestError(f"version {version!r} is not semantic (X.Y.Z); fix kubectl_vcerts.__version__")
    return version


def archive_name(version: str, plat: Platform) -> str:
    return f"{EXECUTABLE}_{check_version(version)}_{plat.key}.tar.gz"


def release_url(repository: str, version: str) -> str:
    """Where GitHub serves the assets of the release tagged v<version>."""
    if not _REPOSITORY.match(repository):
        raise ManifestError(f"repository {repository!r} is not OWNER/NAME")
    return f"https://github.com/{repository}/releases/download/v{check_version(version)}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digests_in(dist: Path, version: str) -> dict[Platform, str]:
    """The sha256 of every platform archive of `version` present in `dist`."""
    return {
        plat: sha256_file(dist / archive_name(version, plat))
        for plat in PLATFORMS
        if (dist / archive_name(version, plat)).is_file()
    }


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return string.Template(node).substitute(values)
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    return node


def _platform_of_entry(entry: Mapping[str, Any]) -> Platform:
    labels = entry.get("selector", {}).get("matchLabels", {})
    return Platform(str(labels.get("os")), str(labels.get("arch")))


def render_manifest(
    template: str,
    *,
    version: str,
    digests: Mapping[Platform, str],
    repository: str = DEFAULT_REPOSITORY,
    require_all: bool = False,
) -> dict[str, Any]:
    """The manifest document: the template filled, keeping only the platforms that have a digest.

    `require_all` (the release) refuses a manifest that lacks any platform; without it (a local build)
    the manifest lists just the platforms whose archives exist, so every sha256 in it is real.
    """
    doc = yaml.safe_load(template)
    entries = doc["spec"]["platforms"]
    listed = sorted(_platform_of_entry(entry) for entry in entries)
    if listed != sorted(PLATFORMS):
        raise ManifestError(f"{TEMPLATE.name} lists {listed}, expected {sorted(PLATFORMS)}; fix the template")
    for plat, digest in digests.items():
        if plat not in PLATFORMS or not _SHA256.match(digest):
            raise ManifestError(f"bad digest {digest!r} for {plat.key}: expected 64 lowercase hex digits")
    missing = [plat.key for plat in PLATFORMS if plat not in digests]
    if require_all and missing:
        raise ManifestError(f"no archive for {', '.join(missing)}; build it on that platform first")
    if not digests:
        raise ManifestError("no archive at all; run scripts/build-plugin first")
    doc["spec"]["platforms"] = [entry for entry in entries if _platform_of_entry(entry) in digests]
    values = {
        "version": check_version(version),
        "tag": f"v{version}",
        "homepage": f"https://github.com/{repository}",
        "release_url": release_url(repository, version),
    } | {f"sha256_{plat.key}": digest for plat, digest in digests.items()}
    rendered: dict[str, Any] = _substitute(doc, values)
    for entry in rendered["spec"]["platforms"]:
        plat = _platform_of_entry(entry)
        if entry["bin"] != plat.bin or not entry["uri"].endswith("/" + archive_name(version, plat)):
            raise ManifestError(f"{TEMPLATE.name}: the {plat.key} entry names the wrong bin or archive")
    return rendered


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (description, caveats) as literal blocks, as a person would."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_manifest(doc: Mapping[str, Any]) -> str:
    text: str = yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, width=110)
    return text


def write_manifest(
    out: Path,
    *,
    version: str,
    digests: Mapping[Platform, str],
    repository: str = DEFAULT_REPOSITORY,
    require_all: bool = False,
) -> Path:
    """Render the template into `out`, whose file name must be vcerts.yaml (krew's validator says so)."""
    if out.name != f"{PLUGIN}.yaml":
        raise ManifestError(f"{out}: a krew manifest must be named {PLUGIN}.yaml")
    doc = render_manifest(
        TEMPLATE.read_text(encoding="utf-8"),
        version=version,
        digests=digests,
        repository=repository,
        require_all=require_all,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_manifest(doc), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m krew.manifest", description="Write the krew manifest for the archives in a directory."
    )
    parser.add_argument("--version", required=True, help="plugin version without v, e.g. 0.1.0")
    parser.add_argument("--dist", type=Path, required=True, help="directory holding the archives")
    parser.add_argument("--out", type=Path, required=True, help="manifest to write (…/vcerts.yaml)")
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY, help="GitHub OWNER/NAME of the releases")
    parser.add_argument("--require-all", action="store_true", help="fail unless all five platforms are built")
    args = parser.parse_args(argv)
    try:
        out = write_manifest(
            args.out,
            version=args.version,
            digests=digests_in(args.dist, args.version),
            repository=args.repository,
            require_all=args.require_all,
        )
    except ManifestError as exc:
        print(f"krew.manifest: error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
