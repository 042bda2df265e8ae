"""core/v1 Events: the body both programs record (`kubectl get events` and `kubectl describe` show
them), and `KubeEventRecorder`, the `rotation.ports.EventRecorder` of `check --emit-events` and the
exporter.

Deduplication lives in the name: an Event named after its subject, condition and day is created once;
a second create is 409 AlreadyExists, which means "recorded already" — across runs, replicas and
machines, without reading anything first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import ConflictError
from kubectl_vcerts.kube.client import KubeSession
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


class KubeEventRecorder:
    """Implements rotation.ports.EventRecorder over a session."""

    def __init__(self, session: KubeSession, *, instance: str) -> None:
        self.session = session
        self.instance = instance

    def record_once(self, subject: EventSubject, *, name: str, reason: str, message: str,
                    now: datetime) -> bool:
        body = event_body(subject, reason=reason, message=message, warning=True, component=contract.TOOL_NAME,
                          instance=self.instance, now=now, name=name)
        try:
            api_call(Target("create", "events", name, subject.namespace),
                     lambda: self.session.core.create_namespaced_event(subject.namespace, body,
                                                                       **self.session.kwargs()))
        except ConflictError:
            return False  # recorded already (today, by us or another run)
        return True
