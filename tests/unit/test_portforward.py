"""Port-forward fallback, pure parts: which control-plane pod is chosen, and how a refused websocket
handshake's text yields its HTTP status (kubectl_vcerts.kube.portforward)."""

from __future__ import annotations

import pytest

from kubectl_vcerts.errors import UnreachableError
from kubectl_vcerts.kube.portforward import PodCandidate, choose_pod, forbidden_hint, handshake_status

JAN1 = "2026-01-01T00:00:00+00:00"


def pod(name: str, *, ready: bool = True, terminating: bool = False, created: str = JAN1) -> PodCandidate:
    return PodCandidate(name=name, ready=ready, terminating=terminating, created=created)


@pytest.mark.parametrize(
    ("pods", "chosen"),
    [
        pytest.param([pod("vc-0")], "vc-0", id="the only Ready pod is chosen"),
        pytest.param(
            [pod("vc-0", created=JAN1), pod("vc-1", created="2026-01-02T00:00:00+00:00")],
            "vc-1",
            id="the newest Ready pod wins",
        ),
        pytest.param(
            [pod("vc-0"), pod("vc-1", ready=False, created="2026-02-01T00:00:00+00:00")],
            "vc-0",
            id="a newer pod that is not Ready is passed over",
        ),
        pytest.param(
            [pod("vc-0"), pod("vc-1", terminating=True, created="2026-02-01T00:00:00+00:00")],
            "vc-0",
            id="a terminating pod is passed over even when Ready",
        ),
        pytest.param(
            [pod("vc-b"), pod("vc-a")], "vc-b", id="equal ages are broken by name, deterministically"
        ),
    ],
)
def test_the_port_forward_targets_a_ready_control_plane_pod(pods: list[PodCandidate], chosen: str) -> None:
    assert choose_pod(pods, namespace="ns", vcluster="vc") == chosen


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param([], id="no pod at all"),
        pytest.param([pod("vc-0", ready=False), pod("vc-1", terminating=True)], id="no usable pod"),
    ],
)
def test_no_usable_pod_is_unreachable_and_names_vcluster_server(pods: list[PodCandidate]) -> None:
    with pytest.raises(UnreachableError, match=r"no Ready control-plane pod of vCluster ns/vc") as caught:
        choose_pod(pods, namespace="ns", vcluster="vc")
    assert "--vcluster-server" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        pytest.param("Handshake status 403 Forbidden -+-+- {'audit-id': 'x'} -+-+- b'{}'", 403,
                     id="a refused handshake carries its status"),
        pytest.param("Handshake status 404 Not Found -+-+- {}", 404, id="a missing pod gives 404"),
        pytest.param("[Errno 111] Connection refused", None, id="a network error has no status"),
    ],
)
def test_the_handshake_reason_gives_the_http_status(reason: str, status: int | None) -> None:
    assert handshake_status(reason) == status


def test_the_forbidden_hint_names_the_verb_resource_and_namespace() -> None:
    assert "`create pods/portforward` in namespace ns" in forbidden_hint("ns")
