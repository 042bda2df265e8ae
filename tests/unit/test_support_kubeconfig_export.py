"""The emulator's vc-NAME (tests/support/kubeconfig_export.py) is the kubeconfig vCluster exports:
`https://localhost:<proxy port>` unless exportKubeConfig.server, the context renamed with
exportKubeConfig.context, the CA dropped with insecure, and the split-out keys of the current context."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from tests.support.kubeconfig_export import exported_kubeconfig, exported_server, secret_data

CA, CERT, KEY = b"ca-pem", b"cert-pem", b"key-pem"  # placeholders: the functions only move bytes


def admin_conf() -> bytes:
    """kubeadm's admin.conf shape (names as kubeadm writes them)."""
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": "https://127.0.0.1:6443", "certificate-authority-data": base64.b64encode(CA).decode(),
            "tls-server-name": "kube-apiserver"}}],
        "contexts": [{"name": "kubernetes-admin@kubernetes",
                      "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
        "current-context": "kubernetes-admin@kubernetes",
        "users": [{"name": "kubernetes-admin", "user": {
            "client-certificate-data": base64.b64encode(CERT).decode(),
            "client-key-data": base64.b64encode(KEY).decode()}}],
    }).encode()


def values(**export: Any) -> dict[str, Any]:
    return {"controlPlane": {"proxy": {"port": 8443}},
            "exportKubeConfig": {"context": "", "server": "", **export}}


def test_by_default_every_cluster_names_the_pods_own_proxy_port_and_nothing_else_changes() -> None:
    conf = exported_kubeconfig(admin_conf(), values())
    assert conf["clusters"] == [{"name": "kubernetes", "cluster": {
        "server": "https://localhost:8443", "certificate-authority-data": base64.b64encode(CA).decode(),
        "tls-server-name": "kube-apiserver"}}]
    assert conf["current-context"] == "kubernetes-admin@kubernetes"
    assert exported_server({"controlPlane": {"proxy": {"port": 9443}}}) == "https://localhost:9443"
    assert exported_server({}) == "https://localhost:8443"


def test_export_server_makes_a_new_cluster_with_only_the_server_and_the_ca() -> None:
    conf = exported_kubeconfig(admin_conf(), values(server="https://vc.example.com"))
    assert conf["clusters"][0]["cluster"] == {
        "server": "https://vc.example.com", "certificate-authority-data": base64.b64encode(CA).decode()}


def test_insecure_drops_the_ca_and_skips_verification() -> None:
    conf = exported_kubeconfig(admin_conf(), values(insecure=True))
    cluster = conf["clusters"][0]["cluster"]
    assert "certificate-authority-data" not in cluster and cluster["insecure-skip-tls-verify"] is True
    assert secret_data(conf)["certificate-authority"] == b""


def test_export_context_renames_the_context_its_cluster_and_its_user() -> None:
    conf = exported_kubeconfig(admin_conf(), values(context="my-vcluster"))
    assert conf["current-context"] == "my-vcluster"
    assert [c["name"] for c in conf["clusters"]] == [u["name"] for u in conf["users"]] == ["my-vcluster"]
    assert conf["contexts"] == [{"name": "my-vcluster", "context": {"cluster": "my-vcluster",
                                                                    "user": "my-vcluster"}}]


def test_the_secret_splits_out_what_the_current_context_uses() -> None:
    data = secret_data(exported_kubeconfig(admin_conf(), values(context="renamed")))
    assert (data["certificate-authority"], data["client-certificate"], data["client-key"], data["token"]) == (
        CA, CERT, KEY, b"")
    assert yaml.safe_load(data["config"])["current-context"] == "renamed"
