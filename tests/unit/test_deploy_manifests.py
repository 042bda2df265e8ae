"""The shipped manifests (kubectl_vcerts/deploy/) say what the code does: the alerts use series the
exporter exports, at the thresholds the README names; the containers run commands the CLI accepts.
(That their RBAC is enough, and needed, is shown on the real cluster: tests/integration/test_exporter.py.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kubectl_vcerts.cli.prometheus import render
from kubectl_vcerts.pki import inspect_pki
from kubectl_vcerts.rotation.check import CheckSummary, SummaryRow
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from tests.support.pki_builder import Options, cached_pki

DEPLOY = Path(__file__).resolve().parents[2] / "kubectl_vcerts" / "deploy"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _exported_names() -> set[str]:
    vc = VCluster(name="vc", namespace="ns", kind=WorkloadKind.STATEFULSET, version="0.33.0",
                  status="Running", replicas=1, persistence=True)
    row = SummaryRow(vc, "vc-certs", inspect_pki(dict(cached_pki(Options(now=NOW))), now=NOW))
    text = render(CheckSummary(rows=(row,), checked_at=NOW, warn_within=timedelta(days=30), namespace="ns"),
                  seconds=0.1)
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheusrule.yaml").read_text())
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def test_every_alert_uses_series_the_exporter_exports() -> None:
    exported = _exported_names()
    for rule in _rules():
        used = set(re.findall(r"\bvcerts_[a-z_]+", rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_at_30_and_7_days_and_on_invalid_pkis() -> None:
    by_name = {rule["alert"]: rule for rule in _rules()}
    assert "< 30 * 86400" in by_name["VClusterCertificateExpiresIn30Days"]["expr"]
    assert "< 7 * 86400" in by_name["VClusterCertificateExpiresIn7Days"]["expr"]
    assert 'status="invalid"' in by_name["VClusterPkiInvalid"]["expr"]
    assert by_name["VClusterCertificateExpiresIn7Days"]["labels"]["severity"] == "critical"


def _container(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    [container] = spec["template"]["spec"]["containers"]
    return dict(container)


def test_the_containers_run_commands_the_cli_has() -> None:
    from typer.testing import CliRunner

    from kubectl_vcerts.cli.app import app

    for path in (DEPLOY / "exporter" / "deployment.yaml", DEPLOY / "exporter-namespaced" / "deployment.yaml",
                 DEPLOY / "renewal" / "cronjob.yaml"):
        container = _container(path)
        assert container["command"] == ["kubectl-vcerts"]
        args = [a.replace("$(POD_IP)", "127.0.0.1") for a in container["args"]]
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (path, result.output)
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
