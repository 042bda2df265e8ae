"""`vc-NAME` as vCluster's leader writes it, played for the emulator (loft-sh/vcluster
`pkg/setup/controllers.go` WriteKubeConfigToSecret and CreateVClusterKubeConfigForExport,
`pkg/setup/controller_context.go` CreateVClusterKubeConfig, `pkg/util/kubeconfig/kubeconfig.go`
WriteKubeConfig, `pkg/setup/config/config.go` SetGlobalOwner):
  * the kubeconfig is the pod's admin kubeconfig with every cluster's server set to
    `https://localhost:<controlPlane.proxy.port>` (8443): the pod's own address, which answers on a
    user's machine only through a tunnel; `exportKubeConfig.server` replaces it (the cluster keeps only
    its CA data), `exportKubeConfig.insecure` drops the CA and skips verification, and
    `exportKubeConfig.context` renames the context, its cluster and its user;
  * the secret holds that kubeconfig (`config`) and, split out of its current context, the CA
    (`certificate-authority`), `client-certificate`, `client-key` and `token`;
  * CreateOrPatch: labels `app=vcluster`, `vcluster-name=NAME` only when it creates the secret; type,
    data and (with `experimental.syncSettings.setOwner`, the chart's default) an ownerReference to the
    Service NAME (controller: false) on every write;
  * only the leader writes it, once, some seconds after its controllers start, and again on error every
    10 s (`EXPORT_RETRY`) — the emulator decides when (see `tests.support.emulator`).
Not played: a ServiceAccount token in place of the certificates, additional secrets, standalone mode.
Test-support code: the data holds the admin key; nothing here prints or logs it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import yaml

from kubectl_vcerts.kube.client import KubeSession

DEFAULT_PROXY_PORT = 8443  # controlPlane.proxy.port
EXPORT_RETRY = 10.0  # seconds between attempts after a failed write (wait.PollUntilContextCancel)


def exported_server(values: Mapping[str, Any]) -> str:
    """The server vc-NAME names for these chart values."""
    export = values.get("exportKubeConfig") or {}
    if export.get("server"):
        return str(export["server"])
    proxy = (values.get("controlPlane") or {}).get("proxy") or {}
    return f"https://localhost:{int(proxy.get('port') or DEFAULT_PROXY_PORT)}"


def exported_kubeconfig(admin_conf: bytes, values: Mapping[str, Any]) -> dict[str, Any]:
    """CreateVClusterKubeConfigForExport of the pod's admin kubeconfig."""
    conf: dict[str, Any] = yaml.safe_load(admin_conf)
    export = values.get("exportKubeConfig") or {}
    server = exported_server(values)
    for entry in conf.get("clusters") or ():
        cluster = entry["cluster"]
        if export.get("server"):  # a new Cluster with only the server and the CA data
            cluster = {"server": server,
                       "certificate-authority-data": cluster.get("certificate-authority-data")}
        cluster["server"] = server
        if export.get("insecure"):
            cluster.pop("certificate-authority-data", None)
            cluster["insecure-skip-tls-verify"] = True
        entry["cluster"] = {k: v for k, v in cluster.items() if v is not None}
    context = str(export.get("context") or "")
    if context:
        conf["current-context"] = context
        for section in ("users", "clusters"):
            if conf.get(section):
                conf[section] = [{**conf[section][0], "name": context}]
        if conf.get("contexts"):
            first = conf["contexts"][0]
            conf["contexts"] = [{"name": context,
                                 "context": {**first["context"], "cluster": context, "user": context}}]
    return conf


def _current(conf: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(cluster, user) of the current context."""
    contexts = {c["name"]: c["context"] for c in conf.get("contexts") or ()}
    current: Mapping[str, Any] = (contexts.get(str(conf.get("current-context") or ""))
                                  or next(iter(contexts.values()), {}))
    clusters = {c["name"]: c["cluster"] for c in conf.get("clusters") or ()}
    users = {u["name"]: u.get("user") or {} for u in conf.get("users") or ()}
    return clusters.get(current.get("cluster", ""), {}), users.get(current.get("user", ""), {})


def secret_data(conf: Mapping[str, Any]) -> dict[str, bytes]:
    """The keys WriteKubeConfig stores: the kubeconfig and what its current context uses."""
    cluster, user = _current(conf)

    def decoded(value: Any) -> bytes:
        return base64.b64decode(value) if value else b""

    return {
        "config": yaml.safe_dump(dict(conf), sort_keys=False).encode(),
        "certificate-authority": decoded(cluster.get("certificate-authority-data")),
        "client-certificate": decoded(user.get("client-certificate-data")),
        "client-key": decoded(user.get("client-key-data")),
        "token": str(user.get("token") or "").encode(),
    }


def service_owner(
    session: KubeSession, namespace: str, name: str, values: Mapping[str, Any], **extra: Any
) -> list[dict[str, Any]]:
    """SetGlobalOwner: an ownerReference to the Service NAME when setOwner is on (the chart's default);
    vCluster fails its start-up when the Service is missing. `extra`: more fields (vc-NAME's carries
    `controller: false`; NAME-certs', made by EnsureCerts, none)."""
    sync_settings = (values.get("experimental") or {}).get("syncSettings") or {}
    if not sync_settings.get("setOwner", True):
        return []
    service = session.core.read_namespaced_service(name, namespace)
    return [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": service.metadata.uid, **extra}]


def write_kubeconfig_secret(session: KubeSession, namespace: str, name: str, admin_conf: bytes,
                            values: Mapping[str, Any]) -> None:
    """WriteKubeConfig: CreateOrPatch vc-NAME from the pod's admin kubeconfig."""
    data = {k: base64.b64encode(v).decode() for k, v in
            secret_data(exported_kubeconfig(admin_conf, values)).items()}
    owners = service_owner(session, namespace, name, values, controller=False)
    secret = f"vc-{name}"
    try:
        session.core.read_namespaced_secret(secret, namespace)
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise
        try:
            session.core.create_namespaced_secret(namespace, {
                "metadata": {"name": secret, "labels": {"app": "vcluster", "vcluster-name": name},
                             **({"ownerReferences": owners} if owners else {})},
                "type": "Opaque",
                "data": data,
            })
            return
        except Exception as create_exc:  # created in between: patch it, as CreateOrPatch's retry does
            if getattr(create_exc, "status", None) != 409:
                raise
    session.core.patch_namespaced_secret(secret, namespace, {
        "metadata": {"ownerReferences": owners} if owners else {}, "data": data,
    })
