"""Several kubeconfig files merged the way kubectl merges them (kube/kubeconfig.py, rotation/trust.py):
which files are read, which definition of a cluster, user or context wins, and which file a stale entry
is fixed in."""

from __future__ import annotations

import base64
import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts.kube.kubeconfig import kubeconfig_files
from kubectl_vcerts.pki import rotate_ca
from kubectl_vcerts.rotation import trust
from tests.unit.rotation_fakes import FakeClock, pki_data

HOME = Path("/home/u")


def chain(explicit: str | None, env: str | None, existing: set[str]) -> list[str]:
    found = kubeconfig_files(
        explicit, env, home=HOME, exists=lambda p: str(p) in existing, separator=":"
    )
    return [str(p) for p in found]


@pytest.mark.parametrize(
    ("explicit", "env", "existing", "expected"),
    [
        pytest.param("/x/only", "/a:/b", {"/a", "/b"}, ["/x/only"],
                     id="--kubeconfig is the only file, whatever KUBECONFIG says"),
        pytest.param(None, "/a::/missing:/b:/a", {"/a", "/b"}, ["/a", "/b"],
                     id="KUBECONFIG entries keep their order; empty, missing and repeated ones are skipped"),
        pytest.param(None, None, {"/home/u/.kube/config"}, ["/home/u/.kube/config"],
                     id="without KUBECONFIG kubectl reads ~/.kube/config"),
        pytest.param(None, "", set(), [],
                     id="without KUBECONFIG and without ~/.kube/config there is no file"),
        pytest.param(None, "/missing", {"/home/u/.kube/config"}, [],
                     id="a KUBECONFIG of missing files does not fall back to ~/.kube/config"),
    ],
)
def test_the_files_kubectl_reads(
    explicit: str | None, env: str | None, existing: set[str], expected: list[str]
) -> None:
    assert chain(explicit, env, existing) == expected


# -------------------------------------------------------------------------------------- documents
@cache
def pkis() -> tuple[dict[str, bytes], dict[str, bytes]]:
    old = dict(pki_data())
    return old, dict(rotate_ca(old, now=FakeClock().now()).data)


def old_ca() -> bytes:
    return pkis()[0]["ca.crt"]


def other_ca() -> bytes:
    return pkis()[0]["front-proxy-ca.crt"]


def old_admin() -> bytes:
    return trust.admin_client_cert(pkis()[0])[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def doc(
    clusters: dict[str, bytes] | None = None,
    users: dict[str, bytes] | None = None,
    contexts: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """clusters: name -> CA PEM; users: name -> client cert PEM; contexts: name -> (cluster, user)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": f"https://{n}:443", "certificate-authority-data": b64(ca)}}
            for n, ca in (clusters or {}).items()
        ],
        "users": [
            {"name": n, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(b"k")}}
            for n, cert in (users or {}).items()
        ],
        "contexts": [
            {"name": n, "context": {"cluster": c, "user": u}} for n, (c, u) in (contexts or {}).items()
        ],
    }


def stale(docs: list[dict[str, Any]]) -> list[tuple[str, int, int, int | None, bool]]:
    found = trust.contexts_trusting_merged(docs, trust.old_trust_anchors(pkis()[0]), old_admin())
    return [(c.name, c.context_file, c.cluster_file, c.user_file, c.uses_old_admin_cert) for c in found]


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        pytest.param(
            lambda: [doc({"vc": other_ca()}), doc({"vc": old_ca()}, {"u": b"x"}, {"ctx": ("vc", "u")})],
            [],
            id="the first file that defines a cluster wins; a later one trusting the old CA is ignored",
        ),
        pytest.param(
            lambda: [doc({"vc": old_ca()}), doc({"vc": other_ca()}, {"u": b"x"}, {"ctx": ("vc", "u")})],
            [("ctx", 1, 0, 1, False)],
            id="a context in the second file uses the cluster defined in the first file",
        ),
        pytest.param(
            lambda: [
                doc({"a": other_ca()}, contexts={"ctx": ("a", "u")}),
                doc({"b": old_ca()}, {"u": old_admin()}, {"ctx": ("b", "u")}),
            ],
            [],
            id="the first file that defines a context wins",
        ),
        pytest.param(
            lambda: [
                doc({"vc": old_ca()}, contexts={"ctx": ("vc", "admin")}),
                doc(users={"admin": old_admin()}),
                doc(users={"admin": b"not the admin"}),
            ],
            [("ctx", 0, 0, 1, True)],
            id="a user defined only in a later file is found there, and its first definition decides",
        ),
        pytest.param(
            lambda: [doc({"vc": old_ca()}, contexts={"ctx": ("vc", "nobody")})],
            [("ctx", 0, 0, None, False)],
            id="a context whose user is defined nowhere still trusts the old CA",
        ),
        pytest.param(
            lambda: [doc(contexts={"ctx": ("nowhere", "u")}), doc({"elsewhere": old_ca()})],
            [],
            id="a context whose cluster is defined nowhere trusts nothing",
        ),
    ],
)
def test_contexts_are_resolved_like_kubectl_across_files(
    docs: Any, expected: list[tuple[str, int, int, int | None, bool]]
) -> None:
    assert stale(docs()) == expected


def test_each_stale_entry_is_fixed_only_in_the_file_kubectl_reads_it_from() -> None:
    old, new = pkis()
    new_cert, new_key = trust.admin_client_cert(new)
    first = doc({"host": other_ca(), "vc-a": old_ca()}, {"admin": old_admin()}, {"a": ("vc-a", "admin")})
    second = doc(
        {"vc-b": old_ca(), "vc-a": old_ca()},  # this vc-a is shadowed by the first file's
        {"admin": old_admin(), "someone": b"x"},  # and so is this admin
        {"b": ("vc-b", "admin"), "c": ("vc-b", "someone")},
    )
    untouched = doc({"other": other_ca()}, {"x": b"x"}, {"o": ("other", "x")})
    docs = [first, second, untouched]
    before = copy.deepcopy(docs)
    found = trust.contexts_trusting_merged(docs, trust.old_trust_anchors(old), old_admin())
    assert [(c.name, c.cluster_file, c.user_file) for c in found] == [("a", 0, 0), ("b", 1, 0), ("c", 1, 1)]

    updated = trust.update_kubeconfigs(
        docs, found, new_ca=trust.kubeconfig_ca(new), new_admin_cert=new_cert, new_admin_key=new_key
    )
    assert set(updated) == {0, 1}  # the third file has nothing stale: not rewritten
    assert docs == before  # the inputs are left unchanged

    def cluster_ca(d: dict[str, Any], name: str) -> bytes:
        [body] = [c["cluster"] for c in d["clusters"] if c["name"] == name]
        return base64.b64decode(body["certificate-authority-data"])

    def user_cert(d: dict[str, Any], name: str) -> bytes:
        [body] = [u["user"] for u in d["users"] if u["name"] == name]
        return base64.b64decode(body["client-certificate-data"])

    assert cluster_ca(updated[0], "vc-a") == trust.kubeconfig_ca(new)
    assert cluster_ca(updated[0], "host") == other_ca()
    assert user_cert(updated[0], "admin") == new_cert
    assert cluster_ca(updated[1], "vc-b") == trust.kubeconfig_ca(new)
    assert cluster_ca(updated[1], "vc-a") == old_ca()  # shadowed: kubectl never reads it
    assert user_cert(updated[1], "admin") == old_admin()  # shadowed too
    assert user_cert(updated[1], "someone") == b"x"  # not the admin certificate: kept
    merged = [updated[0], updated[1], untouched]
    assert trust.contexts_trusting_merged(merged, trust.old_trust_anchors(old), old_admin()) == []
    now_trusted = trust.contexts_trusting_merged(merged, trust.old_trust_anchors(new), new_cert)
    assert [c.name for c in now_trusted] == ["a", "b", "c"]


def test_the_changes_of_a_ca_rotation_name_stale_contexts_and_update_them_only_when_asked() -> None:
    old, new = pkis()
    docs = [doc({"vc": old_ca(), "other": other_ca()}, {"admin": old_admin()},
                {"ctx": ("vc", "admin"), "fine": ("other", "admin")})]

    named = trust.kubeconfig_changes(docs, old, new, update=False)
    fixed = trust.kubeconfig_changes(docs, old, new, update=True)

    assert [c.name for c in named.stale] == [c.name for c in fixed.stale] == ["ctx"]
    assert named.updated == {}
    [(index, updated)] = fixed.updated.items()
    clusters = {c["name"]: c["cluster"]["certificate-authority-data"] for c in updated["clusters"]}
    assert index == 0
    assert clusters == {"vc": b64(trust.kubeconfig_ca(new)), "other": b64(other_ca())}
    assert docs[0]["clusters"][0]["cluster"]["certificate-authority-data"] == b64(old_ca())  # inputs kept
