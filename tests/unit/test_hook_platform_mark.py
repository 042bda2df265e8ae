"""PlatformMarkHook: finds the VirtualClusterInstance, refuses early, annotates after the CA change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ConflictError, NotFoundError, UsageError
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from kubectl_vcerts.rotation.platform_mark import PlatformMarkHook
from kubectl_vcerts.rotation.ports import CaChange
from kubectl_vcerts.rotation.recycle_record import Instance

AT = datetime(2026, 11, 29, 4, 30, 15, 123456, tzinfo=UTC)
FP = "sha256:" + "cd" * 32


class FakeGateway:
    def __init__(self) -> None:
        self.instances: dict[tuple[str, str], tuple[Instance, tuple[str, str]]] = {}
        self.writes: list[tuple[str, dict[str, str | None], bool]] = []
        self.fail_writes = False

    def add(self, namespace: str, name: str, *, host_ns: str, vcluster: str) -> None:
        self.instances[(namespace, name)] = (Instance(namespace, name, "u", "1"), (host_ns, vcluster))

    def read_instance(self, namespace: str, name: str) -> Instance:
        if (namespace, name) not in self.instances:
            raise NotFoundError(f"{namespace}/{name}")
        return self.instances[(namespace, name)][0]

    def find_instances(self, *, cluster_namespace: str, vcluster: str) -> list[Instance]:
        return [i for i, ref in self.instances.values() if ref == (cluster_namespace, vcluster)]

    def annotate_instance(self, instance: Instance, changes: Mapping[str, str | None], *,
                          dry_run: bool = False) -> Instance:
        if self.fail_writes:
            raise ConflictError("changed")
        self.writes.append((instance.key, dict(changes), dry_run))
        return replace(instance, annotations={k: v for k, v in changes.items() if v is not None})


def change(name: str = "vc", namespace: str = "team-a") -> CaChange:
    vc = VCluster(name=name, namespace=namespace, kind=WorkloadKind.STATEFULSET, version="0.36.1",
                  status="Running", replicas=1, persistence=True)
    return CaChange(vcluster=vc, operation="rotate-ca", old_ca_fingerprint=None, new_ca_fingerprint=FP,
                    new_data={}, at=AT)


def test_after_annotates_the_instance_found_by_cluster_ref() -> None:
    gw = FakeGateway()
    gw.add("p-default", "my-vc", host_ns="team-a", vcluster="vc")
    gw.add("p-default", "unrelated", host_ns="team-b", vcluster="vc")
    lines = PlatformMarkHook(gw, vci=None).after(change())
    assert gw.writes == [("p-default/my-vc", {contract.CA_ROTATED_ANNOTATION: "2026-11-29T04:30:15Z",
                                              contract.CA_FINGERPRINT_ANNOTATION: FP}, False)]
    assert "p-default/my-vc" in lines[0]


def test_preflight_proves_the_write_with_a_dry_run_and_changes_nothing() -> None:
    gw = FakeGateway()
    gw.add("p-default", "my-vc", host_ns="team-a", vcluster="vc")
    PlatformMarkHook(gw, vci="p-default/my-vc").preflight(change())
    assert [dry for _, _, dry in gw.writes] == [True]


@pytest.mark.parametrize(("vci", "error"), [("p-default/typo", NotFoundError), (None, NotFoundError)],
                         ids=["a mistyped --platform-vci refuses", "no matching instance refuses"])
def test_preflight_refuses_before_the_ca_changes(vci: str | None, error: type[Exception]) -> None:
    gw = FakeGateway()
    gw.add("p-default", "my-vc", host_ns="team-x", vcluster="other")
    with pytest.raises(error):
        PlatformMarkHook(gw, vci=vci).preflight(change())
    assert gw.writes == []


def test_two_matching_instances_must_be_chosen_between() -> None:
    gw = FakeGateway()
    gw.add("p-a", "one", host_ns="team-a", vcluster="vc")
    gw.add("p-b", "two", host_ns="team-a", vcluster="vc")
    with pytest.raises(UsageError, match="p-a/one, p-b/two") as info:
        PlatformMarkHook(gw, vci=None).preflight(change())
    assert "--platform-vci" in info.value.hint


def test_a_malformed_vci_reference_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        PlatformMarkHook(FakeGateway(), vci="no-slash")


def test_after_does_not_raise_but_says_how_to_finish_by_hand() -> None:
    gw = FakeGateway()
    gw.add("p-default", "my-vc", host_ns="team-a", vcluster="vc")
    gw.fail_writes = True
    lines = PlatformMarkHook(gw, vci="p-default/my-vc").after(change())
    assert "could not mark" in lines[0] and contract.CA_ROTATED_ANNOTATION in lines[1]


def test_describe_names_the_annotations() -> None:
    text = " ".join(PlatformMarkHook(FakeGateway(), vci="p-default/my-vc").describe(change()))
    assert "p-default/my-vc" in text and contract.CA_ROTATED_ANNOTATION in text and FP in text
