"""`KubeReader`: the read-side port (`rotation.ports.VClusterReader`) implemented against a session.

Lists StatefulSets and Deployments labelled app=vcluster, pods (with kubectl's printer status, the one
vCluster's status algorithm uses) and Secrets. Reads ask for raw JSON and reduce it to plain records
here: faster than the client's model deserialiser on large lists, and nothing client-specific leaks
into rotation/. The all-namespaces → context-namespace fallback on Forbidden lives in
rotation/discovery.py (it is vCluster's rule, not an API detail).

Imports kubernetes only inside functions (through the session).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ForbiddenError, NotFoundError
from kubectl_vcerts.kube import secrets
from kubectl_vcerts.kube.client import KubeSession, KubeTarget
from kubectl_vcerts.kube.pods import pod_state
from kubectl_vcerts.kube.rest import RestClient, open_rest
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.model import Rollout, WorkloadKind
from kubectl_vcerts.rotation.records import ListedPod, SecretObject, WorkloadRecord


def _json(response: Any) -> Any:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


# ----------------------------------------------------------------------------------- workloads
def workload_record(kind: WorkloadKind, obj: Mapping[str, Any]) -> WorkloadRecord:
    """Reduce a StatefulSet or Deployment (API JSON) to what discovery reads."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    syncer = next((c for c in pod_spec.get("containers") or () if c.get("name") == contract.SYNCER_CONTAINER),
                  None)
    replicas = spec.get("replicas")
    return WorkloadRecord(
        kind=kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        replicas=replicas if isinstance(replicas, int) else 1,
        syncer_image=None if syncer is None else syncer.get("image"),
        syncer_mounts=tuple(m.get("name", "") for m in (syncer or {}).get("volumeMounts") or ()),
        claim_templates=tuple(((t.get("metadata") or {}).get("name", ""))
                              for t in spec.get("volumeClaimTemplates") or ()),
        pvc_volumes=tuple(v.get("name", "") for v in pod_spec.get("volumes") or ()
                          if v.get("persistentVolumeClaim") is not None),
        rollout=rollout_of(kind, obj),
        uid=str(meta.get("uid") or ""),
    )


def rollout_of(kind: WorkloadKind, obj: Mapping[str, Any]) -> Rollout:
    """How the workload's controller replaces pods (the API's defaults where a field is unset)."""
    spec = obj.get("spec") or {}
    strategy = spec.get("updateStrategy" if kind is WorkloadKind.STATEFULSET else "strategy") or {}
    return Rollout(
        strategy=str(strategy.get("type") or "RollingUpdate"),
        paused=kind is WorkloadKind.DEPLOYMENT and spec.get("paused") is True,
        update_revision=str((obj.get("status") or {}).get("updateRevision") or ""),
    )


@dataclass(frozen=True)
class Read:
    """One GET the reader sends: a list (`name` None, filtered by `selector`) or one object."""

    api: str  # "/api/v1" or "/apis/apps/v1"
    plural: str  # "pods", "secrets", "statefulsets", "deployments"
    namespace: str | None  # None: all namespaces
    name: str | None = None
    selector: str = ""
    limit: int = 0  # a list in chunks of this many (0: all at once)
    cont: str = ""  # the `continue` token of the previous chunk

    def path(self) -> str:
        where = f"/namespaces/{self.namespace}" if self.namespace is not None else ""
        return f"{self.api}{where}/{self.plural}" + (f"/{self.name}" if self.name else "")

    def query(self) -> dict[str, str]:
        query = {"labelSelector": self.selector} if self.selector else {}
        if self.limit:
            query["limit"] = str(self.limit)
        if self.cont:
            query["continue"] = self.cont
        return query


# kubectl's --chunk-size default: a list of thousands of objects is read 500 at a time, so that neither
# the API server nor we hold all of it as one JSON document. Secrets 100 at a time: a NAME-certs is
# ~50 KB of JSON, and 500 of them decoded at once were the exporter's peak memory (scripts/bench_exporter).
CHUNK_SIZE = 500
SECRET_CHUNK_SIZE = 100


class JsonReader:
    """Implements `rotation.ports.VClusterReader` over a GET-JSON function; one request per list."""

    def __init__(self, get: Callable[[Read, Target], Any], namespace: str) -> None:
        self._get = get
        self._namespace = namespace

    @property
    def default_namespace(self) -> str:
        return self._namespace

    def close(self) -> None:
        """Release connections this reader opened itself (a session passed in stays open)."""

    def _pages(self, base: str, plural: str, resource: str, namespace: str | None,
               selector: str, chunk: int = CHUNK_SIZE) -> Iterator[list[dict[str, Any]]]:
        """The items of one list, chunk by chunk (kubectl's `limit`/`continue` paging)."""
        target = Target("list", resource, None, namespace)
        cont = ""
        while True:
            body = self._get(Read(base, plural, namespace, selector=selector, limit=chunk, cont=cont), target)
            yield list(body.get("items") or ())
            cont = str((body.get("metadata") or {}).get("continue") or "")
            if not cont:
                return

    def _list(self, base: str, plural: str, resource: str, namespace: str | None,
              selector: str) -> list[dict[str, Any]]:
        return [item for page in self._pages(base, plural, resource, namespace, selector) for item in page]

    def list_workloads(self, *, namespace: str | None, release: str | None = None,
                       selector: str = "") -> list[WorkloadRecord]:
        query = contract.VCLUSTER_SELECTOR
        if release is not None:
            query += f",{contract.RELEASE_LABEL}={release}"
        if selector:
            query += f",{selector}"  # a label selector's requirements are ANDed, comma-separated
        statefulsets = self._list("/apis/apps/v1", "statefulsets", "statefulsets.apps", namespace, query)
        deployments = self._list("/apis/apps/v1", "deployments", "deployments.apps", namespace, query)
        return ([workload_record(WorkloadKind.STATEFULSET, o) for o in statefulsets]
                + [workload_record(WorkloadKind.DEPLOYMENT, o) for o in deployments])

    def list_pods(self, *, namespace: str | None, selector: str) -> list[ListedPod]:
        items = self._list("/api/v1", "pods", "pods", namespace, selector)
        return [
            ListedPod(
                namespace=(item.get("metadata") or {}).get("namespace", ""),
                release=((item.get("metadata") or {}).get("labels") or {}).get(contract.RELEASE_LABEL, ""),
                state=pod_state(item),
            )
            for item in items
        ]

    def read_secret(self, *, namespace: str, name: str) -> SecretObject | None:
        try:
            body = self._get(Read("/api/v1", "secrets", namespace, name=name),
                             Target("get", "secrets", name, namespace))
        except NotFoundError:
            return None
        return secrets.secret_from_json(body)

    def list_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> list[SecretObject]:
        return list(self.iter_secrets(namespace=namespace, selector=selector, keep=keep))

    def iter_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> Iterator[SecretObject]:
        # chunk by chunk, decoding only what `keep` wants: the JSON of one chunk at a time is held
        pages = self._pages("/api/v1", "secrets", "secrets", namespace, selector, chunk=SECRET_CHUNK_SIZE)
        for page in pages:
            for item in page:
                if keep is None or keep(str((item.get("metadata") or {}).get("name", ""))):
                    yield secrets.secret_from_json(item)

    def read_rollout(self, *, namespace: str, name: str) -> Rollout | None:
        try:
            body = self._get(Read("/apis/apps/v1", "statefulsets", namespace, name=name),
                             Target("get", "statefulsets.apps", name, namespace))
        except NotFoundError:
            return None
        return rollout_of(WorkloadKind.STATEFULSET, body)

    def read_service_annotations(self, *, namespace: str, name: str) -> dict[str, str] | None:
        try:
            body = self._get(Read("/api/v1", "services", namespace, name=name),
                             Target("get", "services", name, namespace))
        except (NotFoundError, ForbiddenError):
            return None  # advisory only (the service CIDR for SANs): never a reason to fail
        return dict((body.get("metadata") or {}).get("annotations") or {})


# (api, plural) -> (API class attribute of the session, namespaced list, all-namespaces list, read)
_METHODS: dict[tuple[str, str], tuple[str, str, str, str | None]] = {
    ("/api/v1", "pods"): ("core", "list_namespaced_pod", "list_pod_for_all_namespaces", None),
    ("/api/v1", "services"): ("core", "list_namespaced_service", "list_service_for_all_namespaces",
                              "read_namespaced_service"),
    ("/api/v1", "secrets"): ("core", "list_namespaced_secret", "list_secret_for_all_namespaces",
                             "read_namespaced_secret"),
    ("/apis/apps/v1", "statefulsets"): ("apps", "list_namespaced_stateful_set",
                                        "list_stateful_set_for_all_namespaces",
                                        "read_namespaced_stateful_set"),
    ("/apis/apps/v1", "deployments"): ("apps", "list_namespaced_deployment",
                                       "list_deployment_for_all_namespaces", None),
}


def _kube_request(session: KubeSession, read: Read) -> Any:
    """Send `read` with the client's typed API method, asking for the raw response: the documented
    `_preload_content=False`, the same in every client release (the generated internals are not)."""
    api_name, namespaced, everywhere, read_one = _METHODS[(read.api, read.plural)]
    api = getattr(session, api_name)
    options: dict[str, Any] = {"_preload_content": False}
    if session.request_timeout:
        options["_request_timeout"] = session.request_timeout
    if read.name is not None:
        assert read_one is not None and read.namespace is not None
        return getattr(api, read_one)(read.name, read.namespace, **options)
    if read.selector:
        options["label_selector"] = read.selector
    if read.limit:
        options["limit"] = read.limit
    if read.cont:
        options["_continue"] = read.cont
    if read.namespace is None:
        return getattr(api, everywhere)(**options)
    return getattr(api, namespaced)(read.namespace, **options)


class KubeReader(JsonReader):
    """The reader over a `KubeSession` (the kubernetes client: any kubeconfig, in-cluster too)."""

    def __init__(self, session: KubeSession) -> None:
        self.session = session

        def get(read: Read, target: Target) -> Any:
            return api_call(target, lambda: _json(_kube_request(session, read)))

        super().__init__(get, session.namespace)


class RestReader(JsonReader):
    """The reader over `kube.rest.RestClient` (no kubernetes import: fast start for read-only commands)."""

    def __init__(self, client: RestClient) -> None:
        self.client = client
        super().__init__(lambda read, target: client.get(read.path(), target, read.query()), client.namespace)

    def close(self) -> None:
        self.client.close()


def open_reader(target: KubeTarget, session: Callable[[], KubeSession]) -> JsonReader:
    """The fastest reader that can honour `target`: the light REST client for plain kubeconfigs, else
    the kubernetes client through `session()` (exec plugins, auth providers, in-cluster)."""
    client = open_rest(target)
    return RestReader(client) if client is not None else KubeReader(session())


def server_version(session: KubeSession) -> str:
    """The API server's gitVersion (GET /version)."""
    from kubernetes import client as k8s

    info = api_call(Target("get", "version"),
                    lambda: k8s.VersionApi(session.api_client).get_code(**session.kwargs()))
    return str(info.git_version)
