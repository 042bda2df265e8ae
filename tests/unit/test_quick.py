"""The quick path of `check` (cli/quick.py) understands exactly what the typer command does, or defers.

For every command line it accepts, the typer app must reach `check` with the same target, verbosity
and options; for the forms it does not accept it must return None (the typer app then handles them).
And both paths must print the same thing and exit with the same code.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_vcerts.cli import check as check_command
from kubectl_vcerts.cli import deps as deps_module
from kubectl_vcerts.cli import quick
from kubectl_vcerts.cli.app import run
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.flags import COMPLETE_VAR
from kubectl_vcerts.cli.formats import OutputFormat
from kubectl_vcerts.cli.quick import QuickCheck, parse
from kubectl_vcerts.kube import discovery
from kubectl_vcerts.kube.client import KubeTarget
from tests.support.pki_builder import Options, cached_pki
from tests.unit.read_fakes import FakeReader, certs_secret, config_secret, pod, workload

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["check", "vc"], QuickCheck(names=("vc",)), id="a name"),
        pytest.param(
            ["check", "vc", "-n", "ns", "-o", "json", "--warn-within=30d"],
            QuickCheck(names=("vc",), namespace="ns", output=OutputFormat.JSON, warn_within="30d"),
            id="options after the name",
        ),
        pytest.param(
            ["--kubeconfig=/k", "--context", "c", "check", "-A", "-v", "--request-timeout", "5s"],
            QuickCheck(kubeconfig="/k", context="c", all_namespaces=True, verbose=True, request_timeout=5.0),
            id="global flags before and after the command",
        ),
        pytest.param(["check", "a", "b", "-nns"], QuickCheck(names=("a", "b"), namespace="ns"),
                     id="several names and an attached -n"),
        pytest.param(["check", "vc", "-o", "WIDE"], QuickCheck(names=("vc",), output=OutputFormat.WIDE),
                     id="formats in any case"),
        pytest.param(
            ["check", "vc", "--live", "--vcluster-server", "https://127.0.0.1:1"],
            QuickCheck(names=("vc",), live=True, vcluster_server="https://127.0.0.1:1"),
            id="live",
        ),
        pytest.param(["check", "vc", "--help"], None, id="help is typer's"),
        pytest.param(["check", "-h"], None, id="short help is typer's"),
        pytest.param(["check", "vc", "--", "x"], None, id="a double dash is typer's"),
        pytest.param(["check", "vc", "-ojson"], None, id="an attached short value is typer's"),
        pytest.param(["check", "vc", "-o", "xml"], None, id="an invalid format is typer's to word"),
        pytest.param(["check", "vc", "-n", "a", "-n", "b"], None, id="an option given twice is typer's"),
        pytest.param(["check", "vc", "--warn-within"], None, id="a missing value is typer's"),
        pytest.param(["check", "vc", "--warn-within", "-A"], None, id="a value that looks like an option"),
        pytest.param(["check", "vc", "--context", ""], None, id="an empty value is typer's"),
        pytest.param(["check", "vc", "-Av"], None, id="grouped short flags are typer's"),
        pytest.param(["check", "-"], None, id="a lone dash is typer's"),
        pytest.param(["check", "vc", "--bogus"], None, id="an unknown option is typer's"),
        pytest.param(["check", "vc", "--live=yes"], None, id="a value on a flag is typer's"),
        pytest.param(["rotate", "vc"], None, id="other commands are typer's"),
        pytest.param(["--help"], None, id="the root help is typer's"),
        pytest.param([], None, id="nothing at all is typer's"),
        pytest.param(["--context", "check", "vc"], None, id="check as a flag value is not the command"),
        pytest.param(["check", "vc", "--request-timeout", "5x"], None, id="a bad request timeout is typer's"),
    ],
)
def test_parse_takes_the_common_forms_and_defers_the_rest(
    argv: list[str], expected: QuickCheck | None
) -> None:
    assert parse(argv) == expected


def test_shell_completion_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPLETE_VAR, "complete_bash")
    assert parse(["check", "vc"]) is None


# ------------------------------------------------------------------------------------------ same meaning
WORDS = [
    "check", "vc", "vc2", "-n", "ns", "--namespace", "--namespace=ns2", "-nns3", "-n=ns4", "--kubeconfig",
    "/k", "--kubeconfig=/k2", "--context", "ctx", "--context=ctx2", "--request-timeout", "5s",
    "--request-timeout=1m", "-v", "--verbose", "-A", "--all-namespaces", "--warn-within", "30d",
    "--warn-within=7d", "-o", "json", "WIDE", "--output", "--output=yaml", "-ojson", "--live",
    "--vcluster-server", "https://127.0.0.1:1", "--vcluster-server=https://127.0.0.1:2", "--", "-h",
    "--help", "-", "", "-Av", "--bogus", "rotate", "table",
]


def _typer_view(argv: list[str]) -> dict[str, Any] | None:
    """What the typer app hands to `check`'s implementation for `argv` (None: it never got there)."""
    seen: list[dict[str, Any]] = []

    def capture(deps: Deps, **options: Any) -> int:
        seen.append({"target": deps.target, "verbose": deps.verbose, **options})
        return 0

    sink = io.StringIO()  # typer's own usage errors and help: not what this test looks at
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(sink), redirect_stderr(sink):
        patch.setattr(check_command, "execute", capture)
        run(argv)
    return seen[0] if seen else None


def _quick_view(request: QuickCheck) -> dict[str, Any]:
    return {
        "target": KubeTarget(
            kubeconfig=request.kubeconfig,
            context=request.context,
            namespace=request.namespace,
            request_timeout=request.request_timeout,
        ),
        "verbose": request.verbose,
        "names": list(request.names),
        "all_namespaces": request.all_namespaces,
        "warn_within": request.warn_within,
        "output": request.output,
        "live": request.live,
        "vcluster_server": request.vcluster_server,
        # the typer command passes what the quick path leaves to execute's defaults
        "selector": "",
        "prometheus": False,
        "emit_events": False,
    }


@settings(max_examples=500, deadline=None)
@given(
    before=st.lists(st.sampled_from(WORDS), max_size=3),
    after=st.lists(st.sampled_from(WORDS), max_size=6),
    with_command=st.booleans(),
)
def test_whatever_the_quick_path_accepts_typer_reads_the_same_way(
    before: list[str], after: list[str], with_command: bool
) -> None:
    argv = [*before, *(["check"] if with_command else []), *after]
    request = parse(argv)
    if request is None:
        return
    typer_view = _typer_view(argv)
    assert typer_view is not None, f"typer rejects {argv} but the quick path accepts it"
    assert typer_view == _quick_view(request), argv


GROUPS = [["vc"], ["vc2"], ["-n", "ns"], ["-A"], ["-o", "json"], ["--request-timeout=5s"], ["--live"], ["-v"],
          ["--kubeconfig", "/k"], ["--warn-within=30d"], ["--context", "c"]]


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(st.sampled_from(GROUPS), unique_by=lambda g: g[0].split("=")[0], max_size=6))
def test_the_quick_path_takes_every_plain_check_line(groups: list[list[str]]) -> None:
    """Each option at most once, in any order, with its value as the next word or after `=`: the forms
    people and cron jobs type never fall back (guards against a quick path that silently stops working)."""
    argv = ["check", *(word for group in groups for word in group)]
    assert parse(argv) is not None, argv


# ------------------------------------------------------------------------------------------ same output
def _reader() -> FakeReader:
    reader = FakeReader(namespace="team-a")
    reader.workloads.append(workload("vc", "team-a"))
    reader.workloads.append(workload("other", "team-b"))
    reader.secrets += [certs_secret(cached_pki(Options())), config_secret(yaml_text="controlPlane: {}\n")]
    reader.add_pod("team-a", "vc", pod("vc-0"))
    return reader


class _FrozenDatetime(datetime):
    """`datetime` whose now() is one fixed instant: the two runs compared must see the same clock."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FrozenDatetime:
        return cls(2026, 7, 1, 12, 0, 0, tzinfo=tz)


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def open_reader(_target: KubeTarget, _session: Any) -> FakeReader:
        return _reader()

    monkeypatch.setattr(discovery, "open_reader", open_reader)
    monkeypatch.setattr(deps_module, "datetime", _FrozenDatetime)


@pytest.mark.usefixtures("fake_cluster")
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["check", "vc"], id="the table"),
        pytest.param(["check", "vc", "-o", "wide"], id="the wide table"),
        pytest.param(["check", "vc", "-o", "json", "--warn-within", "4000d"], id="json with a long window"),
        pytest.param(["check", "vc", "-o", "yaml"], id="yaml"),
        pytest.param(["check", "-A"], id="every namespace"),
        pytest.param(["check", "other"], id="not found names other namespaces"),
        pytest.param(["check", "vc", "--warn-within", "soon"], id="a bad window"),
        pytest.param(["check", "vc", "-A", "--live"], id="live with several"),
    ],
)
def test_both_paths_print_the_same_and_exit_the_same(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fast = quick.run(argv)
    fast_out, fast_err = capsys.readouterr()
    slow = run(argv)
    slow_out, slow_err = capsys.readouterr()
    assert fast is not None
    assert (fast, fast_out, fast_err) == (slow, slow_out, slow_err)


def test_unexpected_failures_look_the_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_target: KubeTarget, _session: Any) -> FakeReader:
        raise RuntimeError("boom")

    monkeypatch.setattr(discovery, "open_reader", broken)
    for argv in (["check", "vc"], ["check", "vc", "-v"]):
        fast = quick.run(argv)
        fast_err = capsys.readouterr().err
        slow = run(argv)
        slow_err = capsys.readouterr().err
        assert fast == slow
        assert fast_err.splitlines()[-2:] == slow_err.splitlines()[-2:]
        assert ("Traceback" in fast_err) == ("-v" in argv) == ("Traceback" in slow_err)


def test_the_entry_point_runs_check_without_typer(tmp_path: Path) -> None:
    """`kubectl-vcerts check …` goes through the quick path: typer, rich and kubernetes stay unloaded."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:1\n  name: c\n"
        "contexts:\n- context:\n    cluster: c\n    user: u\n  name: x\ncurrent-context: x\n"
        "users:\n- name: u\n  user:\n    token: t\n"
    )
    code = (
        "import sys\n"
        "from kubectl_vcerts.cli import entry, quick\n"
        "import kubectl_vcerts.kube.rest as rest\n"
        "rest.ATTEMPTS = 1\n"  # one refused connection is enough here
        "sys.argv = ['kubectl-vcerts', 'check', 'vc', '--kubeconfig', sys.argv[1]]\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        "print('LOADED', sorted(m for m in ('typer', 'rich', 'kubernetes', 'click') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(kubeconfig)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=True,
    )
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
    assert "EXIT 17" in result.stdout  # UNREACHABLE: it did try the API server
    assert result.stderr.startswith("kubectl vcerts: error: cannot reach the API server")

