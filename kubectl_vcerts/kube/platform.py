"""Gateway to the vCluster Platform cluster: VirtualClusterInstances, NodeClaims, Events, Leases.

`PlatformGateway` implements `rotation.recycle.RecyclePort`, `rotation.platform_mark.PlatformMarkPort`
and `rotation.ports.LeasePort`, and offers the list/watch the platform hook needs. Every request goes
through `translate.api_call`, so ApiException never leaves this module. Writes to an instance are
JSON merge patches that carry `metadata.resourceVersion`: the API server refuses them with 409 when
the instance changed (a guarded write, never a blind patch).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ApiError, ConflictError, NotFoundError, UnreachableError, VcertsError
from kubectl_vcerts.kube import leases
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.events import event_body
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.ports import EventSubject, LeaseRecord
from kubectl_vcerts.rotation.recycle_record import Claim, Instance

T = TypeVar("T")

GROUP = contract.MANAGEMENT_GROUP
VERSION = contract.MANAGEMENT_VERSION
VCI_RESOURCE = f"{contract.VCI_PLURAL}.{GROUP}"
CLAIM_RESOURCE = f"{contract.NODECLAIM_PLURAL}.{GROUP}"
CLAIM_PAGE = 250


class WatchExpiredError(ApiError):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    resource_version: str
    instance: Instance | None  # None for BOOKMARK


def instance_from(obj: Mapping[str, Any]) -> Instance:
    meta = obj.get("metadata") or {}
    return Instance(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        resource_version=meta.get("resourceVersion") or "",
        annotations=dict(meta.get("annotations") or {}),
        labels=dict(meta.get("labels") or {}),
    )


def claim_from(obj: Mapping[str, Any]) -> Claim:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    status = obj.get("status") or {}
    return Claim(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        spec=dict(spec) if isinstance(spec, dict) else {},
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(meta.get("finalizers") or ()),
        phase=str(status.get("phase") or ""),
    )


class PlatformGateway:
    """The Platform cluster, through one KubeSession. Thread-safe enough for the hook's workers
    (the Kubernetes ApiClient pools connections); counts its requests for metrics and benchmarks."""

    def __init__(self, session: KubeSession, *, identity: str = contract.PLATFORM_HOOK_NAME) -> None:
        self.session = session
        self.identity = identity
        self.calls = 0
        self.event_failures = 0
        self._lock = threading.Lock()

    def _call(self, target: Target, fn: Callable[[], T]) -> T:
        self._count()
        return api_call(target, fn)

    # --- VirtualClusterInstances -------------------------------------------------------------------

    def read_instance(self, namespace: str, name: str) -> Instance:
        obj = self._call(
            Target("get", VCI_RESOURCE, name, namespace),
            lambda: self.session.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, contract.VCI_PLURAL, name, **self.session.kwargs()))
        return instance_from(obj)

    def list_instances(self, *, namespace: str | None = None,
                       label_selector: str | None = None) -> tuple[list[Instance], str]:
        """All instances (in one namespace or all) and the list's resourceVersion, to watch from."""
        kwargs: dict[str, Any] = {**self.session.kwargs()}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if namespace:
            doc = self._call(Target("list", VCI_RESOURCE, namespace=namespace),
                             lambda: self.session.custom.list_namespaced_custom_object(
                                 GROUP, VERSION, namespace, contract.VCI_PLURAL, **kwargs))
        else:
            doc = self._call(Target("list", VCI_RESOURCE),
                             lambda: self.session.custom.list_cluster_custom_object(
                                 GROUP, VERSION, contract.VCI_PLURAL, **kwargs))
        items = [instance_from(item) for item in doc.get("items") or []]
        return items, str((doc.get("metadata") or {}).get("resourceVersion") or "")

    def list_instance_objects(self, *, namespace: str | None = None) -> list[dict[str, Any]]:
        """Raw instance objects (spec included), for matching by spec.clusterRef."""
        if namespace:
            doc = self._call(Target("list", VCI_RESOURCE, namespace=namespace),
                             lambda: self.session.custom.list_namespaced_custom_object(
                                 GROUP, VERSION, namespace, contract.VCI_PLURAL, **self.session.kwargs()))
        else:
            doc = self._call(Target("list", VCI_RESOURCE),
                             lambda: self.session.custom.list_cluster_custom_object(
                                 GROUP, VERSION, contract.VCI_PLURAL, **self.session.kwargs()))
        return list(doc.get("items") or [])

    def find_instances(self, *, cluster_namespace: str, vcluster: str) -> list[Instance]:
        """Instances in every namespace whose spec.clusterRef names this host namespace and vCluster."""
        found = []
        for obj in self.list_instance_objects():
            ref = (obj.get("spec") or {}).get("clusterRef") or {}
            if ref.get("namespace") == cluster_namespace and ref.get("virtualCluster") == vcluster:
                found.append(instance_from(obj))
        return found

    def annotate_instance(self, instance: Instance, changes: Mapping[str, str | None], *,
                          dry_run: bool = False) -> Instance:
        body = {"metadata": {"resourceVersion": instance.resource_version, "annotations": dict(changes)}}
        # A JSON merge patch: the Content-Type patch_namespaced_custom_object sends in every client
        # release (its `_content_type` option exists only from kubernetes 36 on).
        kwargs: dict[str, Any] = dict(self.session.kwargs())
        if dry_run:
            kwargs["dry_run"] = "All"
        obj = self._call(
            Target("patch", VCI_RESOURCE, instance.name, instance.namespace),
            lambda: self.session.custom.patch_namespaced_custom_object(
                GROUP, VERSION, instance.namespace, contract.VCI_PLURAL, instance.name, body, **kwargs))
        return instance_from(obj)

    def watch_instances(self, *, namespace: str | None, label_selector: str | None, resource_version: str,
                        timeout_seconds: int) -> Iterator[WatchEvent]:
        """Stream changes after `resource_version` for up to `timeout_seconds`.

        Raises WatchExpiredError on 410 Gone (list again) and UnreachableError when the connection
        breaks (watch again from the last resourceVersion seen).
        """
        from kubernetes.watch.watch import iter_resp_lines
        from urllib3.exceptions import HTTPError as Urllib3Error

        kwargs: dict[str, Any] = {
            "watch": True, "resource_version": resource_version, "timeout_seconds": timeout_seconds,
            "allow_watch_bookmarks": True, "_preload_content": False,
            # A read timeout past the server's own end of the watch detects a dead connection.
            "_request_timeout": (5, timeout_seconds + 15),
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        target = Target("watch", VCI_RESOURCE, namespace=namespace)
        if namespace:
            resp = self._call(target, lambda: self.session.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, contract.VCI_PLURAL, **kwargs))
        else:
            resp = self._call(target, lambda: self.session.custom.list_cluster_custom_object(
                GROUP, VERSION, contract.VCI_PLURAL, **kwargs))
        try:
            for line in iter_resp_lines(resp):
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(f"watch of {VCI_RESOURCE} expired: {obj.get('message', '')}")
                    raise ApiError(f"watch of {VCI_RESOURCE} failed: "
                                   f"HTTP {obj.get('code')} {obj.get('message')}")
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                if kind == "BOOKMARK":
                    yield WatchEvent("BOOKMARK", rv, None)
                else:
                    yield WatchEvent(str(kind), rv, instance_from(obj))
        except (Urllib3Error, ConnectionError, TimeoutError, ValueError) as exc:
            raise UnreachableError(f"watch of {VCI_RESOURCE} broke: {type(exc).__name__}") from exc
        finally:
            resp.close()
            resp.release_conn()

    # --- NodeClaims -----------------------------------------------------------------------------

    def list_all_claims(self, *, namespace: str | None = None,
                        keep: Callable[[Claim], bool] = lambda _claim: True) -> list[Claim]:
        """Claims (one namespace or all) that `keep` accepts, listed in pages of CLAIM_PAGE so that a
        namespace with thousands of claims never sits in memory whole, once per worker."""
        kept: list[Claim] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": CLAIM_PAGE, **self.session.kwargs()}
            if token:
                kwargs["_continue"] = token
            if namespace:
                doc = self._call(Target("list", CLAIM_RESOURCE, namespace=namespace),
                                 partial(self.session.custom.list_namespaced_custom_object,
                                         GROUP, VERSION, namespace, contract.NODECLAIM_PLURAL, **kwargs))
            else:
                doc = self._call(Target("list", CLAIM_RESOURCE),
                                 partial(self.session.custom.list_cluster_custom_object,
                                         GROUP, VERSION, contract.NODECLAIM_PLURAL, **kwargs))
            kept += [c for c in (claim_from(item) for item in doc.get("items") or []) if keep(c)]
            token = (doc.get("metadata") or {}).get("continue") or None
            if token is None:
                return kept

    def list_claims(self, namespace: str, vcluster: str) -> list[Claim]:
        # spec.vClusterRef is not a selectable field of the Platform's API: filter here.
        return self.list_all_claims(namespace=namespace, keep=lambda c: c.vcluster == vcluster)

    def delete_claim(self, namespace: str, name: str, *, uid: str) -> None:
        body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        try:
            self._call(Target("delete", CLAIM_RESOURCE, name, namespace),
                       lambda: self.session.custom.delete_namespaced_custom_object(
                           GROUP, VERSION, namespace, contract.NODECLAIM_PLURAL, name, body=body,
                           **self.session.kwargs()))
        except NotFoundError:
            return
        except ConflictError:
            # The uid precondition failed: a different claim now has this name; ours is gone.
            return

    def create_claim(self, namespace: str, *, name: str | None, generate_name: str | None,
                     spec: Mapping[str, Any], labels: Mapping[str, str],
                     annotations: Mapping[str, str]) -> Claim:
        meta: dict[str, Any] = {"labels": dict(labels), "annotations": dict(annotations)}
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = generate_name
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": contract.NODECLAIM_KIND, "metadata": meta,
                "spec": dict(spec)}
        obj = self._call(Target("create", CLAIM_RESOURCE, name or generate_name, namespace),
                         lambda: self.session.custom.create_namespaced_custom_object(
                             GROUP, VERSION, namespace, contract.NODECLAIM_PLURAL, body,
                             **self.session.kwargs()))
        return claim_from(obj)

    # --- Events -------------------------------------------------------------------------------

    def record_event(self, instance: Instance, *, reason: str, message: str, warning: bool = False) -> None:
        """Create a core/v1 Event on the instance. Best effort: a failed Event never fails the work."""
        subject = EventSubject(api_version=f"{GROUP}/{VERSION}", kind=contract.VCI_KIND, name=instance.name,
                               namespace=instance.namespace, uid=instance.uid)
        body = event_body(subject, reason=reason, message=message, warning=warning,
                          component=contract.PLATFORM_HOOK_NAME, instance=self.identity,
                          now=datetime.now(UTC))
        try:
            self._call(Target("create", "events", namespace=instance.namespace),
                       lambda: self.session.core.create_namespaced_event(instance.namespace, body,
                                                                         **self.session.kwargs()))
        except VcertsError:
            with self._lock:
                self.event_failures += 1

    # --- Leases (leader election; kube.leases does the requests) -------------------------------

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._count()
        return leases.read_lease(self.session, namespace=namespace, name=name)

    def create_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     now: datetime) -> LeaseRecord:
        self._count()
        return leases.create_lease(self.session, namespace=namespace, name=name, holder=holder,
                                   duration_seconds=duration_seconds, now=now)

    def update_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     acquired: datetime, renewed: datetime, resource_version: str) -> LeaseRecord:
        self._count()
        return leases.update_lease(self.session, namespace=namespace, name=name, holder=holder,
                                   duration_seconds=duration_seconds, acquired=acquired, renewed=renewed,
                                   resource_version=resource_version)


def connect_platform(*, kubeconfig: str | None = None, context: str | None = None,
                     request_timeout: float | None = None,
                     identity: str = contract.PLATFORM_HOOK_NAME) -> PlatformGateway:
    """A gateway to the Platform cluster from --platform-kubeconfig / --platform-context."""
    from kubectl_vcerts.kube.client import KubeTarget, connect

    session = connect(KubeTarget(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout))
    return PlatformGateway(session, identity=identity)
