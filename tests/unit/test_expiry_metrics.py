"""Expiry metrics (cli/prometheus.py, read back with the reference parser) and expiry Events
(rotation/expiry_events.py): values, one-hot statuses, names, deduplication, no key material."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from kubectl_vcerts.cli.prometheus import render
from kubectl_vcerts.exposition import labels
from kubectl_vcerts.pki import inspect_pki
from kubectl_vcerts.rotation.check import CheckSummary, SummaryRow
from kubectl_vcerts.rotation.expiry_events import (
    EXPIRED,
    EXPIRING,
    INVALID,
    event_name,
    expiry_events,
    record_expiry_events,
)
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from kubectl_vcerts.rotation.ports import EventSubject
from tests.support.pki_builder import Options, cached_pki

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)


def _vcluster(name: str, kind: WorkloadKind = WorkloadKind.STATEFULSET) -> VCluster:
    return VCluster(name=name, namespace="team-a", kind=kind, version="0.33.0", status="Running", replicas=1,
                    persistence=True, workload_name=name, workload_uid=f"uid-{name}")


def _row(name: str, *, leaf_days: int | None, data: dict[str, bytes] | None = None,
         kind: WorkloadKind = WorkloadKind.STATEFULSET) -> SummaryRow:
    if leaf_days is None and data is None:
        return SummaryRow(_vcluster(name, kind), f"{name}-certs", None)
    if data is None:
        assert leaf_days is not None
        data = dict(cached_pki(Options(name=name, now=NOW - timedelta(days=365 - leaf_days))))
    return SummaryRow(_vcluster(name, kind), f"{name}-certs", inspect_pki(data, now=NOW, warn_within=WINDOW))


def _summary(*rows: SummaryRow) -> CheckSummary:
    return CheckSummary(rows=rows, checked_at=NOW, warn_within=WINDOW, namespace="team-a")


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {name: [(dict(s.labels), s.value) for s in family.samples] for name, family in families.items()}


def test_the_metrics_parse_and_say_when_each_certificate_ends() -> None:
    ok, soon = _row("ok", leaf_days=200), _row("soon", leaf_days=10)
    text = render(_summary(ok, soon), seconds=0.25)
    samples = _samples(text)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["vcerts_certificate_expiry_timestamp_seconds"] == "gauge"
    expiry = {(s["vcluster"], s["certificate"]): v
              for s, v in samples["vcerts_certificate_expiry_timestamp_seconds"]}
    assert ok.pki is not None
    apiserver = next(c for c in ok.pki.certificates if c.secret_key == "apiserver.crt")
    assert expiry[("ok", "apiserver.crt")] == int(apiserver.not_after.timestamp())
    assert ("soon", "ca.crt") in expiry and ("soon", "admin.conf") in expiry
    issuers = {s["issuer"] for s, _ in samples["vcerts_certificate_expiry_timestamp_seconds"]}
    assert issuers and "" not in issuers
    earliest = {s["vcluster"]: v for s, v in samples["vcerts_vcluster_earliest_expiry_timestamp_seconds"]}
    assert earliest["soon"] == min(v for (vc, _), v in expiry.items() if vc == "soon")
    assert earliest["soon"] - NOW.timestamp() < 11 * 86400
    names = ("vcerts_scrape_success", "vcerts_scrape_duration_seconds", "vcerts_vclusters")
    scrape = {name: samples[name][0][1] for name in names}
    assert scrape == {"vcerts_scrape_success": 1.0, "vcerts_scrape_duration_seconds": 0.25,
                      "vcerts_vclusters": 2.0}
    assert "PRIVATE KEY" not in text and "BEGIN" not in text


def test_each_certificate_has_its_status_and_each_vcluster_one_hot_statuses() -> None:
    text = render(_summary(_row("ok", leaf_days=200), _row("soon", leaf_days=10), _row("gone", leaf_days=-2),
                           _row("missing", leaf_days=None)), seconds=0.1)
    samples = _samples(text)
    per_cert: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for labels_, value in samples["vcerts_certificate_status"]:
        key = (labels_["vcluster"], labels_["certificate"])
        per_cert.setdefault(key, []).append((labels_["status"], value))
    assert all(states == [(states[0][0], 1.0)] for states in per_cert.values())  # one series, value 1
    current = {key: next(s for s, v in states if v == 1.0) for key, states in per_cert.items()}
    assert current[("ok", "apiserver.crt")] == "ok"
    assert current[("soon", "apiserver.crt")] == "expiring"
    assert current[("gone", "apiserver.crt")] == "expired"
    assert current[("ok", "ca.crt")] == "ok"
    worst = {(s["vcluster"], s["status"]): v for s, v in samples["vcerts_vcluster_status"]}
    assert worst[("missing", "invalid")] == 1.0 and worst[("gone", "expired")] == 1.0
    assert worst[("ok", "ok")] == 1.0 and worst[("ok", "invalid")] == 0.0
    assert "missing" not in {s["vcluster"] for s, _ in samples["vcerts_certificate_expiry_timestamp_seconds"]}
    findings = {s["vcluster"]: v for s, v in samples["vcerts_vcluster_findings"]}
    assert findings["missing"] == 1.0 and findings["ok"] == 0.0


def test_a_corrupt_entry_makes_the_vcluster_invalid() -> None:
    data = dict(cached_pki(Options(name="bad", now=NOW - timedelta(days=100))))
    data["apiserver.crt"] = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    samples = _samples(render(_summary(_row("bad", leaf_days=None, data=data)), seconds=0.1))
    worst = {s["status"]: v for s, v in samples["vcerts_vcluster_status"]}
    assert worst["invalid"] == 1.0
    assert {s["vcluster"]: v for s, v in samples["vcerts_vcluster_findings"]}["bad"] >= 1.0


def test_label_values_are_escaped_as_the_parser_reads_them() -> None:
    odd = 'a "quoted" back\\slash\nnewline'
    text = f"# TYPE m gauge\nm{labels([('issuer', odd)])} 1\n"
    [family] = text_string_to_metric_families(text)
    assert family.samples[0].labels["issuer"] == odd


# ------------------------------------------------------------------------------------------ Events
def test_each_condition_is_one_event_on_the_workload_per_day() -> None:
    ok, soon, gone = _row("ok", leaf_days=200), _row("soon", leaf_days=10), _row("gone", leaf_days=-2)
    missing = _row("missing", leaf_days=None, kind=WorkloadKind.DEPLOYMENT)
    assert expiry_events(ok, now=NOW) == []
    [expiring] = expiry_events(soon, now=NOW)
    assert expiring.reason == EXPIRING and expiring.name == "soon.vcerts-expiring-20261203"
    assert expiring.subject == EventSubject("apps/v1", "StatefulSet", "soon", "team-a", "uid-soon")
    assert "kubectl vcerts rotate soon -n team-a" in expiring.message and "apiserver.crt" in expiring.message
    reasons = [e.reason for e in expiry_events(gone, now=NOW)]
    assert EXPIRED in reasons and EXPIRING not in reasons
    [invalid] = expiry_events(missing, now=NOW)
    assert invalid.reason == INVALID and invalid.subject.kind == "Deployment"
    assert "missing-certs not found" in invalid.message
    tomorrow = expiry_events(soon, now=NOW + timedelta(days=1))[0]
    assert tomorrow.name == "soon.vcerts-expiring-20261204"
    for event in [expiring, invalid, *expiry_events(gone, now=NOW)]:
        assert "PRIVATE KEY" not in event.message and len(event.message) < 1000


def test_a_long_workload_name_still_gives_a_valid_event_name() -> None:
    subject = EventSubject("apps/v1", "StatefulSet", "x" * 250, "ns")
    name = event_name(subject, EXPIRING, "20261203")
    assert len(name) <= 253 and name.endswith(".vcerts-expiring-20261203")
    assert name != event_name(EventSubject("apps/v1", "StatefulSet", "x" * 249 + "y", "ns"), EXPIRING,
                              "20261203")


class _Recorder:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def record_once(self, subject: EventSubject, *, name: str, reason: str, message: str,
                    now: datetime) -> bool:
        if name in self.names:
            return False
        self.names[name] = reason
        return True


def test_recording_twice_on_the_same_day_creates_nothing_new() -> None:
    rows = [_row("soon", leaf_days=10), _row("gone", leaf_days=-2), _row("ok", leaf_days=200)]
    recorder = _Recorder()
    first = record_expiry_events(recorder, rows, now=NOW)
    assert first == len(recorder.names) >= 2
    assert record_expiry_events(recorder, rows, now=NOW + timedelta(hours=3)) == 0
    assert record_expiry_events(recorder, rows, now=NOW + timedelta(days=1)) == first
