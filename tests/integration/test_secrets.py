"""kube/secrets.py against the real API: a Secret read back as a plain, decoded SecretObject."""

from __future__ import annotations

import base64

import pytest

from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.kube import secrets
from kubectl_vcerts.kube.client import KubeSession

pytestmark = pytest.mark.cluster

DATA = {"tls.crt": b"certificate bytes", "tls.key": b"\x00\x01 binary key"}


def test_get_returns_a_decoded_plain_object_whose_repr_hides_the_data(kube_session: KubeSession) -> None:
    ns = kube_session.namespace
    created = kube_session.core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "s1",
                "labels": {"app": "vcluster", "vcluster-name": "x"},
                "annotations": {"a": "b"},
            },
            "data": {k: base64.b64encode(v).decode() for k, v in DATA.items()},
            "immutable": True,
        },
    )

    got = secrets.get_secret(kube_session, namespace=ns, name="s1")

    assert got.data == DATA and got.labels["vcluster-name"] == "x" and got.annotations == {"a": "b"}
    assert (got.name, got.namespace, got.immutable, got.type) == ("s1", ns, True, "Opaque")
    assert got.uid == created.metadata.uid and got.resource_version
    assert "binary key" not in repr(got)


def test_a_missing_secret_is_not_found(kube_session: KubeSession) -> None:
    with pytest.raises(NotFoundError, match="secrets/absent in namespace"):
        secrets.get_secret(kube_session, namespace=kube_session.namespace, name="absent")
