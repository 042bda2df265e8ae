"""Proofs with the real binaries: kubeadm makes the PKI, openssl and kubeadm judge our output, and a
real etcd + kube-apiserver boot from it.

Starting point: a PKI from the REAL kubeadm in vCluster's 29-key layout (tests/support/kubeadm_pki.py).
After leaf renewal and after CA rotation (generated and bring-your-own, the latter made by the openssl
CLI): every leaf verifies with `openssl verify` against its CA; subject, SANs, key usage, extended key
usage, basic constraints and key size read by `openssl x509 -text` equal the originals; `kubeadm certs
check-expiration` reads the result and shows the new dates. The real control plane (controlplane.py,
wired like vCluster's k8s distro) proves the old admin.conf survives a leaf renewal, dies with a
certificate verification error after a CA rotation, and that ServiceAccount tokens survive both.

Real processes check certificates against the real clock, so `now` here is the wall clock, taken once
and passed in like everywhere else.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import ssl
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from kubectl_vcerts.errors import InvalidInputError
from kubectl_vcerts.pki import (
    CATALOGUE,
    CaMaterial,
    Kind,
    PkiChange,
    inspect_pki,
    is_split,
    load_ca_material,
    renew_leaves,
    rotate_ca,
)
from kubectl_vcerts.pki.sans import SanConfig, san_differences
from tests.support.controlplane import RunningControlPlane, start_control_plane
from tests.support.kubeadm_pki import (
    check_expiration_config,
    generate_vcluster_pki,
    materialise,
    with_expired_ca,
    with_expired_leaves,
)
from tests.support.pki_builder import Options, build_pki
from tests.support.testbin import binary

pytestmark = pytest.mark.binaries

LEAVES_AND_CONFS = [e for e in CATALOGUE if e.kind in (Kind.LEAF, Kind.KUBECONFIG)]
EXTENSION_HEADERS = ("X509v3 Subject Alternative Name", "X509v3 Key Usage", "X509v3 Extended Key Usage",
                     "X509v3 Basic Constraints")


@pytest.fixture(scope="module")
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return generate_vcluster_pki(tmp_path_factory.mktemp("kubeadm"), name="vc", namespace="team-a")


def _openssl_ca(workdir: Path) -> tuple[bytes, bytes]:
    """A CA made by the openssl CLI, as a user would bring it."""
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(workdir / "ca.key"),
         "-out", str(workdir / "ca.crt"), "-subj", "/O=Example Corp/CN=example-issuing-ca", "-days", "3650",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
        check=True, capture_output=True)
    return (workdir / "ca.crt").read_bytes(), (workdir / "ca.key").read_bytes()


def _openssl_ca_material(workdir: Path) -> CaMaterial:
    cert, key = _openssl_ca(workdir)
    # openssl starts the CA at this very second (no backdating), after the module's `now`.
    return load_ca_material(cert, key, now=datetime.now(UTC))


OPERATIONS: dict[str, Callable[[dict[str, bytes], datetime, Path], PkiChange]] = {
    "after leaf renewal": lambda data, now, _: renew_leaves(data, now=now),
    "after CA rotation": lambda data, now, _: rotate_ca(data, now=now),
    "after CA rotation to an openssl-made CA": lambda data, now, tmp: rotate_ca(
        data, now=now, byo_ca=_openssl_ca_material(tmp / "byo")),
}


def _cert_pem(data: Mapping[str, bytes], key: str) -> bytes:
    if key.endswith(".conf"):
        user = yaml.safe_load(data[key])["users"][0]["user"]
        return base64.b64decode(user["client-certificate-data"])
    return data[key]


def _issuer_key(key: str, data: Mapping[str, bytes]) -> str:
    issuer = next(e.issuer for e in CATALOGUE if e.secret_key == key)
    return "server-ca.crt" if key == "apiserver.crt" and is_split(data) else str(issuer)


def _openssl_profile(pem: bytes) -> dict[str, str]:
    """Subject, the profile extensions and the key description, as openssl prints them."""
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, check=True,
                          capture_output=True).stdout.decode()
    lines = [line.strip() for line in text.splitlines()]
    profile = {"Subject": next(line for line in lines if line.startswith("Subject:"))}
    for i, line in enumerate(lines):
        for header in EXTENSION_HEADERS:
            if line.startswith(header):
                profile[line] = lines[i + 1]  # header incl. "critical" → value line
        if line.startswith(("Public Key Algorithm:", "Public-Key:", "ASN1 OID:")):
            profile[line] = ""
    return profile


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_every_leaf_verifies_with_openssl_against_its_ca(
        operation: Callable[[dict[str, bytes], datetime, Path], PkiChange], original: dict[str, bytes],
        now: datetime, tmp_path: Path) -> None:
    new = operation(original, now, tmp_path).data

    for entry in LEAVES_AND_CONFS:
        leaf, ca = tmp_path / "leaf.pem", tmp_path / "ca.pem"
        leaf.write_bytes(_cert_pem(new, entry.secret_key))
        ca.write_bytes(new[_issuer_key(entry.secret_key, new)])
        result = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True,
                                text=True, check=False)
        assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), (entry.secret_key,
                                                                                   result.stderr)
        assert _cert_pem(new, entry.secret_key) != _cert_pem(original, entry.secret_key)


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_openssl_sees_the_same_subject_sans_usages_and_key_size(
        operation: Callable[[dict[str, bytes], datetime, Path], PkiChange], original: dict[str, bytes],
        now: datetime, tmp_path: Path) -> None:
    new = operation(original, now, tmp_path).data

    for entry in LEAVES_AND_CONFS:
        before = _openssl_profile(_cert_pem(original, entry.secret_key))
        after = _openssl_profile(_cert_pem(new, entry.secret_key))
        assert after == before, entry.secret_key
        assert any(k.startswith("X509v3 Extended Key Usage") for k in after)


def test_rotated_cas_keep_the_kubeadm_ca_profile_in_openssls_eyes(original: dict[str, bytes],
                                                                   now: datetime) -> None:
    new = rotate_ca(original, now=now).data

    for key in ("ca.crt", "front-proxy-ca.crt", "etcd-ca.crt"):
        assert _openssl_profile(new[key]) == _openssl_profile(original[key]), key


def _check_expiration(data: Mapping[str, bytes], workdir: Path) -> dict[str, str]:
    """`kubeadm certs check-expiration -o json` on materialised data: name → expirationDate.

    kubeadm reads the kubeconfigs only from /etc/kubernetes; as root we give it a --rootfs holding them,
    otherwise only the certificates in --cert-dir are compared.
    """
    kubeadm = str(binary("kubeadm"))
    if os.geteuid() == 0:
        root = workdir / "root"
        etc = root / "etc" / "kubernetes"
        materialise(data, etc / "pki")
        for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf"):
            (etc / conf).write_bytes(data[conf])
        (etc / "super-admin.conf").write_bytes(data["admin.conf"])  # vCluster renamed it to admin.conf
        config = check_expiration_config(etc / "pki")
        inside = root / "kubeadm.yaml"
        inside.write_text(re.sub(r"certificatesDir: .*", "certificatesDir: /etc/kubernetes/pki",
                                 config.read_text()))
        args = [kubeadm, "certs", "check-expiration", "--rootfs", str(root), "--config", "/kubeadm.yaml"]
    else:
        pki = materialise(data, workdir / "pki")
        args = [kubeadm, "certs", "check-expiration", "--config", str(check_expiration_config(pki))]
    out = subprocess.run([*args, "-o", "json"], check=True, capture_output=True, text=True).stdout
    doc = yaml.safe_load(out)
    return {c["name"]: c["expirationDate"] for c in doc["certificates"] + doc["certificateAuthorities"]
            if not c.get("missing")}


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_kubeadm_check_expiration_reports_the_new_dates(
        operation: Callable[[dict[str, bytes], datetime, Path], PkiChange], original: dict[str, bytes],
        now: datetime, tmp_path: Path) -> None:
    new = operation(original, now, tmp_path).data

    reported = _check_expiration(new, tmp_path)

    ours = {row.secret_key: row.not_after for row in inspect_pki(new, now=now).certificates}
    names = {"apiserver": "apiserver.crt", "apiserver-etcd-client": "apiserver-etcd-client.crt",
             "apiserver-kubelet-client": "apiserver-kubelet-client.crt",
             "etcd-healthcheck-client": "etcd-healthcheck-client.crt", "etcd-peer": "etcd-peer.crt",
             "etcd-server": "etcd-server.crt", "front-proxy-client": "front-proxy-client.crt",
             "admin.conf": "admin.conf", "controller-manager.conf": "controller-manager.conf",
             "scheduler.conf": "scheduler.conf", "ca": "ca.crt", "etcd-ca": "etcd-ca.crt",
             "front-proxy-ca": "front-proxy-ca.crt"}
    expected_names = set(names) if os.geteuid() == 0 else {n for n in names if not n.endswith(".conf")}
    assert expected_names <= set(reported)
    for name in expected_names:
        assert reported[name] == ours[names[name]].strftime("%Y-%m-%dT%H:%M:%SZ"), name
    assert reported["apiserver"] == (now + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the real control plane ------------------------------------------------------------------------

def _kubectl(plane: RunningControlPlane, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("kubectl")), f"--kubeconfig={kubeconfig}", f"--server={plane.server}",
                           "--request-timeout=30s", *args], capture_output=True, text=True, check=False)


def _token_kubeconfig(path: Path, *, ca_pem: bytes, token: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "robot",
        "clusters": [{"name": "vc", "cluster": {
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "robot", "user": {"token": token}}],
        "contexts": [{"name": "robot", "context": {"cluster": "vc", "user": "robot"}}],
    }))
    return path


def _mint_token(plane: RunningControlPlane, admin: Path) -> str:
    created = _kubectl(plane, admin, "-n", "default", "create", "serviceaccount", "robot")
    assert created.returncode == 0, created.stderr
    token = _kubectl(plane, admin, "-n", "default", "create", "token", "robot", "--duration=2h")
    assert token.returncode == 0, token.stderr
    return token.stdout.strip()


def _whoami(plane: RunningControlPlane, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return _kubectl(plane, kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")


def _served_certificate(plane: RunningControlPlane) -> x509.Certificate:
    port = int(plane.server.rsplit(":", 1)[1])
    return x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port)).encode())


def _boot_and_mint(original: Mapping[str, bytes], tmp_path: Path) -> tuple[Path, Path, str]:
    """Boot from the kubeadm PKI, keep its admin.conf, mint a token; the etcd data dir is reused later."""
    pki = materialise(original, tmp_path / "pki")
    old_admin = tmp_path / "old-admin.conf"
    old_admin.write_bytes(original["admin.conf"])
    with start_control_plane(pki, tmp_path / "run") as plane:
        assert _kubectl(plane, old_admin, "get", "namespace", "default").returncode == 0
        token = _mint_token(plane, old_admin)
    return pki, old_admin, token


def test_after_leaf_renewal_the_old_admin_conf_and_old_tokens_still_work(
        original: dict[str, bytes], now: datetime, tmp_path: Path) -> None:
    pki, old_admin, token = _boot_and_mint(original, tmp_path)
    renewed = renew_leaves(original, now=now).data
    materialise(renewed, pki)
    new_admin = tmp_path / "new-admin.conf"
    new_admin.write_bytes(renewed["admin.conf"])

    with start_control_plane(pki, tmp_path / "run") as plane:
        served = _served_certificate(plane)
        old_result = _kubectl(plane, old_admin, "get", "namespace", "default")
        new_result = _kubectl(plane, new_admin, "get", "namespace", "default")
        robot = _whoami(plane, _token_kubeconfig(tmp_path / "robot.conf", ca_pem=renewed["ca.crt"],
                                                 token=token))

    assert served == x509.load_pem_x509_certificate(renewed["apiserver.crt"])
    assert served != x509.load_pem_x509_certificate(original["apiserver.crt"])
    assert old_result.returncode == 0, old_result.stderr
    assert new_result.returncode == 0, new_result.stderr
    assert (robot.returncode, robot.stdout) == (0, "system:serviceaccount:default:robot"), robot.stderr


def test_after_ca_rotation_the_old_admin_conf_fails_verification_and_tokens_survive(
        original: dict[str, bytes], now: datetime, tmp_path: Path) -> None:
    pki, old_admin, token = _boot_and_mint(original, tmp_path)
    rotated = rotate_ca(original, now=now).data
    materialise(rotated, pki)
    new_admin = tmp_path / "new-admin.conf"
    new_admin.write_bytes(rotated["admin.conf"])

    with start_control_plane(pki, tmp_path / "run") as plane:
        served = _served_certificate(plane)
        old_result = _kubectl(plane, old_admin, "get", "namespace", "default")
        new_result = _kubectl(plane, new_admin, "get", "namespace", "default")
        robot = _whoami(plane, _token_kubeconfig(tmp_path / "robot.conf", ca_pem=rotated["ca.crt"],
                                                 token=token))

    assert served == x509.load_pem_x509_certificate(rotated["apiserver.crt"])
    assert old_result.returncode != 0
    assert re.search(r"x509: certificate signed by unknown authority|failed to verify certificate",
                     old_result.stderr), old_result.stderr
    assert new_result.returncode == 0, new_result.stderr
    assert (robot.returncode, robot.stdout) == (0, "system:serviceaccount:default:robot"), robot.stderr


def test_a_k3s_split_pki_keeps_working_after_renewal_and_rotation(now: datetime, tmp_path: Path) -> None:
    """The split layout (server-ca ≠ ca), from the independent builder: apiserver.crt is served under
    server-ca, clients are authenticated by client-ca (= ca), through both operations."""
    split = build_pki(Options(split=True, now=now))
    pki = materialise(split, tmp_path / "pki")
    old_admin = tmp_path / "old-admin.conf"
    old_admin.write_bytes(split["admin.conf"])
    with start_control_plane(pki, tmp_path / "run") as plane:
        token = _mint_token(plane, old_admin)

    renewed = renew_leaves(split, now=now).data
    materialise(renewed, pki)
    with start_control_plane(pki, tmp_path / "run") as plane:
        served_renewed = _served_certificate(plane)
        old_after_renewal = _kubectl(plane, old_admin, "get", "namespace", "default")

    rotated = rotate_ca(renewed, now=now).data
    materialise(rotated, pki)
    new_admin = tmp_path / "new-admin.conf"
    new_admin.write_bytes(rotated["admin.conf"])
    with start_control_plane(pki, tmp_path / "run") as plane:
        served_rotated = _served_certificate(plane)
        new_after_rotation = _kubectl(plane, new_admin, "get", "namespace", "default")
        robot = _whoami(plane, _token_kubeconfig(tmp_path / "robot.conf", ca_pem=rotated["server-ca.crt"],
                                                 token=token))

    assert served_renewed == x509.load_pem_x509_certificate(renewed["apiserver.crt"])
    assert old_after_renewal.returncode == 0, old_after_renewal.stderr
    assert served_rotated.issuer == x509.load_pem_x509_certificate(rotated["server-ca.crt"]).subject
    assert rotated["server-ca.crt"] != rotated["ca.crt"]
    assert new_after_rotation.returncode == 0, new_after_rotation.stderr
    assert (robot.returncode, robot.stdout) == (0, "system:serviceaccount:default:robot"), robot.stderr


def _openssl_verify_all(data: Mapping[str, bytes], tmp_path: Path) -> list[str]:
    """Secret keys whose certificate `openssl verify` rejects against its CA."""
    failed = []
    for entry in LEAVES_AND_CONFS:
        leaf, ca = tmp_path / "leaf.pem", tmp_path / "ca.pem"
        leaf.write_bytes(_cert_pem(data, entry.secret_key))
        ca.write_bytes(data[_issuer_key(entry.secret_key, data)])
        if subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True,
                          check=False).returncode != 0:
            failed.append(entry.secret_key)
    return failed


def test_expired_kubeadm_leaves_are_renewed_into_leaves_openssl_accepts(
        original: dict[str, bytes], now: datetime, tmp_path: Path) -> None:
    expired = with_expired_leaves(original, now=now)
    assert _openssl_verify_all(expired, tmp_path) != []

    renewed = renew_leaves(expired, now=now).data

    assert _openssl_verify_all(renewed, tmp_path) == []


def test_an_expired_kubeadm_ca_is_rotated_into_a_pki_openssl_accepts(
        original: dict[str, bytes], now: datetime, tmp_path: Path) -> None:
    expired = with_expired_ca(original, now=now, cas=("ca", "front-proxy-ca", "etcd-ca"))
    assert set(_openssl_verify_all(expired, tmp_path)) == {e.secret_key for e in LEAVES_AND_CONFS}

    rotated = rotate_ca(expired, now=now).data

    assert _openssl_verify_all(rotated, tmp_path) == []


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def _openssl_intermediate(workdir: Path) -> tuple[Path, Path, Path, Path]:
    """(root.crt, issuing.crt, issuing.key, leaf.crt): an issuing CA under a root, and a server leaf it
    signed, all made by the openssl CLI."""
    workdir.mkdir(parents=True, exist_ok=True)
    root, inter, leaf = workdir / "root", workdir / "issuing", workdir / "leaf"
    ca_ext = workdir / "ca.ext"
    ca_ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{root}.key",
         "-out", f"{root}.crt", "-subj", "/CN=corp-root", "-days", "30",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    signed: list[tuple[Path, str, Path, list[str]]] = [
        (inter, "/CN=corp-issuing", root, ["-extfile", str(ca_ext)]),
        (leaf, "/CN=kube-apiserver", inter, []),
    ]
    for who, subject, signer, ext in signed:
        _run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key",
             "-out", f"{who}.csr", "-subj", subject)
        _run("openssl", "x509", "-req", "-in", f"{who}.csr", "-CA", f"{signer}.crt",
             "-CAkey", f"{signer}.key", "-CAcreateserial", "-out", f"{who}.crt", "-days", "20", *ext)
    return Path(f"{root}.crt"), Path(f"{inter}.crt"), Path(f"{inter}.key"), Path(f"{leaf}.crt")


def test_an_intermediate_alone_is_no_trust_anchor_for_openssl_so_a_byo_intermediate_is_refused(
    tmp_path: Path,
) -> None:
    """Why `rotate-ca --ca-cert` refuses intermediates: vCluster publishes only the first certificate
    of ca.crt (server-ca.crt, kube-root-ca.crt, kubeconfigs), and OpenSSL does not verify a leaf
    against an intermediate alone; with the root it does."""
    root, inter, inter_key, leaf = _openssl_intermediate(tmp_path)
    alone = subprocess.run(["openssl", "verify", "-CAfile", str(inter), str(leaf)], capture_output=True,
                           text=True, check=False)
    assert alone.returncode != 0 and "unable to get issuer certificate" in alone.stdout + alone.stderr
    chain = tmp_path / "chain.crt"
    chain.write_bytes(inter.read_bytes() + root.read_bytes())
    assert subprocess.run(["openssl", "verify", "-CAfile", str(chain), str(leaf)], capture_output=True,
                          check=False).returncode == 0
    with pytest.raises(InvalidInputError, match="intermediate"):
        load_ca_material(chain.read_bytes(), inter_key.read_bytes(), now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("service_cidr", "domain", "extra"),
    [("10.96.0.0/12", "cluster.local", ()),
     ("172.20.0.0/16", "corp.internal", ("vc.example.com", "10.1.2.3"))],
    ids=["chart defaults", "another service CIDR, cluster domain and extraSANs"],
)
def test_the_sans_we_compute_are_the_ones_kubeadm_gives_vclusters_certificates(
    tmp_path: Path, service_cidr: str, domain: str, extra: tuple[str, ...]
) -> None:
    """pki/sans.py against the real kubeadm run with vCluster's inputs. The one difference is the
    fixture's: kubeadm refuses a loopback advertise address, so its etcd certificates carry the
    service IP instead of vCluster's 127.0.0.1 (which they have anyway)."""
    data = generate_vcluster_pki(tmp_path, name="vc", namespace="team-a", service_cidr=service_cidr,
                                 cluster_domain=domain, extra_sans=extra)
    config = SanConfig(name="vc", namespace="team-a", service_cidr=service_cidr, cluster_domain=domain,
                       extra_sans=extra)
    vip = str(ipaddress.ip_network(service_cidr).network_address + 1)
    assert [(d.secret_key, d.added, d.dropped) for d in san_differences(data, config)] == [
        ("etcd-server.crt", (), (f"IP:{vip}",)), ("etcd-peer.crt", (), (f"IP:{vip}",))]
