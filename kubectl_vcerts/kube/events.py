"""core/v1 Events: the body both programs record (`kubectl get events` and `kubectl describe` show
them), and `EventRecorder`s of `check --emit-events` and the exporter: `KubeEventRecorder` over the
kubernetes client, `RestEventRecorder` over kube/rest.py (the exporter: no kubernetes import, half the
memory).

Deduplication lives in the name: an Event named after its subject, condition and day is created once;
a second create is 409 AlreadyExists, which means "recorded already" — across runs, replicas and
machines, without reading anything first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import ConflictError
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.rest import RestClient
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.ports import EventSubject


def event_body(subject: EventSubject, *, reason: str, message: str, warning: bool, component: str,
               instance: str, now: datetime, name: str | None = None) -> dict[str, Any]:
    """An Event about `subject`; `name` None lets the API server generate one."""
    when = timefmt.rfc3339(now)
    metadata: dict[str, Any] = {"namespace": subject.namespace}
    if name is None:
        metadata["generateName"] = f"{subject.name}."
    else:
        metadata["name"] = name
    return {
        "metadata": metadata,
        "involvedObject": {"apiVersion": subject.api_version, "kind": subject.kind, "name": subject.name,
                           "namespace": subject.namespace, "uid": subject.uid},
        "reason": reason,
        "message": message[:1000],
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance[:128],
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


class _Recorder(ABC):
    """Implements rotation.ports.EventRecorder with `_create` (one POST of an Event)."""

    def __init__(self, *, instance: str) -> None:
        self.instance = instance

    @abstractmethod
    def _create(self, namespace: str, body: dict[str, Any], target: Target) -> None: ...

    def record_once(self, subject: EventSubject, *, name: str, reason: str, message: str,
                    now: datetime) -> bool:
        body = event_body(subject, reason=reason, message=message, warning=True, component=contract.TOOL_NAME,
                          instance=self.instance, now=now, name=name)
        try:
            self._create(subject.namespace, body, Target("create", "events", name, subject.namespace))
        except ConflictError:
            return False  # recorded already (today, by us or another run)
        return True


class KubeEventRecorder(_Recorder):
    """Events through the kubernetes client."""

    def __init__(self, session: KubeSession, *, instance: str) -> None:
        super().__init__(instance=instance)
        self.session = session

    def _create(self, namespace: str, body: dict[str, Any], target: Target) -> None:
        api_call(target, lambda: self.session.core.create_namespaced_event(namespace, body,
                                                                           **self.session.kwargs()))


class RestEventRecorder(_Recorder):
    """Events through kube/rest.py."""

    def __init__(self, client: RestClient, *, instance: str) -> None:
        super().__init__(instance=instance)
        self.client = client

    def _create(self, namespace: str, body: dict[str, Any], target: Target) -> None:
        self.client.post(f"/api/v1/namespaces/{namespace}/events", body, target)
