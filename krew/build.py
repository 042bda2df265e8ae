"""Build the standalone plugin archive for this machine (PyInstaller one-directory mode) and its manifest.

scripts/build-plugin runs `main`. Steps: a build virtualenv under the cache (pinned PyInstaller and the
runtime pins of scripts/requirements-dev.txt), PyInstaller on kubectl_vcerts/__main__.py, a smoke run of
the result, then `kubectl-vcerts_<version>_<os>_<arch>.tar.gz` (executable and `_internal/` at the root,
plus LICENSE) and `vcerts.yaml` for that archive. Results are cached under a key made of every input
(sources, pins, Python, platform), so a second build of unchanged sources costs a copy.

Must not import kubectl_vcerts: it is read as source, and runs under whatever Python starts the build.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from krew.manifest import (
    DEFAULT_REPOSITORY,
    PLUGIN,
    ManifestError,
    Platform,
    archive_name,
    current_platform,
    sha256_file,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kubectl_vcerts"
BUILD_REQUIREMENTS = REPO / "scripts" / "requirements-build.txt"
PINS = REPO / "scripts" / "requirements-dev.txt"
# Every file whose change must produce a new build (besides the package sources).
BUILD_INPUTS = (
    REPO / "pyproject.toml",
    REPO / "LICENSE",
    BUILD_REQUIREMENTS,
    PINS,
    REPO / "krew" / "build.py",
    REPO / "krew" / "manifest.py",
    REPO / "krew" / "vcerts.yaml.tmpl",
)
# Command modules are registered by name in cli/app.py and imported lazily, so PyInstaller's import
# analysis cannot see them: collect the whole package. The Kubernetes client is imported inside
# functions (kube/); take its client and config packages whole for the same reason.
COLLECT = ("kubectl_vcerts", "kubernetes.client", "kubernetes.config")
# Pulled in by optional branches of the dependencies, never used by the plugin; keeps the bundle small.
EXCLUDE = ("tkinter", "kubernetes.aio", "aiohttp", "pytest", "hypothesis", "mypy", "IPython", "pydoc_data")


# Cached archives kept per platform (each ~36 MB); older ones go when a new build lands.
KEEP_BUILDS = 3


class BuildError(Exception):
    """The build cannot go on; the message says which step and what to do."""


@dataclass(frozen=True)
class Built:
    archive: Path
    manifest: Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubectl-vcerts"


def read_version(init: Path = PACKAGE / "__init__.py") -> str:
    """kubectl_vcerts.__version__, read from the source (importing it would need the dependencies)."""
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise BuildError(f"{init}: no __version__ = '...' assignment; add one")


def _requirement_name(line: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        line = line.split(sep, 1)[0]
    return line.strip().lower().replace("_", "-")


def runtime_pins(pyproject: Path = REPO / "pyproject.toml", pins: Path = PINS) -> list[str]:
    """The exact pins (from requirements-dev.txt) of the runtime dependencies named in pyproject.toml."""
    wanted = {
        _requirement_name(dep)
        for dep in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    }
    lines = [
        line.strip()
        for line in pins.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    found = [line for line in lines if _requirement_name(line) in wanted]
    unpinned = wanted - {_requirement_name(line) for line in found}
    if unpinned:
        raise BuildError(f"{pins.name} has no exact pin for {', '.join(sorted(unpinned))}; add one")
    return found


def source_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def build_key(plat: Platform, files: Sequence[Path] | None = None) -> str:
    """A digest of every build input: sources, pins, build code, Python version and platform."""
    digest = hashlib.sha256()
    digest.update(f"{plat.key} {sys.version_info[:3]} {sys.implementation.name}\n".encode())
    for path in sorted(files if files is not None else [*source_files(), *BUILD_INPUTS]):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(
    args: Sequence[str | Path], step: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd, env=env
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"{step} failed (exit {proc.returncode}):\n{tail}")
    return proc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build per cache entry at a time (parallel test sessions); POSIX only, Windows builds alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_build_venv(root: Path, log: Callable[[str], None]) -> Path:
    """The build virtualenv (pinned PyInstaller + runtime pins), created once per set of pins."""
    pins = runtime_pins()
    key = hashlib.sha256(
        (BUILD_REQUIREMENTS.read_text(encoding="utf-8") + "\n".join(pins) + sys.version).encode()
    ).hexdigest()[:12]
    venv = root / "build-venv" / f"py{sys.version_info[0]}{sys.version_info[1]}-{key}"
    ready = venv / ".ready"
    with _locked(root / "build-venv" / ".lock"):
        if ready.exists():
            return _venv_python(venv)
        log(f"creating the build virtualenv {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", venv], "creating the build virtualenv")
        python = _venv_python(venv)
        pip: list[str | Path] = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        _run([*pip, "-r", BUILD_REQUIREMENTS, *pins], "installing PyInstaller and the runtime dependencies")
        ready.write_text("\n".join(pins) + "\n", encoding="utf-8")
        return python


def run_pyinstaller(python: Path, work: Path) -> Path:
    """PyInstaller in one-directory mode; returns the directory holding the executable and _internal/."""
    args: list[str | Path] = [
        python, "-m", "PyInstaller", "--noconfirm", "--clean", "--onedir", "--console",
        "--name", "kubectl-vcerts", "--log-level", "WARN",
        "--distpath", work / "dist", "--workpath", work / "build", "--specpath", work,
        "--paths", REPO,
    ]  # fmt: skip
    for package in COLLECT:
        args += ["--collect-submodules", package]
    for _, module in registered_entries():
        args += ["--hidden-import", module]
    for module in EXCLUDE:
        args += ["--exclude-module", module]
    args.append(PACKAGE / "__main__.py")
    # Bytecode and archives carry timestamps; a fixed epoch keeps rebuilds of equal sources alike.
    # PyInstaller resolves --collect-submodules in a separate interpreter that ignores --paths; it
    # must find the package through PYTHONPATH, or the lazily imported modules are silently left out.
    env = os.environ | {
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "315532800"),
        "PYTHONPATH": str(REPO),
    }
    _run(args, "PyInstaller", cwd=work, env=env)
    out = work / "dist" / "kubectl-vcerts"
    if not out.is_dir():
        raise BuildError(f"PyInstaller produced no {out}")
    return out


def registered_entries(app_source: Path = PACKAGE / "cli" / "app.py") -> list[tuple[str, str]]:
    """(sub-command, module) of each `Entry("name", "module", ...)` line of cli/app.py (lazy imports)."""
    return [
        (node.args[0].value, node.args[1].value)
        for node in ast.walk(ast.parse(app_source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Entry"
        and len(node.args) >= 2
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ]


def registered_commands(app_source: Path = PACKAGE / "cli" / "app.py") -> list[str]:
    return [name for name, _ in registered_entries(app_source)]


def smoke_test(bundle: Path, plat: Platform) -> None:
    """Run the bundled executable the way a user first would; a missing module fails the build here."""
    exe = bundle / plat.bin
    # A clean environment: no project virtualenv or PYTHONPATH may mask a module missing from the bundle.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    with tempfile.TemporaryDirectory() as elsewhere:
        # `NAME --help` imports the command's module: every lazily registered module must be bundled.
        commands = [
            ["--help"],
            ["version", "--client"],
            *([name, "--help"] for name in registered_commands()),
        ]
        for command in commands:
            step = f"smoke test `kubectl-vcerts {' '.join(command)}`"
            _run([exe, *command], step, cwd=Path(elsewhere), env=env)


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner and time of the build machine mean nothing to the user; keep the mode (executable bits).
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    return info


def write_archive(bundle: Path, license_file: Path, out: Path) -> Path:
    """`out` (.tar.gz) with the bundle's contents and LICENSE at its root, in a stable order.

    Symlinks are stored as the files they point to: krew's extractor handles regular files and dirs.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, dereference=True) as tar,
    ):
        for path in sorted(bundle.rglob("*")):
            # rglob does not descend into a symlinked directory (PyInstaller makes some on macOS):
            # add such a directory with its contents, the others one entry at a time.
            linked_dir = path.is_symlink() and path.is_dir()
            tar.add(
                path, arcname=path.relative_to(bundle).as_posix(), recursive=linked_dir, filter=_tar_filter
            )
        tar.add(license_file, arcname="LICENSE", recursive=False, filter=_tar_filter)
    return out


def prune_cache(plugin_cache: Path, plat: Platform, *, keep: int) -> list[Path]:
    """Delete all but the `keep` newest cached builds of `plat`; returns what was deleted."""
    entries = sorted(
        (path for path in plugin_cache.glob(f"*-{plat.key}-*") if path.is_dir()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for stale in entries[keep:]:
        shutil.rmtree(stale, ignore_errors=True)
        (plugin_cache / f".lock-{stale.name}").unlink(missing_ok=True)
    return entries[keep:]


def _log(message: str) -> None:
    print(f"build-plugin: {message}", file=sys.stderr, flush=True)


def build(
    *,
    out: Path,
    repository: str = DEFAULT_REPOSITORY,
    use_cache: bool = True,
    log: Callable[[str], None] = _log,
) -> Built:
    """Build (or reuse) the archive for this machine and write it plus vcerts.yaml into `out`."""
    plat = current_platform()
    version = read_version()
    name = archive_name(version, plat)
    root = cache_root()
    entry = root / "plugin" / f"{version}-{plat.key}-{build_key(plat)}"
    with _locked(root / "plugin" / f".lock-{entry.name}"):
        cached = entry / name
        if use_cache and cached.is_file():
            log(f"reusing {cached} (sources unchanged)")
            os.utime(entry)  # recently used: pruning keeps the newest entries
        else:
            python = ensure_build_venv(root, log)
            with tempfile.TemporaryDirectory(prefix="vcerts-build-") as tmp:
                log(f"running PyInstaller for {plat.key} (about a minute)")
                bundle = run_pyinstaller(python, Path(tmp))
                smoke_test(bundle, plat)
                staged = write_archive(bundle, REPO / "LICENSE", Path(tmp) / name)
                entry.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(staged, cached.with_suffix(".partial"))
                cached.with_suffix(".partial").replace(cached)
                prune_cache(entry.parent, plat, keep=KEEP_BUILDS)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / name
    if archive.resolve() != cached.resolve():
        shutil.copyfile(cached, archive)
    manifest = write_manifest(
        out / f"{PLUGIN}.yaml", version=version, digests={plat: sha256_file(archive)}, repository=repository
    )
    return Built(archive=archive, manifest=manifest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/build-plugin",
        description="Build the standalone kubectl-vcerts archive for this machine and its krew manifest.",
    )
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (default: dist/)")
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY, help="GitHub OWNER/NAME for the URIs")
    parser.add_argument("--no-cache", action="store_true", help="rebuild even if the sources are unchanged")
    args = parser.parse_args(argv)
    try:
        built = build(out=args.out, repository=args.repository, use_cache=not args.no_cache)
    except (BuildError, ManifestError) as exc:
        print(f"build-plugin: error: {exc}", file=sys.stderr)
        return 1
    print(built.archive)
    print(built.manifest)
    return 0
