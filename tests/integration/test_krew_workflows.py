"""The GitHub workflows: linted by actionlint (built from its Go module), and in step with the packaging.

actionlint also runs shellcheck on every `run:` script when shellcheck is on PATH (it is on GitHub's
runners; `apt-get install shellcheck` locally).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from krew.manifest import PLATFORMS

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_VERSION = "v1.7.12"  # also in .github/workflows/ci.yml


def build_actionlint() -> Path:
    """actionlint from its Go module, once, cached outside the repository."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    gobin = cache / "kubectl-vcerts" / "tools" / f"actionlint-{ACTIONLINT_VERSION}"
    exe = gobin / "actionlint"
    if not exe.is_file():
        go = shutil.which("go")
        assert go, "Go >= 1.26 is needed on PATH to build actionlint"
        subprocess.run(
            [go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}"],
            env=os.environ | {"GOBIN": str(gobin), "GOFLAGS": "-mod=mod"},
            check=True,
            capture_output=True,
            timeout=600,
        )
    return exe


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return build_actionlint()


def load(name: str) -> dict[str, object]:
    doc: dict[str, object] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return doc


def jobs_of(name: str) -> dict[str, dict[str, object]]:
    jobs = load(name)["jobs"]
    assert isinstance(jobs, dict)
    return jobs


@pytest.mark.binaries
def test_actionlint_accepts_every_workflow(actionlint: Path) -> None:
    proc = subprocess.run(
        [str(actionlint), "-no-color"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.binaries
def test_actionlint_rejects_a_release_workflow_with_a_dangling_job_dependency(
    actionlint: Path, tmp_path: Path
) -> None:
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8").replace("needs: build", "needs: bulid")
    broken.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [str(actionlint), "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "bulid" in proc.stdout


def test_every_action_is_pinned_to_an_exact_version() -> None:
    uses = re.findall(
        r"uses:\s*(\S+)", "".join(p.read_text(encoding="utf-8") for p in WORKFLOWS.glob("*.yml"))
    )
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", action), action


def test_the_release_builds_one_archive_per_krew_platform_on_a_native_runner() -> None:
    build = jobs_of("release.yml")["build"]
    matrix = build["strategy"]["matrix"]["include"]  # type: ignore[index]
    assert sorted(entry["platform"] for entry in matrix) == sorted(p.key for p in PLATFORMS)
    for entry in matrix:
        expected = "kubectl-vcerts.exe" if entry["platform"].startswith("windows") else "kubectl-vcerts"
        assert entry["exe"] == expected
    assert build["runs-on"] == "${{ matrix.runner }}"


def test_the_release_runs_the_tests_before_building_and_publishes_after_all_builds() -> None:
    jobs = jobs_of("release.yml")
    assert jobs["build"]["needs"] == "test"
    assert jobs["release"]["needs"] == "build"
    test_steps = jobs["test"]["steps"]
    assert isinstance(test_steps, list)
    assert any(step.get("run") == "scripts/test" for step in test_steps)
    release_script = "\n".join(str(step.get("run", "")) for step in jobs["release"]["steps"])  # type: ignore[attr-defined]
    assert "--require-all" in release_script
    assert "validate-krew-manifest" in release_script
    assert "dist/vcerts.yaml" in release_script
    # Only the job that publishes may write to the repository.
    assert load("release.yml")["permissions"] == {"contents": "read"}
    assert jobs["release"]["permissions"] == {"contents": "write"}


def test_the_release_triggers_on_version_tags_only() -> None:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    trigger = load("release.yml")[True]  # type: ignore[index]
    assert trigger == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+*"]}}
