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

Every new key (CAs and leaves) is independent of the others: all are started at once on a few threads
(:class:`kubectl_vcerts.pki.issue.KeyPool`) and taken in the order the one-by-one code made them, so
the result and the first error are the same.

Imports only the standard library, ``cryptography``, PyYAML, kubectl_vcerts.errors and sibling pki
modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from kubectl_vcerts.errors import InvalidPkiError
from kubectl_vcerts.pki.byo import CaMaterial
from kubectl_vcerts.pki.change import PkiChange
from kubectl_vcerts.pki.issue import BACKDATE, KeyPool, clone_certificate, new_key_like
from kubectl_vcerts.pki.layout import ca_fingerprint, is_split
from kubectl_vcerts.pki.parse import PrivateKey, cert_pem, key_pem, public_key_of
from kubectl_vcerts.pki.renew import (
    LeafSource,
    Signer,
    check_validity,
    describe_changes,
    read_leaves,
    reissue_leaves,
    require_certificate,
)
from kubectl_vcerts.pki.sans import SanConfig, expected_sans


@dataclass(frozen=True)
class _CaSource:
    """A CA read ahead of its replacement: the certificate to clone and its new key, being generated
    (None: generate it in its turn — its key type is unsupported and that raises there)."""

    cert_key: str
    old: x509.Certificate
    key: Future[PrivateKey] | None = field(default=None, repr=False)


def _read_ca(data: Mapping[str, bytes], cert_key: str, keys: KeyPool) -> _CaSource | InvalidPkiError:
    """The CA to clone with its new key started, or the error its replacement raises in its turn."""
    try:
        old = require_certificate(data, cert_key)
    except InvalidPkiError as exc:
        return exc
    try:
        public = public_key_of(old)
    except ValueError:
        return _CaSource(cert_key, old)
    return _CaSource(cert_key, old, keys.submit(public))


def _new_ca(read: _CaSource | InvalidPkiError, *, now: datetime, validity: timedelta) -> Signer:
    if isinstance(read, InvalidPkiError):
        raise read
    key = new_key_like(public_key_of(read.old)) if read.key is None else read.key.result()
    cert = clone_certificate(read.old, public_key=key.public_key(), signer=key, issuer=None,
                             not_before=now - BACKDATE, not_after=now + validity)
    return Signer(read.cert_key, cert, key)


def rotate_ca(data: Mapping[str, bytes], *, now: datetime, ca_validity: timedelta = timedelta(days=3650),
              leaf_validity: timedelta = timedelta(days=365), byo_ca: CaMaterial | None = None,
              allow_short: bool = False, refresh_sans: SanConfig | None = None) -> PkiChange:
    """New CAs (or ``byo_ca`` as ca), every leaf and kubeconfig re-issued; ``data`` is not mutated.
    With ``refresh_sans`` the leaves get the SANs vCluster would issue (pki/sans.py)."""
    sans = expected_sans(refresh_sans) if refresh_sans is not None else None
    check_validity(leaf_validity, allow_short=allow_short)
    check_validity(ca_validity, allow_short=allow_short, what="CA validity")
    split = is_split(data) and byo_ca is None
    with KeyPool() as pool:
        generated = (*(() if byo_ca is not None else ("ca.crt",)), "front-proxy-ca.crt", "etcd-ca.crt",
                     *(("server-ca.crt",) if split else ()))
        cas = {cert_key: _read_ca(data, cert_key, pool) for cert_key in generated}
        # the leaves' keys too, unless a CA already fails (then no leaf is reached)
        leaves = read_leaves(data, pool) if all(isinstance(r, _CaSource) for r in cas.values()) else None
        return _rotate(data, cas, leaves, now=now, ca_validity=ca_validity, leaf_validity=leaf_validity,
                       byo_ca=byo_ca, split=split, sans=sans)


def _rotate(data: Mapping[str, bytes], cas: Mapping[str, _CaSource | InvalidPkiError],
            leaves: tuple[LeafSource | InvalidPkiError, ...] | None, *, now: datetime, ca_validity: timedelta,
            leaf_validity: timedelta, byo_ca: CaMaterial | None, split: bool,
            sans: Mapping[str, x509.SubjectAlternativeName] | None = None) -> PkiChange:
    """rotate_ca with its CAs (and leaves, when every CA could be read) read and their keys started."""
    if byo_ca is not None:
        ca = Signer("ca.crt", byo_ca.certificate, byo_ca.key)
        ca_crt = byo_ca.bundle_pem
    else:
        ca = _new_ca(cas["ca.crt"], now=now, validity=ca_validity)
        ca_crt = cert_pem(ca.certificate)
    ca_key = key_pem(ca.key, like=data.get("ca.key"))
    signers = {
        "ca.crt": ca,
        "front-proxy-ca.crt": _new_ca(cas["front-proxy-ca.crt"], now=now, validity=ca_validity),
        "etcd-ca.crt": _new_ca(cas["etcd-ca.crt"], now=now, validity=ca_validity),
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
        server = _new_ca(cas["server-ca.crt"], now=now, validity=ca_validity)
        signers["server-ca.crt"] = server
        new["server-ca.crt"] = cert_pem(server.certificate)
        new["server-ca.key"] = key_pem(server.key, like=data.get("server-ca.key"))
        actions["server-ca.crt"] = actions["server-ca.key"] = "new-ca"
        serving_ca_pem = new["server-ca.crt"]
    else:
        new["server-ca.crt"], new["server-ca.key"] = first_ca, ca_key
        actions["server-ca.crt"] = actions["server-ca.key"] = "copied"
        serving_ca_pem = first_ca
    reissued = reissue_leaves(data, signers, now=now, validity=leaf_validity,
                              serving_ca="server-ca.crt" if split else "ca.crt",
                              serving_ca_pem=serving_ca_pem, leaves=leaves, sans=sans)
    new.update(reissued)
    actions.update(dict.fromkeys(reissued, "reissued"))
    return PkiChange(data=new, changes=describe_changes(data, new, actions),
                     ca_fingerprint=ca_fingerprint(new))
