"""`kubectl vcerts rotate-ca` against the real local cluster: new CA, BYO CA, invalid BYO, expired CA."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from tests.integration.rotation_support import run_cli, snapshot

pytestmark = pytest.mark.cluster


def self_signed_ca(cn: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def user_kubeconfig(host_kubeconfig: Path, admin_conf: bytes, path: Path, *, context: str) -> Path:
    """The user's kubeconfig as `vcluster connect` leaves it: the host context (current) plus a context
    for the virtual cluster with the admin.conf credentials and the vCluster's CA."""
    doc = yaml.safe_load(host_kubeconfig.read_text())
    admin = yaml.safe_load(admin_conf)
    cluster = {
        "name": context,
        "cluster": {**admin["clusters"][0]["cluster"], "server": "https://localhost:8443"},
    }
    doc["clusters"].append(cluster)
    doc["users"].append({"name": context, "user": admin["users"][0]["user"]})
    doc["contexts"].append({"name": context, "context": {"cluster": context, "user": context}})
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_rotate_ca_generated_then_bring_your_own_then_an_invalid_one_is_refused(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    context = f"vcluster_{vc.name}_{vc.namespace}_host"
    config = user_kubeconfig(
        Path(kube_cluster.kubeconfig),
        before.data["admin.conf"],
        tmp_path / "user.kubeconfig",
        context=context,
    )
    out = tmp_path / "new-admin.kubeconfig"

    # 0. the dry run already names the context that will stop working, and changes nothing
    dry = run_cli(config, vc.namespace, "rotate-ca", vc.name, "--dry-run", "--kubeconfig-out", str(out))
    assert dry.returncode == 0, dry.stderr
    assert context in dry.stdout and "would stop working" in dry.stdout and not out.exists()
    assert snapshot(kube_session, vc.namespace, vc.name) == before

    # 1. a generated CA; the vCluster context of the user's kubeconfig is named as still trusting the old CA
    result = run_cli(
        config, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "90s", "--kubeconfig-out", str(out)
    )
    assert result.returncode == 0, result.stderr
    first = snapshot(kube_session, vc.namespace, vc.name)
    assert ca_fingerprint(first.data) != ca_fingerprint(before.data)
    assert first.data["sa.key"] == before.data["sa.key"]
    assert inspect_pki(first.data, now=datetime.now(UTC)).worst is Status.OK
    assert not set(first.pods.values()) & set(before.pods.values())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = yaml.safe_load(out.read_text())
    assert (
        base64.b64decode(written["clusters"][0]["cluster"]["certificate-authority-data"])
        == first.data["ca.crt"]
    )
    assert "still trust the old CA" in result.stdout and context in result.stdout
    assert "vcluster connect" in result.stdout

    # 2. bring your own CA
    cert_pem, key_pem = self_signed_ca("my-own-ca")
    (tmp_path / "ca.crt").write_bytes(cert_pem)
    (tmp_path / "ca.key").write_bytes(key_pem)
    result = run_cli(
        kube_cluster.kubeconfig,
        vc.namespace,
        "rotate-ca",
        vc.name,
        "--yes",
        "--timeout",
        "90s",
        "--ca-cert",
        str(tmp_path / "ca.crt"),
        "--ca-key",
        str(tmp_path / "ca.key"),
    )
    assert result.returncode == 0, result.stderr
    second = snapshot(kube_session, vc.namespace, vc.name)
    assert x509.load_pem_x509_certificates(second.data["ca.crt"])[0] == x509.load_pem_x509_certificate(
        cert_pem
    )
    assert inspect_pki(second.data, now=datetime.now(UTC)).worst is Status.OK

    # 3. an invalid BYO CA (key of another CA): refused, nothing changed
    _other_cert, other_key = self_signed_ca("other")
    (tmp_path / "bad.key").write_bytes(other_key)
    result = run_cli(
        kube_cluster.kubeconfig,
        vc.namespace,
        "rotate-ca",
        vc.name,
        "--yes",
        "--ca-cert",
        str(tmp_path / "ca.crt"),
        "--ca-key",
        str(tmp_path / "bad.key"),
    )
    assert result.returncode == 14, result.stderr
    assert "kubectl vcerts: error:" in result.stderr and "PRIVATE KEY" not in result.stderr + result.stdout
    assert snapshot(kube_session, vc.namespace, vc.name) == second


def test_update_kubeconfig_replaces_the_old_ca_and_admin_credentials_after_a_backup(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    context = f"vcluster_{vc.name}_{vc.namespace}_host"
    user_config = user_kubeconfig(
        Path(kube_cluster.kubeconfig),
        before.data["admin.conf"],
        tmp_path / "user.kubeconfig",
        context=context,
    )
    original = user_config.read_bytes()
    result = run_cli(
        user_config, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "90s", "--update-kubeconfig"
    )
    assert result.returncode == 0, result.stderr
    after = snapshot(kube_session, vc.namespace, vc.name)
    updated = yaml.safe_load(user_config.read_text())
    clusters = {c["name"]: c["cluster"] for c in updated["clusters"]}
    users = {u["name"]: u["user"] for u in updated["users"]}
    assert base64.b64decode(clusters[context]["certificate-authority-data"]) == after.data["ca.crt"]
    new_admin = yaml.safe_load(after.data["admin.conf"])["users"][0]["user"]
    assert users[context]["client-certificate-data"] == new_admin["client-certificate-data"]
    host = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    assert (
        clusters[host["clusters"][0]["name"]] == host["clusters"][0]["cluster"]
    )  # the host context untouched
    assert context in result.stdout and "updated 1 context(s)" in result.stdout
    [saved] = list(tmp_path.glob("user.kubeconfig.bak-*"))
    assert saved.read_bytes() == original
    assert stat.S_IMODE(user_config.stat().st_mode) == 0o600


def test_an_expired_ca_is_refused_by_rotate_and_fixed_by_rotate_ca(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(expired_ca=True)
    before = snapshot(kube_session, vc.namespace, vc.name)
    refused = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--force")
    assert refused.returncode == 13 and "rotate-ca" in refused.stderr
    assert snapshot(kube_session, vc.namespace, vc.name) == before
    result = run_cli(
        kube_cluster.kubeconfig, vc.namespace, "rotate-ca", vc.name, "--yes", "--force", "--timeout", "90s"
    )
    assert result.returncode == 0, result.stderr
    after = snapshot(kube_session, vc.namespace, vc.name)
    assert inspect_pki(after.data, now=datetime.now(UTC)).worst is Status.OK
