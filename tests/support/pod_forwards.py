"""The kubelet's port-forward to a control-plane pod's port 8443, played for the emulator.

kwok plays the kubelet of its fake nodes: it serves `pods/portforward` as its `PortForward` objects
(kwok.x-k8s.io/v1alpha1, named after the pod, `enableCRDs: [PortForward]` in the dev cluster) say.
`PodForwards.publish` points a pod's 8443 at the loopback port where the emulator's syncer for that pod
listens, so `kubectl port-forward pod/NAME 8443` — and the plugin's own fallback when vc-NAME names
`https://localhost:8443` — reach that pod's syncer, as on a real host cluster. The API server dials
the kubelet endpoint at the node's InternalIP, so the pod's node gets 127.0.0.1 (kwok's nodes here have
no address). A cluster without the CRD (created before it was enabled) gets no forwards; `available`
says so.
"""

from __future__ import annotations

import logging
from typing import Any

from kubectl_vcerts.kube.client import KubeSession

log = logging.getLogger("vcerts.emulator")

GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "portforwards"
SYNCER_PORT = 8443


class PodForwards:
    def __init__(self, session: KubeSession, namespace: str) -> None:
        self.session = session
        self.namespace = namespace
        self.available = True
        self._nodes: set[str] = set()

    def publish(self, pod: Any, port: int) -> None:
        """pods/portforward of `pod`:8443 goes to 127.0.0.1:`port` from now on."""
        if not self.available:
            return
        node = pod.spec.node_name
        if node and node not in self._nodes:
            self.session.core.patch_node_status(
                node, {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})
            self._nodes.add(node)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "PortForward",
            "metadata": {"name": pod.metadata.name, "namespace": self.namespace},
            "spec": {"forwards": [{"ports": [SYNCER_PORT],
                                   "target": {"address": "127.0.0.1", "port": port}}]},
        }
        custom = self.session.custom
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404:  # no such resource: the cluster predates the CRD
                self.available = False
                log.warning("no kwok PortForward CRD: pods/portforward to the syncers is not played")
                return
            if status != 409:
                raise
            custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                  pod.metadata.name, {"spec": body["spec"]})

    def withdraw(self, pod_name: str, port: int) -> None:
        """The syncer on `port` stopped: its pod's forward goes away, unless a newer pod of the same name
        (a StatefulSet replica started again) points it elsewhere already."""
        if not self.available:
            return
        custom = self.session.custom
        try:
            current = custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, pod_name)
            forwards = (current.get("spec") or {}).get("forwards") or [{}]
            if ((forwards[0].get("target") or {}).get("port")) != port:
                return
            custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, pod_name)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
