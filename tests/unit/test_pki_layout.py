"""The catalogue of the 29 secret keys and the secret ↔ /data/pki file mapping."""

from __future__ import annotations

import pytest

from kubectl_vcerts.errors import InvalidPkiError
from kubectl_vcerts.pki import CATALOGUE, Kind, ca_fingerprint, from_files, inspect_pki, to_files
from tests.support.kubeadm_pki import FILE_TO_KEY, LEAF_ISSUER
from tests.support.pki_builder import NOW, cached_pki, first_cert


def test_the_catalogue_is_vclusters_cert_map() -> None:
    assert {(e.path, e.secret_key) for e in CATALOGUE} == set(FILE_TO_KEY.items())
    assert len(CATALOGUE) == 29


def test_the_catalogue_names_the_signing_ca_of_every_leaf_and_kubeconfig() -> None:
    issuers = {e.secret_key: e.issuer for e in CATALOGUE if e.kind in (Kind.LEAF, Kind.KUBECONFIG)}

    assert issuers == {key: f"{ca}.crt" for key, ca in LEAF_ISSUER.items()}


def test_file_names_are_base_names_and_paths_tell_etcd_apart() -> None:
    etcd_ca = next(e for e in CATALOGUE if e.secret_key == "etcd-ca.crt")

    assert (etcd_ca.filename, etcd_ca.path) == ("ca.crt", "etcd/ca.crt")


def test_every_certificate_entry_is_paired_with_its_key() -> None:
    by_key = {e.secret_key: e for e in CATALOGUE}

    for entry in CATALOGUE:
        if entry.kind in (Kind.CA, Kind.LEAF):
            assert by_key[str(entry.pair)].pair == entry.secret_key


def test_files_round_trip_to_the_same_secret_data() -> None:
    data = dict(cached_pki())

    files = to_files(data)

    assert files["etcd/server.crt"] == data["etcd-server.crt"]
    assert from_files(files) == data


def test_missing_server_and_client_ca_are_filled_from_the_first_ca_certificate() -> None:
    data = dict(cached_pki())
    data["ca.crt"] = data["ca.crt"] + data["etcd-ca.crt"]
    for key in ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key"):
        del data[key]

    files = to_files(data)

    assert first_cert(files["server-ca.crt"]) == first_cert(data["ca.crt"])
    assert files["server-ca.crt"].count(b"BEGIN CERTIFICATE") == 1
    assert files["client-ca.key"] == data["ca.key"]
    assert inspect_pki(from_files(files), now=NOW).findings == ()


def test_unknown_secret_keys_keep_their_name_and_unknown_files_are_ignored() -> None:
    assert to_files({"notes.txt": b"x"})["notes.txt"] == b"x"
    assert from_files({"pki.bak/1/ca.crt": b"x", "./ca.crt": b"y"}) == {"ca.crt": b"y"}


def test_ca_fingerprint_reads_the_first_certificate_and_refuses_a_missing_ca() -> None:
    data = dict(cached_pki())

    assert ca_fingerprint(data) == inspect_pki(data, now=NOW).ca_fingerprint
    with pytest.raises(InvalidPkiError, match=r"ca\.crt"):
        ca_fingerprint({})
    with pytest.raises(InvalidPkiError, match=r"ca\.crt"):
        ca_fingerprint({"ca.crt": b"junk"})


def test_every_public_name_of_the_pki_package_resolves_to_its_home_module() -> None:
    """pki/__init__ loads its submodules on first use (PEP 562); each name in __all__ must resolve,
    and an unknown one must still be an AttributeError."""
    import importlib

    import kubectl_vcerts.pki as pki

    for name in pki.__all__:
        value = getattr(pki, name)
        assert getattr(importlib.import_module(f"kubectl_vcerts.pki.{pki._HOME[name]}"), name) is value
    assert set(pki.__all__) == set(pki._HOME) <= set(dir(pki))
    with pytest.raises(AttributeError, match="no_such_name"):
        pki.no_such_name  # noqa: B018 - the attribute access is the test
