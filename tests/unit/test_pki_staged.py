"""The staged CA rotation's phases, proved by real TLS handshakes (OpenSSL, over a socket pair): a server
playing vCluster's syncer (leaf + first certificate of server-ca.crt, client certificates checked
against all of client-ca.crt) and clients holding kubeconfigs made before and during the rotation."""

from __future__ import annotations

import base64
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubectl_vcerts.errors import InvalidPkiError, UnsupportedError
from kubectl_vcerts.pki import Status, inspect_pki, is_split, load_ca_material
from kubectl_vcerts.pki.layout import ca_fingerprint
from kubectl_vcerts.pki.parse import fingerprint, load_certificates, signed_by
from kubectl_vcerts.pki.staged import (
    Stage,
    bundle_holds_only_old,
    next_key,
    stage_finish,
    stage_switch,
    stage_trust,
    staged_state,
)
from tests.support.pki_builder import NOW, Options, cached_pki, cert_pem, make_ca, new_key
from tests.support.syncer_proxy import serving_certificate

FAMILIES = ("ca", "front-proxy-ca", "etcd-ca")


class Phases(tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]]):
    """The PKI after trust, switch and finish; shown by name only (the data holds private keys)."""

    def __repr__(self) -> str:
        return "Phases(trust, switch, finish)"


def _phases(data: Mapping[str, bytes]) -> Phases:
    trust = stage_trust(data, now=NOW).data
    switch = stage_switch(trust, now=NOW + timedelta(hours=1)).data
    return Phases((trust, switch, stage_finish(switch).data))


@pytest.fixture(scope="module")
def phases() -> Phases:
    return _phases(cached_pki())


class Client:
    """What a kubeconfig holds: trusted CA data and a client certificate with its key."""

    def __init__(self, ca_pem: bytes, cert_pem_: bytes, key_pem_: bytes) -> None:
        self.ca_pem, self.cert_pem, self.key_pem = ca_pem, cert_pem_, key_pem_

    @classmethod
    def of(cls, conf: bytes) -> Client:
        doc = yaml.safe_load(conf)
        cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
        return cls(*(base64.b64decode(v) for v in (cluster["certificate-authority-data"],
                                                   user["client-certificate-data"], user["client-key-data"])))


def _files(directory: Path, **parts: bytes) -> dict[str, str]:
    out = {}
    for label, data in parts.items():
        path = directory / label
        path.write_bytes(data)
        out[label] = str(path)
    return out


def handshake(data: Mapping[str, bytes], client: Client) -> str:
    """'ok', or which side refused: the syncer's serving rules on one end, the client on the other."""
    chain, key = serving_certificate(data["server-ca.crt"], data["server-ca.key"], now=NOW)
    with tempfile.TemporaryDirectory() as tmp:
        f = _files(Path(tmp), chain=chain, key=key, pool=data["client-ca.crt"], cert=client.cert_pem,
                   ckey=client.key_pem)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(f["chain"], f["key"])
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(cafile=f["pool"])
        client_ctx = ssl.create_default_context(cadata=client.ca_pem.decode())
        client_ctx.load_cert_chain(f["cert"], f["ckey"])
        a, b = socket.socketpair()
        results: dict[str, str] = {}

        def serve() -> None:
            try:
                with server_ctx.wrap_socket(a, server_side=True) as tls:
                    tls.sendall(b"ok")
                results["server"] = "ok"
            except (ssl.SSLError, OSError) as exc:
                results["server"] = f"server refused: {exc}"

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with client_ctx.wrap_socket(b, server_hostname="localhost") as tls:
                tls.recv(2)
            result = "ok"
        except (ssl.SSLError, OSError) as exc:
            result = f"client refused: {exc}"
        thread.join(10)
        a.close()
        b.close()
    if result == "ok" and results.get("server") != "ok":
        return results.get("server", "server did not answer")
    return result


def test_old_kubeconfigs_work_until_finish_and_trust_phase_ones_after_it(phases: Phases) -> None:
    trust, switch, finish = phases
    before = Client.of(cached_pki()["admin.conf"])
    from_trust = Client.of(trust["admin.conf"])  # handed out in trust: both CAs, the new CA's certificate
    from_switch = Client.of(switch["admin.conf"])
    for phase in (trust, switch):
        assert handshake(phase, before) == "ok"
        assert handshake(phase, from_trust) == "ok"
    assert handshake(switch, from_switch) == "ok"
    assert handshake(finish, from_trust) == "ok"
    assert handshake(finish, from_switch) == "ok"
    refused = handshake(finish, before)
    assert refused.startswith("client refused") and "certificate verify failed" in refused, refused
    # the server's trust alone is not what refuses the old kubeconfig: its client certificate is too
    old_cert = Client(finish["ca.crt"], before.cert_pem, before.key_pem)
    assert handshake(finish, old_cert).startswith(("server refused", "client refused"))
    assert handshake(switch, old_cert) == "ok"


def test_each_phase_keeps_vclusters_first_certificates_equal_and_is_read_back_from_the_pki(
        phases: Phases) -> None:
    trust, switch, finish = phases
    old = load_certificates(cached_pki()["ca.crt"])[0]
    for data in phases:
        assert not is_split(data)
        assert data["server-ca.crt"] == data["client-ca.crt"] == data["ca.crt"]
        assert data["server-ca.key"] == data["client-ca.key"] == data["ca.key"]
    state = staged_state(trust)
    assert state is not None and state.phase is Stage.TRUST and state.next is Stage.SWITCH
    assert state.old_ca == fingerprint(old) and ca_fingerprint(trust) == fingerprint(old)
    assert all(next_key(f) in trust for f in FAMILIES)
    switched = staged_state(switch)
    assert switched is not None and switched.phase is Stage.SWITCH and switched.next is Stage.FINISH
    assert (switched.old_ca, switched.new_ca) == (state.old_ca, state.new_ca)
    assert not any(next_key(f) in switch for f in FAMILIES)
    assert staged_state(finish) is None and staged_state(cached_pki()) is None
    assert ca_fingerprint(finish) == state.new_ca
    for family in FAMILIES:
        crossed, was, new = load_certificates(switch[f"{family}.crt"])
        assert signed_by(crossed, was) and not signed_by(crossed, crossed)
        assert crossed.public_key() == new.public_key() and crossed.subject == new.subject
        assert load_certificates(finish[f"{family}.crt"]) == [new]


def test_trust_issues_from_the_old_ca_switch_from_the_new_and_finish_only_drops_the_old(
        phases: Phases) -> None:
    trust, switch, finish = phases
    old_ca = load_certificates(cached_pki()["ca.crt"])[0]
    new_ca = load_certificates(trust["ca.crt"])[1]
    apiserver = load_certificates(trust["apiserver.crt"])[0]
    assert signed_by(apiserver, old_ca) and apiserver != load_certificates(cached_pki()["apiserver.crt"])[0]
    admin = load_certificates(Client.of(trust["admin.conf"]).cert_pem)[0]
    assert signed_by(admin, new_ca) and not signed_by(admin, old_ca)
    switched = load_certificates(switch["apiserver.crt"])[0]
    assert signed_by(switched, new_ca)
    leaves = [k for k in switch if k.endswith((".crt", ".conf")) and "ca" not in k.split("-")[-1]]
    assert all(finish[k] == switch[k] for k in leaves if k.endswith(".crt"))
    for data in phases:
        report = inspect_pki(data, now=NOW + timedelta(hours=2))
        assert report.worst is Status.OK, [(f.secret_key, f.message) for f in report.findings]
    assert Client.of(finish["admin.conf"]).ca_pem == finish["ca.crt"]
    assert Client.of(trust["admin.conf"]).ca_pem == trust["ca.crt"]


def test_the_phases_refuse_to_run_out_of_order() -> None:
    data = cached_pki()
    with pytest.raises(InvalidPkiError, match="not ready for the switch phase: no staged rotation"):
        stage_switch(data, now=NOW)
    trust = stage_trust(data, now=NOW).data
    with pytest.raises(InvalidPkiError, match="not ready for the finish phase: the last phase done is trust"):
        stage_finish(trust)
    with pytest.raises(InvalidPkiError, match="not ready for the trust phase"):
        stage_trust(trust, now=NOW)


def test_a_key_kept_aside_that_belongs_to_no_certificate_is_refused() -> None:
    trust = stage_trust(cached_pki(), now=NOW).data
    broken = {**trust, next_key("etcd-ca"): trust[next_key("front-proxy-ca")]}
    with pytest.raises(InvalidPkiError, match=r"vcerts-next-etcd-ca\.key belongs to no certificate"):
        stage_switch(broken, now=NOW)


def test_a_split_pki_stays_split_in_every_phase_and_old_kubeconfigs_last_until_finish() -> None:
    data = cached_pki(Options(split=True))
    trust, switch, finish = _phases(data)
    for phase in (trust, switch, finish):
        assert is_split(phase) and phase["client-ca.crt"] == phase["ca.crt"]
        assert Client.of(phase["admin.conf"]).ca_pem == phase["server-ca.crt"]
    before = Client.of(data["admin.conf"])
    assert handshake(trust, before) == handshake(switch, before) == "ok"
    assert handshake(finish, before) != "ok"
    assert handshake(finish, Client.of(switch["admin.conf"])) == "ok"


def test_a_ca_brought_by_the_user_is_the_new_ca_and_split_pkis_refuse_it() -> None:
    key = new_key()
    ca = make_ca("my-org-ca", key=key, not_before=NOW - timedelta(days=1),
                 not_after=NOW + timedelta(days=900))
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    byo = load_ca_material(cert_pem(ca), key_bytes, now=NOW)
    trust = stage_trust(cached_pki(), now=NOW, byo_ca=byo).data
    state = staged_state(trust)
    assert state is not None and state.new_ca == fingerprint(ca)
    switch = stage_switch(trust, now=NOW).data
    finish = stage_finish(switch).data
    assert load_certificates(finish["ca.crt"]) == [ca]
    before = Client.of(cached_pki()["admin.conf"])
    assert handshake(switch, before) == "ok" and handshake(finish, before) != "ok"
    with pytest.raises(UnsupportedError, match="split server CA"):
        stage_trust(cached_pki(Options(split=True)), now=NOW, byo_ca=byo)


def test_bundles_holding_only_the_old_ca_are_named(phases: Phases) -> None:
    trust = phases[0]
    state = staged_state(trust)
    assert state is not None
    assert bundle_holds_only_old(cached_pki()["ca.crt"], state)
    assert not bundle_holds_only_old(trust["ca.crt"], state)
    assert not bundle_holds_only_old(b"not pem", state)


def test_no_private_key_in_the_change_description(phases: Phases) -> None:
    change = stage_trust(cached_pki(), now=NOW)
    text = repr(change) + repr(change.changes)
    assert "PRIVATE KEY" not in text and "vcerts-next-ca.key" in text
    assert x509.load_pem_x509_certificates(phases[2]["ca.crt"])
