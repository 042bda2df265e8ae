"""The command line itself: kubectl's global flags anywhere, --request-timeout syntax, one rendering of
errors with documented exit codes, lazy command loading (no kubernetes import for --help)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import __version__
from kubectl_vcerts.cli import app as app_module
from kubectl_vcerts.cli.app import COMMANDS, run
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.flags import hoist_global_flags, parse_request_timeout
from kubectl_vcerts.errors import ExitCode, UsageError
from kubectl_vcerts.kube import discovery
from kubectl_vcerts.kube.client import KubeTarget
from tests.support.pki_builder import NOW, Options, cached_pki
from tests.unit.read_fakes import FakeReader, certs_secret, config_secret, pod, workload

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["check", "vc", "-n", "ns", "--context", "c"],
            ["-n", "ns", "--context", "c", "check", "vc"],
            id="flags after the sub-command move in front",
        ),
        pytest.param(
            ["check", "--kubeconfig=/k", "vc", "-nns", "-v"],
            ["--kubeconfig=/k", "-n", "ns", "-v", "check", "vc"],
            id="equals and attached short forms are kept",
        ),
        pytest.param(["-n=ns", "check", "vc"], ["-n", "ns", "check", "vc"], id="kubectl's -n=value form"),
        pytest.param(
            ["backups", "list", "vc", "--request-timeout", "5s", "-o", "json"],
            ["--request-timeout", "5s", "backups", "list", "vc", "-o", "json"],
            id="sub-group commands keep their own options",
        ),
        pytest.param(
            ["check", "vc", "--", "-n", "x"],
            ["check", "vc", "--", "-n", "x"],
            id="nothing after -- is touched",
        ),
        pytest.param(
            ["rotate-ca", "vc", "--platform-context", "p"],
            ["rotate-ca", "vc", "--platform-context", "p"],
            id="look-alike options of a command stay",
        ),
    ],
)
def test_global_flags_are_hoisted_from_anywhere(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_flags(argv) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("0", None, id="zero means no timeout"),
        pytest.param("30", 30.0, id="a bare number is seconds"),
        pytest.param("5s", 5.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="a compound Go duration"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("1h", 3600.0, id="hours"),
    ],
)
def test_request_timeout_uses_kubectls_syntax(text: str, seconds: float | None) -> None:
    assert parse_request_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "5s junk"])
def test_a_bad_request_timeout_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--request-timeout"):
        parse_request_timeout(text)


def test_every_registered_command_module_exposes_command_or_app() -> None:
    for entry in COMMANDS:
        command = app_module.load_command(entry)
        assert command.name == entry.name


# ------------------------------------------------------------------------------------------ run()


def _fake_reader() -> FakeReader:
    reader = FakeReader(namespace="team-a")
    reader.workloads.append(workload("vc", "team-a"))
    reader.secrets += [certs_secret(cached_pki(Options())), config_secret(yaml_text="controlPlane: {}\n")]
    reader.add_pod("team-a", "vc", pod("vc-0"))
    return reader


@pytest.fixture
def use_reader(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeReader], list[KubeTarget]]:
    """Make `check` read from a fake reader; returns the targets it was opened with."""
    targets: list[KubeTarget] = []

    def install(reader: FakeReader) -> list[KubeTarget]:
        def open_reader(target: KubeTarget, _session: Any) -> FakeReader:
            targets.append(target)
            return reader

        monkeypatch.setattr(discovery, "open_reader", open_reader)
        return targets

    return install


def _deps(days: int = 0) -> Deps:
    from datetime import timedelta

    return Deps(target=KubeTarget(), now=lambda: NOW + timedelta(days=days), interactive=False)


@pytest.mark.parametrize(
    ("days", "code", "status"),
    [
        pytest.param(0, ExitCode.OK, "OK", id="all fine exits 0"),
        pytest.param(300, ExitCode.CHECK_EXPIRING, "EXPIRING", id="expiring exits 3"),
        pytest.param(400, ExitCode.CHECK_EXPIRED, "EXPIRED", id="expired exits 4"),
    ],
)
def test_check_exit_codes_hold_for_json_output(
    use_reader: Callable[[FakeReader], list[KubeTarget]],
    capsys: pytest.CaptureFixture[str],
    days: int,
    code: ExitCode,
    status: str,
) -> None:
    use_reader(_fake_reader())
    assert run(["check", "vc", "-o", "json"], obj=_deps(days)) == code
    doc = json.loads(capsys.readouterr().out)
    assert (doc["status"], doc["exitCode"]) == (status, int(code))


def test_global_flags_written_after_the_name_reach_the_connection(
    use_reader: Callable[[FakeReader], list[KubeTarget]], capsys: pytest.CaptureFixture[str]
) -> None:
    targets = use_reader(_fake_reader())
    argv = [
        "check",
        "vc",
        "-n",
        "team-a",
        "--context",
        "ctx",
        "--kubeconfig",
        "/k",
        "--request-timeout",
        "5s",
    ]
    assert run(argv, obj=_deps()) == 0
    assert targets == [KubeTarget(kubeconfig="/k", context="ctx", namespace="team-a", request_timeout=5.0)]
    assert "apiserver.crt" in capsys.readouterr().out


def test_a_vcerts_error_is_one_line_and_a_hint_with_its_exit_code(
    use_reader: Callable[[FakeReader], list[KubeTarget]], capsys: pytest.CaptureFixture[str]
) -> None:
    reader = _fake_reader()
    reader.workloads.append(workload("other", "team-b"))
    use_reader(reader)
    assert run(["check", "other"], obj=_deps()) == ExitCode.NOT_FOUND
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "kubectl vcerts: error: vcluster other not found in namespace team-a; found in: team-b",
        "  hint: use -n team-b",
    ]


def test_usage_errors_exit_2_in_the_same_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", "vc", "--warn-within", "soon"], obj=_deps()) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("kubectl vcerts: error: --warn-within: cannot parse")
    assert run(["no-such-command"], obj=_deps()) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("kubectl vcerts: error: No such command")
    assert "hint: see `kubectl vcerts --help`" in err


def test_unexpected_failures_print_one_line_and_a_traceback_only_with_v(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_target: KubeTarget, _session: Any) -> FakeReader:
        raise RuntimeError("boom")

    monkeypatch.setattr(discovery, "open_reader", broken)
    assert run(["check", "vc"], obj=_deps()) == ExitCode.FAILURE
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "kubectl vcerts: error: unexpected failure: RuntimeError: boom",
        "  hint: run with -v for details",
    ]
    assert run(["check", "vc", "-v"], obj=_deps()) == ExitCode.FAILURE
    assert "Traceback" in capsys.readouterr().err


def test_version_without_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["version", "--client", "-o", "json"], obj=_deps()) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["plugin"] == __version__
    assert doc["python"] == ".".join(str(p) for p in sys.version_info[:3])


def test_help_lists_every_command_without_importing_them_or_kubernetes() -> None:
    code = (
        "import sys\n"
        "from kubectl_vcerts.cli.app import run\n"
        "rc = run(['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('kubernetes', 'kubectl_vcerts.cli.rotate',"
        " 'kubectl_vcerts.pki', 'kubectl_vcerts.cli.check')))\n"
        "print('LOADED', loaded, rc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert "LOADED [] 0" in result.stdout
    for entry in COMMANDS:
        assert entry.name in result.stdout


# ------------------------------------------------------------------------------------------ completion


def _complete(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *words: str) -> list[str]:
    from kubectl_vcerts.cli.complete import kubectl_complete

    monkeypatch.setattr(sys, "argv", ["kubectl_complete-vcerts", *words])
    kubectl_complete()
    return capsys.readouterr().out.splitlines()


def test_kubectl_plugin_completion_offers_commands_options_and_vcluster_names(
    use_reader: Callable[[FakeReader], list[KubeTarget]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = _fake_reader()
    reader.workloads.append(workload("vc-two", "team-a"))
    reader.workloads.append(workload("elsewhere", "team-b"))
    targets = use_reader(reader)
    assert _complete(monkeypatch, capsys, "ro") == ["rotate", "rotate-ca", ":4"]
    assert _complete(monkeypatch, capsys, "check", "vc", "--warn") == ["--warn-within", ":4"]
    assert _complete(monkeypatch, capsys, "check", "-n", "team-a", "v") == ["vc", "vc-two", ":4"]
    assert targets[-1].namespace == "team-a"


def test_completion_of_names_fails_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(_target: KubeTarget, _session: Any) -> FakeReader:
        raise OSError("connection refused")

    monkeypatch.setattr(discovery, "open_reader", unreachable)
    assert _complete(monkeypatch, capsys, "check", "") == [":4"]
    assert capsys.readouterr().err == ""
