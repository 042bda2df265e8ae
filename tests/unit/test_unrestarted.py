"""Which pods still run the certificates from before kubectl vcerts last wrote NAME-certs
(rotation/unrestarted.py), and that the workflow records the write time every write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kubectl_vcerts import contract
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.unrestarted import unrestarted
from tests.unit.rotation_fakes import make_vcluster

WRITTEN = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
ANNOTATIONS = {contract.WRITTEN_AT_ANNOTATION: "2026-11-29T04:00:00Z"}


def started(vc: VCluster, **when: datetime | None) -> VCluster:
    pods = tuple(replace(p, started=when.get(p.name.replace("-", "_"))) for p in vc.pods)
    etcd = tuple(replace(p, started=when.get(p.name.replace("-", "_"))) for p in vc.etcd_pods)
    return replace(vc, pods=pods, etcd_pods=etcd)


def test_control_plane_pods_that_started_before_the_write_are_named_but_not_etcd() -> None:
    vc = started(make_vcluster(replicas=2, etcd=1), vc_0=WRITTEN - timedelta(hours=1),
                 vc_1=WRITTEN + timedelta(seconds=5), vc_etcd_0=WRITTEN - timedelta(days=3))
    found = unrestarted(vc, ANNOTATIONS)
    assert found is not None and found.pods == ("vc-0",), "etcd reads the live secret volume"
    message = found.message(vc)
    assert "vc-certs was written by kubectl vcerts at 2026-11-29 04:00:00 UTC" in message
    assert "vcluster certs rotate" in message


def test_nothing_is_pending_when_every_pod_started_after_the_write_or_nothing_was_written() -> None:
    vc = started(make_vcluster(), vc_0=WRITTEN)
    assert unrestarted(vc, ANNOTATIONS) is None
    assert unrestarted(started(make_vcluster(), vc_0=WRITTEN - timedelta(days=1)), {}) is None
    assert unrestarted(started(make_vcluster(), vc_0=None), ANNOTATIONS) is None
    assert unrestarted(vc, {contract.WRITTEN_AT_ANNOTATION: "yesterday"}) is None
