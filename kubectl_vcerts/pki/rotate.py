"""Rotate the CAs of a vCluster PKI and re-issue everything under them; ``sa.*`` stays.

New ``ca``, ``front-proxy-ca`` and ``etcd-ca`` (each cloned from the CA it replaces: subject,
extensions, key type and size; self-signed; NotBefore backdated five minutes), or a user-supplied CA
(:mod:`kubectl_vcerts.pki.byo`) as ``ca``. ``server-ca.*``/``client-ca.*`` become copies of the new
``ca.*`` (first certificate only, as vCluster's splitCACert). Every leaf and kubeconfig client
certificate is re-issued under its new CA (cloned profile, new key); kubeconfigs trust the new CA.

k3s split layout (server-ca differs from ca; loft-sh/vcluster `pkg/certs/ensure.go`): we KEEP the split — a
new
server-ca (cloned from the old server-ca) signs apiserver.crt and is the CA data of the kubeconfigs,
and a new ca (client CA) signs the client certificates, with client-ca a copy of it. Why: vCluster
>= 0.35 detects the split by comparing server-ca with ca and wires kube-controller-manager's per-signer
flags accordingly; collapsing it silently would change which CA signs kubelet-serving and
client certificates inside the virtual cluster, a decision the user did not ask for. With a BYO CA the
user chose one CA for everything, so the supplied CA becomes ca.*, server-ca.* and client-ca.* (no
split; the k3s annotation left on the secret is then harmless, as no copy differs).

Imports only the standard library, ``cryptography``, PyYAML, kubectl_vcerts.errors and sibling pki
modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from kubectl_vcerts.pki.byo import CaMaterial
from kubectl_vcerts.pki.change import PkiChange
from kubectl_vcerts.pki.issue import BACKDATE, clone_certificate, new_key_like
from kubectl_vcerts.pki.layout import ca_fingerprint, is_split
from kubectl_vcerts.pki.parse import cert_pem, key_pem, public_key_of
from kubectl_vcerts.pki.renew import (
    Signer,
    check_validity,
    describe_changes,
    reissue_leaves,
    require_certificate,
)


def _new_ca(data: Mapping[str, bytes], cert_key: str, *, now: datetime, validity: timedelta) -> Signer:
    old = require_certificate(data, cert_key)
    key = new_key_like(public_key_of(old))
    cert = clone_certificate(old, public_key=key.public_key(), signer=key, issuer=None,
                             not_before=now - BACKDATE, not_after=now + validity)
    return Signer(cert_key, cert, key)


def rotate_ca(data: Mapping[str, bytes], *, now: datetime, ca_validity: timedelta = timedelta(days=3650),
              leaf_validity: timedelta = timedelta(days=365), byo_ca: CaMaterial | None = None,
              allow_short: bool = False) -> PkiChange:
    """New CAs (or ``byo_ca`` as ca), every leaf and kubeconfig re-issued; ``data`` is not mutated."""
    check_validity(leaf_validity, allow_short=allow_short)
    check_validity(ca_validity, allow_short=allow_short, what="CA validity")
    split = is_split(data) and byo_ca is None
    if byo_ca is not None:
        ca = Signer("ca.crt", byo_ca.certificate, byo_ca.key)
        ca_crt = byo_ca.bundle_pem
    else:
        ca = _new_ca(data, "ca.crt", now=now, validity=ca_validity)
        ca_crt = cert_pem(ca.certificate)
    ca_key = key_pem(ca.key, like=data.get("ca.key"))
    signers = {
        "ca.crt": ca,
        "front-proxy-ca.crt": _new_ca(data, "front-proxy-ca.crt", now=now, validity=ca_validity),
        "etcd-ca.crt": _new_ca(data, "etcd-ca.crt", now=now, validity=ca_validity),
    }
    ca_action = "byo-ca" if byo_ca is not None else "new-ca"
    new: dict[str, bytes] = {**data, "ca.crt": ca_crt, "ca.key": ca_key}
    actions = {"ca.crt": ca_action, "ca.key": ca_action}
    for key in ("front-proxy-ca", "etcd-ca"):
        signer = signers[f"{key}.crt"]
        new[f"{key}.crt"] = cert_pem(signer.certificate)
        new[f"{key}.key"] = key_pem(signer.key, like=data.get(f"{key}.key"))
        actions[f"{key}.crt"] = actions[f"{key}.key"] = "new-ca"
    first_ca = cert_pem(ca.certificate)
    new["client-ca.crt"], new["client-ca.key"] = first_ca, ca_key
    actions["client-ca.crt"] = actions["client-ca.key"] = "copied"
    if split:
        server = _new_ca(data, "server-ca.crt", now=now, validity=ca_validity)
        signers["server-ca.crt"] = server
        new["server-ca.crt"] = cert_pem(server.certificate)
        new["server-ca.key"] = key_pem(server.key, like=data.get("server-ca.key"))
        actions["server-ca.crt"] = actions["server-ca.key"] = "new-ca"
        serving_ca_pem = new["server-ca.crt"]
    else:
        new["server-ca.crt"], new["server-ca.key"] = first_ca, ca_key
        actions["server-ca.crt"] = actions["server-ca.key"] = "copied"
        serving_ca_pem = first_ca
    leaves = reissue_leaves(data, signers, now=now, validity=leaf_validity,
                            serving_ca="server-ca.crt" if split else "ca.crt", serving_ca_pem=serving_ca_pem)
    new.update(leaves)
    actions.update(dict.fromkeys(leaves, "reissued"))
    return PkiChange(data=new, changes=describe_changes(data, new, actions),
                     ca_fingerprint=ca_fingerprint(new))
