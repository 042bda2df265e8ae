"""kube/secrets.py against the real API: plain SecretObjects, resourceVersion-guarded replace and delete."""

from __future__ import annotations

import pytest

from kubectl_vcerts.errors import ConflictError, NotFoundError
from kubectl_vcerts.kube import secrets
from kubectl_vcerts.kube.client import KubeSession

pytestmark = pytest.mark.cluster

DATA = {"tls.crt": b"certificate bytes", "tls.key": b"\x00\x01 binary key"}


def test_create_get_and_list_return_decoded_plain_objects(kube_session: KubeSession) -> None:
    ns = kube_session.namespace
    created = secrets.create_secret(
        kube_session,
        namespace=ns,
        name="s1",
        data=DATA,
        labels={"app": "vcluster", "vcluster-name": "x"},
        annotations={"a": "b"},
        immutable=True,
    )
    assert (created.name, created.namespace, created.immutable, created.type) == ("s1", ns, True, "Opaque")
    got = secrets.get_secret(kube_session, namespace=ns, name="s1")
    assert got.data == DATA and got.labels["vcluster-name"] == "x" and got.annotations == {"a": "b"}
    assert got.uid == created.uid and got.resource_version
    assert "binary key" not in repr(got)
    secrets.create_secret(kube_session, namespace=ns, name="s2", data={}, labels={"app": "other"})
    assert [
        s.name for s in secrets.list_secrets(kube_session, label_selector="app=vcluster", namespace=ns)
    ] == ["s1"]
    everywhere = secrets.list_secrets(kube_session, label_selector="app=vcluster,vcluster-name=x")
    assert (ns, "s1") in {(s.namespace, s.name) for s in everywhere}


def test_create_refuses_an_existing_name(kube_session: KubeSession) -> None:
    ns = kube_session.namespace
    secrets.create_secret(kube_session, namespace=ns, name="s", data=DATA)
    with pytest.raises(ConflictError):
        secrets.create_secret(kube_session, namespace=ns, name="s", data={"other": b"x"})
    assert secrets.get_secret(kube_session, namespace=ns, name="s").data == DATA


def test_replace_is_guarded_by_the_resource_version(kube_session: KubeSession) -> None:
    ns = kube_session.namespace
    first = secrets.create_secret(kube_session, namespace=ns, name="s", data=DATA, labels={"keep": "me"})
    second = secrets.replace_secret(
        kube_session,
        namespace=ns,
        name="s",
        data={"new": b"1"},
        resource_version=first.resource_version,
        labels=first.labels,
    )
    assert second.data == {"new": b"1"} and second.labels == {"keep": "me"}
    with pytest.raises(ConflictError):  # written with a stale version: refused, nothing written
        secrets.replace_secret(
            kube_session,
            namespace=ns,
            name="s",
            data={"stale": b"2"},
            resource_version=first.resource_version,
        )
    assert secrets.get_secret(kube_session, namespace=ns, name="s").data == {"new": b"1"}


def test_delete_is_guarded_and_idempotent(kube_session: KubeSession) -> None:
    ns = kube_session.namespace
    first = secrets.create_secret(kube_session, namespace=ns, name="s", data=DATA)
    changed = secrets.replace_secret(
        kube_session, namespace=ns, name="s", data={}, resource_version=first.resource_version
    )
    with pytest.raises(ConflictError):
        secrets.delete_secret(kube_session, namespace=ns, name="s", resource_version=first.resource_version)
    assert (
        secrets.delete_secret(kube_session, namespace=ns, name="s", resource_version=changed.resource_version)
        is True
    )
    with pytest.raises(NotFoundError, match="secrets/s in namespace"):
        secrets.get_secret(kube_session, namespace=ns, name="s")
    assert secrets.delete_secret(kube_session, namespace=ns, name="s") is False
