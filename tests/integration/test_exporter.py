"""`kubectl vcerts exporter`, `check -o prometheus`, `--emit-events` and the scheduled renewal on the real
local cluster — each run under the ServiceAccount and RBAC the shipped manifests create, the metrics
read back with Prometheus' reference parser, the Events counted in the API."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubectl_vcerts import contract
from tests.integration.deploy_support import (
    applied_rbac,
    container_args,
    of_kind,
    relocate,
    render,
    service_account_kubeconfig,
)
from tests.integration.rotation_support import cli_args, cli_env, run_cli, snapshot

pytestmark = pytest.mark.cluster


def _label(session: Any, vcs: list[Any], value: str) -> None:
    for vc in vcs:
        session.apps.patch_namespaced_stateful_set(vc.name, vc.namespace,
                                                   {"metadata": {"labels": {"vcerts-test": value}}})


def _fleet(make_vcluster: Any, session: Any, namespace: str) -> dict[str, Any]:
    """An OK vCluster, one with expired leaves, one that never started (no NAME-certs) and one whose
    NAME-certs has no labels (vCluster < 0.24: read with a get), all labelled for this test only."""
    vcs = {"ok": make_vcluster(name="ok"), "gone": make_vcluster(name="gone", expired_leaves=True),
           "new": make_vcluster(name="new", with_certs_secret=False), "old": make_vcluster(name="old")}
    session.core.patch_namespaced_secret(contract.certs_secret_name("old"), namespace,
                                         [{"op": "remove", "path": "/metadata/labels"}])
    _label(session, list(vcs.values()), namespace)
    return vcs


def _with(args: list[str], option: str, value: str) -> list[str]:
    """`args` with `option`'s value replaced (what a test must change: it runs no pod)."""
    index = args.index(option)
    return [*args[:index + 1], value, *args[index + 2:]]


@contextmanager
def exporter(kubeconfig: Path, namespace: str, args: list[str]) -> Iterator[tuple[subprocess.Popen[str],
                                                                                   list[str], str]]:
    proc = subprocess.Popen(cli_args(kubeconfig, namespace, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=cli_env(None))
    lines: list[str] = []
    stderr = proc.stderr
    assert stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        url = ""
        while not url and time.monotonic() < deadline and proc.poll() is None:
            for line in list(lines):
                match = re.search(r"serving /metrics on ([\d.]+):(\d+)", line)
                if match:
                    url = f"http://{match.group(1)}:{match.group(2)}"
            time.sleep(0.05)
        assert url, "".join(lines)
        yield proc, lines, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        stderr.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while _get(f"{url}/readyz")[0] != 200:
        assert time.monotonic() < deadline, "exporter never ready"
        time.sleep(0.1)


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(dict(s.labels), s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def _events(session: Any, namespace: str) -> list[Any]:
    return [e for e in session.core.list_namespaced_event(namespace).items
            if e.source and e.source.component == contract.TOOL_NAME]


def test_the_exporter_under_its_shipped_rbac_serves_parsable_metrics_and_records_each_event_once(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str, tmp_path: Path
) -> None:
    _fleet(make_vcluster, kube_session, namespace)
    docs = relocate(render("exporter"), namespace=namespace, prefix=namespace[-12:])
    account = of_kind(docs, "ServiceAccount")["metadata"]["name"]
    args = _with(_with(container_args(docs), "--listen", "127.0.0.1:0"), "--interval", "1s")
    assert "--all-namespaces" in args
    with applied_rbac(kube_session, docs):
        config = service_account_kubeconfig(kube_cluster, kube_session, namespace=namespace, name=account,
                                            path=tmp_path / "exporter.kubeconfig")
        with exporter(config, namespace, [*args, "-l", f"vcerts-test={namespace}"]) as (proc, log, url):
            _wait_ready(url)
            assert _get(f"{url}/healthz")[0] == 200
            deadline = time.monotonic() + 60
            while sum("read 4 vCluster(s)" in line for line in log) < 3:  # three reads: events once
                assert time.monotonic() < deadline and proc.poll() is None, "".join(log)
                time.sleep(0.1)
            status, text = _get(f"{url}/metrics")
            assert status == 200
            samples = _parse(text)
            assert samples["vcerts_scrape_success"] == [({}, 1.0)]
            assert samples["vcerts_vclusters"] == [({}, 4.0)]
            worst = {s["vcluster"]: s["status"] for s, v in samples["vcerts_vcluster_status"] if v == 1.0}
            assert worst == {"ok": "ok", "gone": "expired", "new": "invalid", "old": "ok"}
            expiry = {(s["namespace"], s["vcluster"], s["certificate"])
                      for s, _ in samples["vcerts_certificate_expiry_timestamp_seconds"]}
            assert (namespace, "old", "apiserver.crt") in expiry and (namespace, "ok", "ca.crt") in expiry
            earliest = {s["vcluster"]
                        for s, _ in samples["vcerts_vcluster_earliest_expiry_timestamp_seconds"]}
            assert earliest == {"ok", "gone", "old"}
            assert "PRIVATE KEY" not in text and "BEGIN" not in text
            assert _get(f"{url}/nope")[0] == 404
        assert proc.returncode == 0, "".join(log)
        assert not any("PRIVATE KEY" in line or "Traceback" in line for line in log)

    events = _events(kube_session, namespace)
    by_reason = sorted((e.reason, e.involved_object.name) for e in events)
    assert by_reason == [("CertificatesExpired", "gone"), ("CertificatesInvalid", "new")]
    for event in events:
        assert event.type == "Warning" and event.count == 1
        assert event.involved_object.kind == "StatefulSet"
        assert event.involved_object.uid == kube_session.apps.read_namespaced_stateful_set(
            event.involved_object.name, namespace).metadata.uid

    again = run_cli(kube_cluster.kubeconfig, namespace, "check", "--emit-events")
    assert again.returncode == 4, again.stderr  # the exit code of check: something expired
    assert len(_events(kube_session, namespace)) == 2  # the same conditions today: nothing new


def _without(rules: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    """`rules` granting everything they grant except `verb` on `resource`."""
    kept = []
    for rule in rules:
        if resource not in rule["resources"] or verb not in rule["verbs"]:
            kept.append(rule)
            continue
        others = [r for r in rule["resources"] if r != resource]
        if others:
            kept.append({**rule, "resources": others})
        verbs = [v for v in rule["verbs"] if v != verb]
        if verbs:
            kept.append({**rule, "resources": [resource], "verbs": verbs})
    return kept


@pytest.mark.parametrize("dropped", ["secrets:list", "secrets:get", "pods:list", "statefulsets:list",
                                     "events:create"])
def test_each_rule_of_the_shipped_exporter_rbac_is_needed(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str, tmp_path: Path, dropped: str
) -> None:
    _fleet(make_vcluster, kube_session, namespace)
    docs = relocate(render("exporter"), namespace=namespace, prefix=namespace[-12:])
    resource, verb = dropped.split(":")
    role = of_kind(docs, "ClusterRole")
    role["rules"] = _without(role["rules"], resource, verb)
    account = of_kind(docs, "ServiceAccount")["metadata"]["name"]
    with applied_rbac(kube_session, docs):
        config = service_account_kubeconfig(kube_cluster, kube_session, namespace=namespace, name=account,
                                            path=tmp_path / "limited.kubeconfig")
        result = run_cli(config, namespace, "check", "-A", "-l", f"vcerts-test={namespace}", "-o",
                         "prometheus", "--emit-events")
    assert result.returncode == 16, result.stdout + result.stderr
    group = "apps" if resource == "statefulsets" else ""
    assert f"cannot {verb} {resource}{'.' + group if group else ''}" in result.stderr, result.stderr


def test_the_namespaced_variant_reads_its_namespace_with_a_role_only(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str, tmp_path: Path
) -> None:
    _fleet(make_vcluster, kube_session, namespace)
    docs = relocate(render("exporter-namespaced"), namespace=namespace, prefix=namespace[-12:])
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"Role", "RoleBinding"} and "ClusterRole" not in kinds
    [subject] = of_kind(docs, "RoleBinding")["subjects"]
    assert subject["namespace"] == namespace  # kustomize filled it in from the kustomization's namespace
    args = _with(_with(container_args(docs), "--listen", "127.0.0.1:0"), "--interval", "1s")
    assert "--all-namespaces" not in args
    account = of_kind(docs, "ServiceAccount")["metadata"]["name"]
    with applied_rbac(kube_session, docs):
        config = service_account_kubeconfig(kube_cluster, kube_session, namespace=namespace, name=account,
                                            path=tmp_path / "namespaced.kubeconfig")
        with exporter(config, namespace, args) as (_proc, log, url):
            _wait_ready(url)
            samples = _parse(_get(f"{url}/metrics")[1])
        assert {s["vcluster"] for s, _ in samples["vcerts_vcluster_status"]} == {"ok", "gone", "new", "old"}
        # -A under a Role: vCluster's rule, the context's namespace instead of every namespace
        listed = run_cli(config, namespace, "check", "-A", "-o", "prometheus")
        assert listed.returncode == 0, listed.stderr
        assert f'namespace="{namespace}"' in listed.stdout
    assert not any("Traceback" in line for line in log)


def test_check_prometheus_is_a_textfile_and_exits_0_once_read(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    _fleet(make_vcluster, kube_session, namespace)
    result = run_cli(kube_cluster.kubeconfig, namespace, "check", "-o", "prometheus")
    assert result.returncode == 0, result.stderr
    samples = _parse(result.stdout)
    assert samples["vcerts_vclusters"] == [({}, 4.0)]
    expired = {s["vcluster"] for s, v in samples["vcerts_vcluster_status"] if s["status"] == "expired" and v}
    assert expired == {"gone"}


def test_the_shipped_renewal_job_renews_what_is_due_under_its_own_rbac(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str, tmp_path: Path
) -> None:
    due, fresh = make_vcluster(name="due", expired_leaves=True), make_vcluster(name="fresh")
    _label(kube_session, [due, fresh], namespace)
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in (due, fresh)}
    docs = relocate(render("renewal"), namespace=namespace, prefix=namespace[-12:])
    cronjob = of_kind(docs, "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    args = container_args(docs)
    assert {"--all-namespaces", "--expiring-within", "--yes"} <= set(args)
    account = of_kind(docs, "ServiceAccount")["metadata"]["name"]
    with applied_rbac(kube_session, docs):
        config = service_account_kubeconfig(kube_cluster, kube_session, namespace=namespace, name=account,
                                            path=tmp_path / "renewal.kubeconfig")
        # the job's command line, limited to this test's vClusters
        result = run_cli(config, namespace, *args, "-l", f"vcerts-test={namespace}", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert snapshot(kube_session, namespace, "due") != before["due"]
    assert snapshot(kube_session, namespace, "fresh") == before["fresh"]
    assert "1 vCluster(s): 1 done; exit code 0" in result.stderr
