"""Discovery as vCluster's CLI does it (loft-sh/vcluster `pkg/cli/find/find.go`,
`chart/templates/config-secret.yaml`): version, config facts, status
algorithm, kubectl-printer pod status, find/list through an in-memory reader."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_vcerts.errors import ForbiddenError, NotFoundError
from kubectl_vcerts.kube.discovery import workload_record
from kubectl_vcerts.kube.pods import pod_state, pod_status
from kubectl_vcerts.pki.sans import SanConfig
from kubectl_vcerts.rotation.discovery import (
    assemble_vclusters,
    config_facts,
    find_vcluster,
    image_version,
    list_vclusters,
    uses_pvc,
    vcluster_status,
)
from kubectl_vcerts.rotation.model import BackingStore, Distro, Rollout, WorkloadKind
from tests.unit.read_fakes import FakeReader, config_secret, pod, workload

# ------------------------------------------------------------------------------------------ version


@pytest.mark.parametrize(
    ("image", "version"),
    [
        pytest.param("ghcr.io/loft-sh/vcluster-pro:0.36.1", "0.36.1", id="a plain tag is the version"),
        pytest.param("loftsh/vcluster:v0.19.0", "v0.19.0", id="a v-prefixed tag is kept as written"),
        pytest.param("registry:5000/loft-sh/vcluster:0.30.0", "", id="a registry port gives no version"),
        pytest.param("ghcr.io/loft-sh/vcluster:0.30.0@sha256:abc", "", id="tag plus digest gives no version"),
        pytest.param("ghcr.io/loft-sh/vcluster", "", id="no tag gives no version"),
        pytest.param(None, "", id="no syncer container gives no version"),
    ],
)
def test_version_is_the_syncer_tag_only_when_the_image_splits_in_two(image: str | None, version: str) -> None:
    assert image_version(image) == version


# ------------------------------------------------------------------------------------------ config
K3S_OLD = """
controlPlane:
  distro:
    k8s: {enabled: true}
    k3s: {enabled: true}
    k0s: {enabled: true}
"""
K0S_OVER_K8S = """
controlPlane:
  distro:
    k8s: {enabled: true}
    k0s: {enabled: true}
"""
DEPLOYED_ETCD_PRIVATE = """
controlPlane:
  distro: {k8s: {enabled: true}}
  backingStore:
    etcd: {deploy: {enabled: true}, embedded: {enabled: false}}
    database: {embedded: {enabled: false}}
privateNodes: {enabled: true}
"""


@pytest.mark.parametrize(
    ("yaml_text", "annotations", "distro", "store", "private"),
    [
        pytest.param(
            K3S_OLD,
            {},
            Distro.K3S,
            BackingStore.EMBEDDED_DATABASE,
            False,
            id="k3s wins over k0s and k8s as in the old Config.Distro",
        ),
        pytest.param(
            K0S_OVER_K8S, {}, Distro.K0S, BackingStore.EMBEDDED_DATABASE, False, id="k0s wins over k8s"
        ),
        pytest.param(
            "controlPlane: {}\n",
            {},
            Distro.K8S,
            BackingStore.EMBEDDED_DATABASE,
            False,
            id="no distro enabled defaults to k8s",
        ),
        pytest.param(
            DEPLOYED_ETCD_PRIVATE,
            {},
            Distro.K8S,
            BackingStore.DEPLOYED_ETCD,
            True,
            id="deployed etcd and private nodes are read from the values",
        ),
        pytest.param(
            "controlPlane: {backingStore: {etcd: {embedded: {enabled: true}}}}\n",
            {},
            Distro.K8S,
            BackingStore.EMBEDDED_ETCD,
            False,
            id="embedded etcd is read from the values",
        ),
        pytest.param(
            "controlPlane: {}\n",
            {"vcluster.loft.sh/store": "external-database"},
            Distro.K8S,
            BackingStore.EXTERNAL_DATABASE,
            False,
            id="the store annotation is used when the values say nothing",
        ),
        pytest.param(
            ": not yaml: [",
            {},
            Distro.UNKNOWN,
            BackingStore.EMBEDDED_DATABASE,
            False,
            id="an unreadable config.yaml gives an unknown distro",
        ),
    ],
)
def test_config_facts_come_from_vc_config(
    yaml_text: str, annotations: dict[str, str], distro: Distro, store: BackingStore, private: bool
) -> None:
    facts = config_facts(config_secret(yaml_text=yaml_text, annotations=annotations))
    assert (facts.distro, facts.backing_store, facts.private_nodes) == (distro, store, private)


def test_a_missing_config_secret_gives_an_unknown_distro() -> None:
    assert config_facts(None).distro is Distro.UNKNOWN


# ------------------------------------------------------------------------------------------ persistence


def _workload_json(kind: str, *, claim: bool, volume: dict[str, Any] | None, mount: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-pro:0.36.1"}
    if mount:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    spec: dict[str, Any] = {
        "replicas": 2,
        "template": {"spec": {"containers": [container], "volumes": [volume] if volume else []}},
    }
    if claim:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    return {
        "metadata": {"name": "vc", "namespace": "a", "labels": {"app": "vcluster", "release": "vc"}},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("kind", "claim", "volume", "mount", "expected"),
    [
        pytest.param(WorkloadKind.STATEFULSET, True, None, True, True, id="a data claim template is a PVC"),
        pytest.param(
            WorkloadKind.DEPLOYMENT,
            False,
            {"name": "data", "persistentVolumeClaim": {"claimName": "x"}},
            True,
            True,
            id="a data volume backed by a claim is a PVC",
        ),
        pytest.param(
            WorkloadKind.DEPLOYMENT,
            False,
            {"name": "data", "emptyDir": {}},
            True,
            False,
            id="an emptyDir data volume is not",
        ),
        pytest.param(
            WorkloadKind.STATEFULSET, True, None, False, False, id="a claim the syncer does not mount is not"
        ),
    ],
)
def test_persistence_follows_vclusters_uses_pvc(
    kind: WorkloadKind, claim: bool, volume: dict[str, Any] | None, mount: bool, expected: bool
) -> None:
    record = workload_record(kind, _workload_json(kind.value, claim=claim, volume=volume, mount=mount))
    assert uses_pvc(record) is expected
    assert record.replicas == 2


# ------------------------------------------------------------------------------------------ status


@pytest.mark.parametrize(
    ("annotations", "labels", "config_annotations", "pods", "replicas", "status"),
    [
        pytest.param(
            {"loft.sh/paused": "true"},
            {},
            {},
            [pod("vc-0")],
            1,
            "Paused",
            id="the paused annotation wins over running pods",
        ),
        pytest.param(
            {}, {"loft.sh/sleep-mode": "true"}, {}, [], 0, "Paused", id="the sleep-mode label is Paused"
        ),
        pytest.param(
            {},
            {},
            {"sleepmode.loft.sh/sleep-type": "sleep"},
            [],
            1,
            "Sleeping (workloads only)",
            id="a sleep type on vc-config is Sleeping",
        ),
        pytest.param(
            {},
            {},
            {"sleepmode.loft.sh/sleep-type": ""},
            [pod("vc-0")],
            1,
            "Sleeping (workloads only)",
            id="an empty sleep type counts: vCluster checks that the annotation is present",
        ),
        pytest.param(
            {"loft.sh/restoring": "true"},
            {},
            {},
            [],
            0,
            "ScaledDown",
            id="an interrupted vcluster certs rotate looks ScaledDown, not Paused",
        ),
        pytest.param(
            {},
            {},
            {},
            [pod("vc-0"), pod("vc-1", "CrashLoopBackOff", ready=False)],
            2,
            "CrashLoopBackOff",
            id="the last listed pod wins when it crash-loops",
        ),
        pytest.param(
            {},
            {},
            {},
            [pod("vc-0", "CrashLoopBackOff", ready=False), pod("vc-1")],
            2,
            "Running",
            id="the last listed pod wins when it runs",
        ),
        pytest.param({}, {}, {}, [], 1, "", id="no pods with replicas wanted is empty"),
    ],
)
def test_status_follows_vclusters_algorithm(
    annotations: dict[str, str],
    labels: dict[str, str],
    config_annotations: dict[str, str],
    pods: list[Any],
    replicas: int,
    status: str,
) -> None:
    record = workload(annotations=annotations, labels=labels, replicas=replicas)
    config = config_secret(annotations=config_annotations)
    assert vcluster_status(record, config, pods) == status


# ------------------------------------------------------------------------------------------ pod printer


def _pod(
    *,
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_specs: int = 0,
    reason: str | None = None,
    deleted: bool = False,
    conditions: dict[str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": containers or [],
        "conditions": [{"type": t, "status": s} for t, s in (conditions or {}).items()],
    }
    if init is not None:
        status["initContainerStatuses"] = init
    if reason:
        status["reason"] = reason
    meta: dict[str, Any] = {"name": "p", "uid": "u"}
    if deleted:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"initContainers": [{"name": f"i{n}"} for n in range(init_specs)]},
        "status": status,
    }


RUNNING = {"name": "syncer", "ready": True, "state": {"running": {}}}


@pytest.mark.parametrize(
    ("pod_json", "status"),
    [
        pytest.param(
            _pod(containers=[RUNNING], conditions={"Ready": "True"}), "Running", id="running and ready"
        ),
        pytest.param(
            _pod(containers=[{"name": "syncer", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            "CrashLoopBackOff",
            id="a waiting reason replaces the phase",
        ),
        pytest.param(
            _pod(
                phase="Pending",
                containers=[{"name": "s", "state": {"waiting": {"reason": "ContainerCreating"}}}],
            ),
            "ContainerCreating",
            id="containers being created",
        ),
        pytest.param(
            _pod(containers=[{"name": "s", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]),
            "Signal:9",
            id="a signal without reason",
        ),
        pytest.param(
            _pod(containers=[{"name": "s", "state": {"terminated": {"exitCode": 2}}}]),
            "ExitCode:2",
            id="an exit code without reason",
        ),
        pytest.param(
            _pod(
                containers=[
                    {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                    {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                ]
            ),
            "ImagePullBackOff",
            id="the first container's reason wins (printer walks backwards)",
        ),
        pytest.param(
            _pod(
                containers=[{"name": "a", "state": {"terminated": {"reason": "Completed"}}}, RUNNING],
                conditions={"Ready": "True"},
            ),
            "Running",
            id="completed next to a running container is Running",
        ),
        pytest.param(
            _pod(containers=[{"name": "a", "state": {"terminated": {"reason": "Completed"}}}, RUNNING]),
            "Running",
            id="completed next to a running container is Running without the Ready condition too",
        ),
        pytest.param(
            _pod(phase="Running", containers=[RUNNING], conditions={"Ready": "True"},
                 init=[{"name": "i0", "started": True, "state": {"running": {}}}], init_specs=1),
            "Init:0/1",
            id="a running native sidecar is Init:0/1 (vCluster's copy predates sidecars)",
        ),
        pytest.param(
            _pod(phase="Succeeded", deleted=True), "Terminating", id="a deleted finished pod is Terminating",
        ),
        pytest.param(
            _pod(
                phase="Pending",
                init=[{"name": "i0", "state": {"waiting": {"reason": "PodInitializing"}}}],
                init_specs=2,
            ),
            "Init:0/2",
            id="an init container still starting",
        ),
        pytest.param(
            _pod(
                phase="Pending",
                init=[{"name": "i0", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
                init_specs=1,
            ),
            "Init:CrashLoopBackOff",
            id="a crash-looping init container",
        ),
        pytest.param(
            _pod(
                phase="Pending", init=[{"name": "i0", "state": {"terminated": {"exitCode": 1}}}], init_specs=1
            ),
            "Init:ExitCode:1",
            id="a failed init container without reason",
        ),
        pytest.param(
            _pod(
                phase="Pending",
                init=[{"name": "i0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                init_specs=1,
            ),
            "Init:Error",
            id="a failed init container with reason",
        ),
        pytest.param(
            _pod(containers=[RUNNING], deleted=True), "Terminating", id="a deleted pod is Terminating"
        ),
        pytest.param(
            _pod(containers=[RUNNING], deleted=True, reason="NodeLost"),
            "Unknown",
            id="a deleted pod on a lost node is Unknown",
        ),
        pytest.param(_pod(phase="Failed", reason="Evicted"), "Evicted", id="a pod reason replaces the phase"),
    ],
)
def test_pod_status_is_vclusters_get_pod_status(pod_json: dict[str, Any], status: str) -> None:
    assert pod_status(pod_json) == status


# ------------------------------------------------------------------------------------------ find / list


def _reader() -> FakeReader:
    reader = FakeReader(
        workloads=[
            workload("vc", "a"),
            workload(
                "vc", "b", kind=WorkloadKind.DEPLOYMENT, pvc=False, image="registry:5000/vcluster:0.30.0"
            ),
            workload("vc", "c"),
            workload("other", "a", replicas=0),
        ],
        secrets=[config_secret("vc", "a", yaml_text=DEPLOYED_ETCD_PRIVATE)],
    )
    reader.add_pod("a", "vc", pod("vc-0"))
    reader.add_pod("a", "vc", pod("vc-etcd-0"), app="vcluster-etcd")
    reader.add_pod("b", "vc", pod("vc-abc", "CrashLoopBackOff", ready=False))
    return reader


def test_find_fills_every_field_from_the_objects_of_that_vcluster() -> None:
    vc = find_vcluster(_reader(), name="vc", namespace="a")
    assert (vc.name, vc.namespace, vc.kind, vc.version, vc.status) == (
        "vc",
        "a",
        WorkloadKind.STATEFULSET,
        "0.36.1",
        "Running",
    )
    assert (vc.distro, vc.backing_store, vc.private_nodes, vc.persistence) == (
        Distro.K8S,
        BackingStore.DEPLOYED_ETCD,
        True,
        True,
    )
    assert [p.name for p in vc.pods] == ["vc-0"]
    assert [p.name for p in vc.etcd_pods] == ["vc-etcd-0"]
    assert vc.is_running


def test_find_reports_a_crash_looping_deployment_without_config() -> None:
    vc = find_vcluster(_reader(), name="vc", namespace="b")
    assert (vc.kind, vc.version, vc.status, vc.is_running, vc.persistence, vc.distro) == (
        WorkloadKind.DEPLOYMENT,
        "",
        "CrashLoopBackOff",
        False,
        False,
        Distro.UNKNOWN,
    )


def test_not_found_names_the_namespaces_that_have_one() -> None:
    with pytest.raises(NotFoundError) as caught:
        find_vcluster(_reader(), name="vc", namespace="z")
    assert caught.value.message == "vcluster vc not found in namespace z; found in: a, b, c"
    assert "-n" in caught.value.hint


def test_not_found_without_permission_to_look_elsewhere_says_only_not_found() -> None:
    reader = _reader()
    reader.forbid_all_namespaces.add("list_workloads")
    with pytest.raises(NotFoundError) as caught:
        find_vcluster(reader, name="vc", namespace="z")
    assert caught.value.message == "vcluster vc not found in namespace z"


def test_list_all_namespaces_uses_a_fixed_number_of_list_calls() -> None:
    reader = _reader()
    found = list_vclusters(reader, namespace=None)
    assert sorted(vc.ref for vc in found) == ["a/other", "a/vc", "b/vc", "c/vc"]
    assert next(vc for vc in found if vc.ref == "a/other").status == "ScaledDown"
    assert reader.calls == {"list_workloads": 1, "list_secrets": 1, "list_pods": 2}


def test_list_all_namespaces_falls_back_to_the_context_namespace_when_forbidden() -> None:
    reader = _reader()
    reader.namespace = "c"
    reader.forbid_all_namespaces.add("list_workloads")
    assert [vc.ref for vc in list_vclusters(reader, namespace=None)] == ["c/vc"]


def test_forbidden_in_a_named_namespace_is_not_hidden() -> None:
    reader = _reader()
    reader.forbid.add("list_workloads")
    with pytest.raises(ForbiddenError):
        list_vclusters(reader, namespace="a")


def test_workloads_without_a_release_label_do_not_count() -> None:
    records = [workload("vc", "a", release=""), workload("vc2", "a")]
    assert [vc.name for vc in assemble_vclusters(records, configs=[], pods=[])] == ["vc2"]


SAN_VALUES = """
networking:
  advanced:
    clusterDomain: corp.internal
controlPlane:
  proxy:
    extraSANs: [vc.example.com, 10.1.2.3]
"""


def _san_reader(yaml_text: str) -> FakeReader:
    reader = FakeReader(workloads=[workload("vc", "a")],
                        secrets=[config_secret("vc", "a", yaml_text=yaml_text)],
                        services={("a", "vc"): {"vcluster.loft.sh/service-cidr": "172.20.0.0/16"}})
    reader.add_pod("a", "vc", pod("vc-0"))
    return reader


def test_the_san_inputs_come_from_vc_config_and_the_services_cidr_only_when_planning() -> None:
    planned = find_vcluster(_san_reader(SAN_VALUES), name="vc", namespace="a", for_rotation=True)
    assert planned.san_config == SanConfig(name="vc", namespace="a", service_cidr="172.20.0.0/16",
                                           cluster_domain="corp.internal",
                                           extra_sans=("vc.example.com", "10.1.2.3"))
    checked = find_vcluster(_san_reader(SAN_VALUES), name="vc", namespace="a")
    assert checked.san_config is not None and checked.san_config.service_cidr is None


@pytest.mark.parametrize(
    ("yaml_text", "cidr"),
    [
        pytest.param("serviceCIDR: 10.100.0.0/16\n", "10.100.0.0/16",
                     id="the legacy top-level serviceCIDR wins"),
        pytest.param("privateNodes:\n  enabled: true\n", "10.96.0.0/12",
                     id="private nodes default to 10.96.0.0/12"),
        pytest.param("privateNodes:\n  enabled: true\nnetworking:\n  serviceCIDR: 10.50.0.0/16\n",
                     "10.50.0.0/16", id="private nodes take networking.serviceCIDR"),
    ],
)
def test_the_service_cidr_follows_vclusters_rule(yaml_text: str, cidr: str) -> None:
    vc = find_vcluster(_san_reader(yaml_text), name="vc", namespace="a", for_rotation=True)
    assert vc.san_config is not None and vc.san_config.service_cidr == cidr


def test_a_standalone_control_plane_has_no_san_inputs() -> None:
    text = "controlPlane:\n  standalone:\n    enabled: true\n"
    assert find_vcluster(_san_reader(text), name="vc", namespace="a", for_rotation=True).san_config is None


@pytest.mark.parametrize(
    ("volumes", "ephemeral"),
    [
        pytest.param([{"name": "data", "emptyDir": {}}], True, id="the chart's data emptyDir"),
        pytest.param([{"name": "data", "persistentVolumeClaim": {"claimName": "data-vc-0"}}], False,
                     id="a claim template's volume"),
        pytest.param([{"name": "tmp", "emptyDir": {}}], False, id="other emptyDirs hold no state"),
        pytest.param([], False, id="no volumes"),
    ],
)
def test_a_pod_keeps_its_state_on_an_emptydir_when_its_data_volume_is_one(
    volumes: list[dict[str, Any]], ephemeral: bool
) -> None:
    listed = {"metadata": {"name": "vc-0", "uid": "u"}, "spec": {"volumes": volumes},
              "status": {"phase": "Running"}}
    assert pod_state(listed).ephemeral is ephemeral


# ------------------------------------------------------------------------------------------ rollout
@pytest.mark.parametrize(
    ("kind", "spec", "status", "expected"),
    [
        pytest.param(WorkloadKind.STATEFULSET, {}, {}, Rollout(), id="API defaults: RollingUpdate"),
        pytest.param(WorkloadKind.STATEFULSET, {"updateStrategy": {"type": "OnDelete"}},
                     {"updateRevision": "vc-7d9", "currentRevision": "vc-5c4"},
                     Rollout(strategy="OnDelete", update_revision="vc-7d9"), id="OnDelete StatefulSet"),
        pytest.param(WorkloadKind.DEPLOYMENT,
                     {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                      "paused": True},
                     {}, Rollout(paused=True), id="paused Deployment"),
        pytest.param(WorkloadKind.DEPLOYMENT, {"strategy": {"type": "Recreate"}}, {},
                     Rollout(strategy="Recreate"), id="Recreate Deployment"),
        pytest.param(WorkloadKind.STATEFULSET, {"paused": True}, {}, Rollout(),
                     id="paused means nothing to a StatefulSet"),
    ],
)
def test_the_rollout_rules_of_a_workload_are_read_with_the_api_defaults(
    kind: WorkloadKind, spec: dict[str, Any], status: dict[str, Any], expected: Rollout
) -> None:
    obj = _workload_json(kind.value, claim=False, volume=None, mount=True)
    obj["spec"].update(spec)
    obj["status"] = status
    assert workload_record(kind, obj).rollout == expected


def test_a_pod_records_the_statefulset_revision_it_was_made_from() -> None:
    labelled = {"metadata": {"name": "vc-0", "labels": {"controller-revision-hash": "vc-7d9"}}}
    assert pod_state(labelled).revision == "vc-7d9"
    assert pod_state({"metadata": {"name": "vc-abc"}}).revision == ""


def test_planning_reads_the_etcd_statefulsets_rollout_only_where_deployed_etcd_runs() -> None:
    reader = _reader()
    reader.rollouts[("a", "vc-etcd")] = Rollout(strategy="OnDelete", update_revision="e2")
    found = find_vcluster(reader, name="vc", namespace="a", for_rotation=True)
    assert found.etcd_rollout == Rollout("OnDelete", False, "e2")
    assert find_vcluster(reader, name="vc", namespace="b", for_rotation=True).etcd_rollout is None
    assert find_vcluster(reader, name="vc", namespace="a").etcd_rollout is None, "check needs no rollout"
    assert reader.calls["read_rollout"] == 1


def _started(pod_json: dict[str, Any]) -> str | None:
    when = pod_state(pod_json).started
    return when.strftime("%H:%M:%S") if when else None


@pytest.mark.parametrize(
    ("statuses", "started"),
    [
        pytest.param([{"name": "syncer", "state": {"running": {"startedAt": "2026-12-04T10:05:00Z"}}}],
                     "10:05:00", id="the syncer container restarted by the kubelet: its start counts"),
        pytest.param([{"name": "syncer", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}], None,
                     id="crash-looping: runs no PKI, its next start reads the secret"),
        pytest.param([{"name": "other", "state": {"running": {"startedAt": "2026-12-04T10:07:00Z"}}}],
                     "10:00:00", id="no syncer container status: the pod's start"),
        pytest.param([], "10:00:00", id="no container status yet: the pod's start"),
        pytest.param([{"name": "syncer", "state": {"running": {}}}], "10:00:00",
                     id="running without a start time: the pod's start"),
    ],
)
def test_the_pki_was_read_when_the_syncer_container_last_started(
    statuses: list[dict[str, Any]], started: str | None
) -> None:
    pod_json = {"metadata": {"name": "vc-0", "creationTimestamp": "2026-12-04T09:59:00Z"},
                "status": {"startTime": "2026-12-04T10:00:00Z", "containerStatuses": statuses}}
    assert _started(pod_json) == started
