"""`kubectl vcerts rotate-ca` against the real local cluster: new CA, BYO CA, invalid BYO, expired CA."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
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
from tests.integration.rotation_support import REPO, cli_env, run_cli, snapshot

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
        "--kubeconfig-out",
        str(tmp_path / "reachable.kubeconfig"),
        "--vcluster-server",
        "https://vc.example.com:8443",
    )
    assert result.returncode == 0, result.stderr
    reachable = yaml.safe_load((tmp_path / "reachable.kubeconfig").read_text())
    assert reachable["clusters"][0]["cluster"]["server"] == "https://vc.example.com:8443"
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


def kubeconfig_file(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def merged_view(kubectl: Path, chain: str) -> dict[str, Any]:
    """What the real kubectl makes of KUBECONFIG=chain (`config view --raw`): the reference we match."""
    out = subprocess.run(
        [str(kubectl), "config", "view", "--raw", "-o", "json"],
        capture_output=True, text=True, env={**cli_env(), "KUBECONFIG": chain}, check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


def by_name(doc: dict[str, Any], section: str, field: str) -> dict[str, dict[str, Any]]:
    """name -> body of the FIRST entry of that name in one file (the one kubectl reads)."""
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get(section) or []:
        out.setdefault(item["name"], item[field])
    return out


def test_update_kubeconfig_fixes_each_stale_entry_in_the_kubeconfig_file_kubectl_reads_it_from(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    admin = yaml.safe_load(before.data["admin.conf"])
    old_cluster = {**admin["clusters"][0]["cluster"], "server": "https://localhost:8443"}
    old_admin = admin["users"][0]["user"]
    other_ca = base64.b64encode(self_signed_ca("elsewhere")[0]).decode()
    someone = {"token": "not-a-certificate"}

    host = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    first = {**host}  # the host context (current) plus a vCluster context, like `vcluster connect`
    first["clusters"] = [*host["clusters"], {"name": "vc-a", "cluster": old_cluster}]
    first["users"] = [*host["users"], {"name": "vc-admin", "user": old_admin}]
    first["contexts"] = [
        *host["contexts"], {"name": "vc-a", "context": {"cluster": "vc-a", "user": "vc-admin"}}
    ]
    second = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "vc-b", "cluster": old_cluster},
            {  # shadowed: kubectl reads vc-a of the first file
                "name": "vc-a",
                "cluster": {"server": "https://shadowed:1", "certificate-authority-data": other_ca},
            },
        ],
        "users": [{"name": "vc-admin", "user": {"token": "shadowed"}}, {"name": "someone", "user": someone}],
        "contexts": [
            {"name": "vc-b", "context": {"cluster": "vc-b", "user": "vc-admin"}},  # the user of the 1st file
            {"name": "vc-b-token", "context": {"cluster": "vc-b", "user": "someone"}},
        ],
    }
    third = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "elsewhere",
                "cluster": {"server": "https://e:1", "certificate-authority-data": other_ca},
            }
        ],
        "users": [{"name": "e", "user": {"token": "t"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "e"}}],
    }
    (tmp_path / "a").mkdir()
    paths = [
        kubeconfig_file(tmp_path / "a" / "config", first),
        kubeconfig_file(tmp_path / "second.yaml", second),
        kubeconfig_file(tmp_path / "third.yaml", third),
    ]
    originals = [p.read_bytes() for p in paths]
    chain = os.pathsep.join(str(p) for p in [*paths, tmp_path / "missing.yaml"])
    kubectl = kube_cluster.bin_dir / "kubectl"

    def vcerts(*args: str) -> subprocess.CompletedProcess[str]:
        # no --kubeconfig: the CLI reads KUBECONFIG like kubectl
        return subprocess.run(
            [sys.executable, "-m", "kubectl_vcerts", "-n", vc.namespace, *args],
            capture_output=True, text=True, env=cli_env({"KUBECONFIG": chain}), cwd=REPO, timeout=240,
            check=False,
        )

    dry = vcerts("rotate-ca", vc.name, "--dry-run", "--update-kubeconfig")
    assert dry.returncode == 0, dry.stderr
    assert (
        f"vc-a (in {paths[0]}), vc-b (in {paths[1]}), vc-b-token (in {paths[1]})" in dry.stdout
        and "would update" in dry.stdout
    )
    assert [p.read_bytes() for p in paths] == originals

    result = vcerts("rotate-ca", vc.name, "--yes", "--timeout", "90s", "--update-kubeconfig")
    assert result.returncode == 0, result.stderr
    assert "updated 3 context(s)" in result.stdout
    after = snapshot(kube_session, vc.namespace, vc.name)
    new_admin = yaml.safe_load(after.data["admin.conf"])["users"][0]["user"]
    new_ca = base64.b64encode(after.data["ca.crt"]).decode()

    # kubectl's merged view: every vCluster context now trusts the new CA with the new admin credentials
    view = merged_view(kubectl, chain)
    clusters = by_name(view, "clusters", "cluster")
    users = by_name(view, "users", "user")
    assert clusters["vc-a"]["certificate-authority-data"] == new_ca
    assert clusters["vc-b"]["certificate-authority-data"] == new_ca
    assert users["vc-admin"]["client-certificate-data"] == new_admin["client-certificate-data"]
    new_key_in_place = users["vc-admin"]["client-key-data"] == new_admin["client-key-data"]
    assert new_key_in_place, "vc-admin does not hold the new admin key"
    assert users["someone"] == someone

    # each entry was changed in the file that defines it; shadowed definitions and the host left alone
    a, b = (yaml.safe_load(p.read_text()) for p in paths[:2])
    assert by_name(a, "clusters", "cluster")["vc-a"]["certificate-authority-data"] == new_ca
    a_users = by_name(a, "users", "user")
    assert a_users["vc-admin"]["client-certificate-data"] == new_admin["client-certificate-data"]
    for entry in host["clusters"]:
        assert by_name(a, "clusters", "cluster")[entry["name"]] == entry["cluster"]
    assert by_name(b, "clusters", "cluster")["vc-b"]["certificate-authority-data"] == new_ca
    assert by_name(b, "clusters", "cluster")["vc-a"]["certificate-authority-data"] == other_ca
    assert by_name(b, "users", "user")["vc-admin"] == {"token": "shadowed"}
    assert paths[2].read_bytes() == originals[2]  # nothing stale: not rewritten
    assert not list(tmp_path.glob("third.yaml.bak-*"))  # and not backed up
    [saved_a] = list(paths[0].parent.glob("config.bak-*"))
    [saved_b] = list(tmp_path.glob("second.yaml.bak-*"))
    assert saved_a.read_bytes() == originals[0] and saved_b.read_bytes() == originals[1]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    assert f"{paths[0]} (backup {saved_a})" in result.stdout
    assert f"{paths[1]} (backup {saved_b})" in result.stdout
