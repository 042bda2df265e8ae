"""`check` through an in-memory reader: statuses, exit codes, one-list summaries, tables and documents."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from kubectl_vcerts.cli.checking import check_document, check_rows, notes, summary_document, summary_rows
from kubectl_vcerts.cli.options import OutputFormat
from kubectl_vcerts.cli.render import (
    dump_document,
    format_expiry,
    format_remaining,
    jsonable,
    rfc3339,
    table_lines,
)
from kubectl_vcerts.errors import ExitCode, NotFoundError
from kubectl_vcerts.pki import Status
from kubectl_vcerts.rotation.check import check_all, check_vcluster, exit_code_for
from kubectl_vcerts.rotation.records import SecretObject
from tests.support.pki_builder import NOW, Options, cached_pki
from tests.unit.read_fakes import FakeReader, certs_secret, config_secret, pod, workload

K3S = "controlPlane: {distro: {k3s: {enabled: true}}}\n"


def _reader(*names: tuple[str, str], labelled: bool = True) -> FakeReader:
    reader = FakeReader()
    for name, namespace in names:
        reader.workloads.append(workload(name, namespace))
        reader.secrets.append(
            certs_secret(
                cached_pki(Options(name=name, namespace=namespace)), name, namespace, labelled=labelled
            )
        )
        reader.secrets.append(
            config_secret(name, namespace, yaml_text=K3S if name == "old" else "controlPlane: {}\n")
        )
        reader.add_pod(namespace, name, pod(f"{name}-0"))
    return reader


@pytest.mark.parametrize(
    ("now", "warn_within", "worst", "code"),
    [
        pytest.param(
            NOW, timedelta(days=90), Status.OK, ExitCode.OK, id="fresh certificates are OK and exit 0"
        ),
        pytest.param(
            NOW + timedelta(days=300),
            timedelta(days=90),
            Status.EXPIRING,
            ExitCode.CHECK_EXPIRING,
            id="leaves ending within the window are EXPIRING and exit 3",
        ),
        pytest.param(
            NOW + timedelta(days=300),
            timedelta(days=30),
            Status.OK,
            ExitCode.OK,
            id="a shorter window makes the same leaves OK",
        ),
        pytest.param(
            NOW + timedelta(days=400),
            timedelta(days=90),
            Status.EXPIRED,
            ExitCode.CHECK_EXPIRED,
            id="ended leaves are EXPIRED and exit 4",
        ),
        pytest.param(
            NOW - timedelta(days=1),
            timedelta(days=90),
            Status.NOT_YET_VALID,
            ExitCode.CHECK_EXPIRED,
            id="certificates from the future are NOT YET VALID and exit 4",
        ),
    ],
)
def test_check_status_and_exit_code(
    now: datetime, warn_within: timedelta, worst: Status, code: ExitCode
) -> None:
    report = check_vcluster(
        _reader(("vc", "team-a")), name="vc", namespace="team-a", now=now, warn_within=warn_within
    )
    assert report.worst is worst
    assert exit_code_for(report.worst) is code
    assert check_document(report)["exitCode"] == int(code)


def test_a_missing_certs_secret_is_invalid_and_exits_4() -> None:
    reader = _reader(("vc", "team-a"))
    reader.secrets = [s for s in reader.secrets if s.name != "vc-certs"]
    report = check_vcluster(reader, name="vc", namespace="team-a", now=NOW)
    assert report.pki is None
    assert exit_code_for(report.worst) is ExitCode.CHECK_EXPIRED
    assert check_document(report)["secret"] == {"name": "vc-certs", "found": False}


def test_a_corrupt_entry_gets_an_invalid_row_naming_the_reason() -> None:
    reader = _reader(("vc", "team-a"))
    data = dict(cached_pki(Options()))
    data["apiserver.crt"] = b"not a certificate"
    del data["front-proxy-client.crt"]
    reader.secrets[0] = certs_secret(data)
    report = check_vcluster(reader, name="vc", namespace="team-a", now=NOW)
    headers, rows, _ = check_rows(report, wide=True)
    by_key = {row[headers.index("SECRET KEY")]: row for row in rows}
    assert by_key["apiserver.crt"][headers.index("STATUS")] == "INVALID"
    assert by_key["apiserver.crt"][headers.index("FINDINGS")] == "unparseable"
    assert by_key["front-proxy-client.crt"][headers.index("FINDINGS")] == "missing"
    assert report.worst is Status.INVALID


def test_the_table_has_vclusters_columns_and_date_format_plus_remaining() -> None:
    report = check_vcluster(_reader(("vc", "team-a")), name="vc", namespace="team-a", now=NOW)
    headers, rows, _ = check_rows(report, wide=False)
    assert headers == ["FILENAME", "SUBJECT", "ISSUER", "EXPIRES ON", "STATUS", "REMAINING"]
    apiserver = next(row for row in rows if row[0] == "apiserver.crt")
    cert = next(c for c in report.pki.certificates if c.secret_key == "apiserver.crt")  # type: ignore[union-attr]
    assert apiserver[3] == cert.not_after.strftime("%b %d, %Y %H:%M UTC")
    assert apiserver[4] == "OK"
    assert apiserver[5] == format_remaining(cert.not_after - NOW)
    wide_headers, _, _ = check_rows(report, wide=True)
    assert wide_headers[6:] == ["SECRET KEY", "PATH", "NOT BEFORE", "CA", "FINGERPRINT", "FINDINGS"]


def test_the_json_document_is_stable_and_uses_rfc3339_utc() -> None:
    report = check_vcluster(_reader(("vc", "team-a")), name="vc", namespace="team-a", now=NOW)
    doc = json.loads(dump_document(check_document(report), OutputFormat.JSON))
    assert list(doc) == [
        "apiVersion",
        "kind",
        "checkedAt",
        "warnWithinSeconds",
        "status",
        "exitCode",
        "vcluster",
        "secret",
        "ca",
        "earliestLeafNotAfter",
        "notRestarted",
        "stagedRotation",
        "certificates",
        "findings",
    ]
    assert doc["stagedRotation"] is None
    assert doc["checkedAt"] == "2026-06-01T12:00:00Z"
    assert doc["warnWithinSeconds"] == 90 * 86400
    assert doc["vcluster"]["distro"] == "k8s"
    assert doc["ca"]["fingerprint"].startswith("sha256:")
    assert len(doc["certificates"]) == len(report.pki.certificates)  # type: ignore[union-attr]
    first = doc["certificates"][0]
    assert set(first) == {
        "secretKey",
        "path",
        "filename",
        "kind",
        "subject",
        "subjectO",
        "issuer",
        "issuerKey",
        "notBefore",
        "notAfter",
        "remainingSeconds",
        "status",
        "verifies",
        "keyMatches",
        "fingerprint",
        "findings",
    }
    assert first["notAfter"].endswith("Z")
    assert yaml.safe_load(dump_document(check_document(report), OutputFormat.YAML)) == doc
    assert "PRIVATE KEY" not in json.dumps(doc)


def test_check_all_reads_secrets_with_one_list_call_for_many_vclusters() -> None:
    reader = _reader(("vc", "a"), ("vc", "b"), ("old", "b"), ("x", "c"))
    summary = check_all(reader, namespace=None, now=NOW)
    assert [(r.vcluster.namespace, r.vcluster.name) for r in summary.rows] == [
        ("a", "vc"),
        ("b", "old"),
        ("b", "vc"),
        ("c", "x"),
    ]
    assert reader.calls == {"list_workloads": 1, "list_secrets": 1, "list_pods": 1}
    assert {r.vcluster.name: r.vcluster.distro.value for r in summary.rows}["old"] == "k3s"
    assert summary.worst is Status.OK


def test_check_all_reads_unlabelled_certs_of_old_vclusters_one_by_one() -> None:
    reader = _reader(("vc", "a"), ("vc", "b"), labelled=False)
    summary = check_all(reader, namespace=None, now=NOW)
    assert all(row.pki is not None for row in summary.rows)
    assert reader.calls["read_secret"] == 2


def test_check_all_worst_status_decides_the_exit_code() -> None:
    reader = _reader(("vc", "a"), ("vc", "b"))
    reader.secrets = [s for s in reader.secrets if (s.namespace, s.name) != ("b", "vc-certs")]
    summary = check_all(reader, namespace=None, now=NOW)
    assert [row.worst for row in summary.rows] == [Status.OK, Status.INVALID]
    assert exit_code_for(summary.worst) is ExitCode.CHECK_EXPIRED
    headers, rows, _ = summary_rows(summary, wide=False)
    assert headers == ["NAMESPACE", "NAME", "VERSION", "STATUS", "LEAVES EXPIRE", "CA EXPIRES", "CERTS"]
    assert rows[1][6] == "INVALID (no vc-certs)"
    doc = summary_document(summary)
    assert (doc["kind"], doc["status"], doc["exitCode"]) == ("CertificateCheckList", "INVALID", 4)
    assert doc["items"][0]["earliestLeafNotAfter"] == rfc3339(summary.rows[0].pki.earliest_leaf_not_after)  # type: ignore[union-attr]


def test_check_with_names_keeps_only_those_and_refuses_unknown_ones() -> None:
    reader = _reader(("vc", "a"), ("other", "a"))
    summary = check_all(reader, namespace="a", names=["vc"], now=NOW)
    assert [r.vcluster.name for r in summary.rows] == ["vc"]
    with pytest.raises(NotFoundError, match="vcluster nope not found in namespace a"):
        check_all(reader, namespace="a", names=["vc", "nope"], now=NOW)


def test_check_all_falls_back_to_the_context_namespace_when_secrets_cannot_be_listed_everywhere() -> None:
    reader = _reader(("vc", "a"), ("vc", "b"))
    reader.namespace = "b"
    reader.forbid_all_namespaces.add("list_secrets")
    summary = check_all(reader, namespace=None, now=NOW)
    assert [r.vcluster.ref for r in summary.rows] == ["b/vc"]


# ------------------------------------------------------------------------------------------ render helpers


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        pytest.param(timedelta(days=364, hours=5), "364d", id="days when two days or more"),
        pytest.param(timedelta(hours=30), "30h", id="hours under two days"),
        pytest.param(timedelta(minutes=90), "90m", id="minutes under two hours"),
        pytest.param(-timedelta(days=3), "-3d", id="negative once expired"),
    ],
)
def test_remaining_time_is_coarse_like_kubectl_age(delta: timedelta, text: str) -> None:
    assert format_remaining(delta) == text


def test_expiry_uses_vclusters_go_layout_in_utc() -> None:
    assert format_expiry(datetime(2027, 1, 2, 3, 4, tzinfo=UTC)) == "Jan 02, 2027 03:04 UTC"


def test_tables_pad_columns_with_three_spaces_and_never_cut() -> None:
    lines = table_lines(["A", "LONG HEADER"], [["x" * 30, "y"]])
    assert lines == ["A" + " " * 29 + "   LONG HEADER", "x" * 30 + "   y"]


def test_documents_refuse_bytes_and_hide_repr_false_fields() -> None:
    secret = SecretObject(name="s", namespace="n", data={"tls.key": b"k"})
    plain: Any = jsonable(secret)
    assert "data" not in plain and plain["name"] == "s"
    with pytest.raises(TypeError):
        jsonable({"x": b"k"})


# ------------------------------------------------------------------------------------------ progress, confirm


def _console_deps(*, verbose: bool = False, interactive: bool = False) -> tuple[Any, io.StringIO]:
    from rich.console import Console

    from kubectl_vcerts.cli.deps import Deps
    from kubectl_vcerts.kube.client import KubeTarget

    buffer = io.StringIO()
    deps = Deps(target=KubeTarget(), verbose=verbose, interactive=interactive)
    deps._err = Console(file=buffer, force_terminal=False, width=200)
    return deps, buffer


def test_progress_is_silent_off_a_terminal_and_plain_lines_with_v() -> None:
    from kubectl_vcerts.cli.render import progress
    from kubectl_vcerts.rotation.ports import ProgressEvent

    deps, buffer = _console_deps()
    progress(deps)(ProgressEvent("backup", "writing vc-certs-backup-1"))
    assert buffer.getvalue() == ""
    deps, buffer = _console_deps(verbose=True)
    report = progress(deps)
    report(ProgressEvent("backup", "writing vc-certs-backup-1"))
    report(ProgressEvent("backup", "written", done=True))
    assert buffer.getvalue().splitlines() == ["backup: writing vc-certs-backup-1 ...", "backup: written done"]


def test_confirm_needs_yes_off_a_terminal_and_asks_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_vcerts.cli.render import confirm
    from kubectl_vcerts.errors import UsageError

    deps, _ = _console_deps()
    assert confirm(deps, "Change the certificates of team-a/vc?", yes=True) is True
    with pytest.raises(UsageError, match="refusing to change the certificates of team-a/vc without --yes"):
        confirm(deps, "Change the certificates of team-a/vc?", yes=False)
    deps, buffer = _console_deps(interactive=True)
    answers = iter(["y", ""])
    monkeypatch.setattr("builtins.input", lambda *_: next(answers))
    assert confirm(deps, "Proceed?", yes=False) is True
    assert confirm(deps, "Proceed?", yes=False) is False
    assert "Proceed? [y/N]" in buffer.getvalue()


def test_a_staged_rotation_under_way_shows_its_phase_the_next_one_and_both_cas() -> None:
    from kubectl_vcerts.pki.parse import fingerprint, load_certificates
    from kubectl_vcerts.pki.staged import stage_switch, stage_trust

    data = cached_pki(Options(name="vc", namespace="team-a"))
    trust = stage_trust(data, now=NOW).data
    reader = _reader(("vc", "team-a"))
    reader.secrets[0] = certs_secret(stage_switch(trust, now=NOW).data, "vc", "team-a")
    report = check_vcluster(reader, name="vc", namespace="team-a", now=NOW)
    doc = check_document(report)
    old, new = load_certificates(trust["ca.crt"])
    assert doc["stagedRotation"] == {"phase": "switch", "next": "finish", "oldCa": fingerprint(old),
                                     "newCa": fingerprint(new)}
    assert report.worst is Status.OK, [f.message for f in report.pki.findings]  # type: ignore[union-attr]
    assert ("note: staged CA rotation under way: phase switch done; next `kubectl vcerts rotate-ca vc -n "
            "team-a --phase finish` (or `kubectl vcerts rotate-ca vc -n team-a --phase rollback` to undo "
            "switch)") in notes(report)
