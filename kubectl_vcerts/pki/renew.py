"""Renew the leaf certificates of a vCluster PKI under the CAs it already has.

New key and serial for the seven leaves and the client certificates of the three kubeconfigs; the rest
of each certificate is cloned (see :mod:`kubectl_vcerts.pki.issue`). CA entries and ``sa.*`` stay
byte-identical, except empty or absent server-ca/client-ca copies, which are filled from ca as vCluster
would (:func:`kubectl_vcerts.pki.layout.fill_ca_copies`); kubeconfigs keep server, names and CA data.
In the k3s split layout apiserver.crt is signed by server-ca (as vCluster's
``ensureAPIServerServingCertSignedByServerCA`` does). Works with expired leaves and even an expired CA
(the signature is still valid; restoring trust is rotate-ca's job).

Validity must outlive vCluster's start-up renewal window (<= 90 days, vCluster >= 0.33) by
``RENEWAL_MARGIN`` unless ``allow_short``. Kubeconfig client certificates get NotBefore = their CA's
NotBefore, as kubeadm does.

The new keys are generated on a few threads while the CA keys are loaded and the certificates are
built (:class:`kubectl_vcerts.pki.issue.KeyPool`); everything else runs in catalogue order, so the
result and the first error are those of doing it one by one.

Imports only the standard library, ``cryptography``, PyYAML, kubectl_vcerts.errors and sibling pki
modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509

from kubectl_vcerts.errors import InvalidInputError, InvalidPkiError
from kubectl_vcerts.pki.catalogue import KUBECONFIGS, LEAVES, CatalogueEntry, Kind
from kubectl_vcerts.pki.change import EntryChange, PkiChange
from kubectl_vcerts.pki.issue import KeyPool, renew
from kubectl_vcerts.pki.kubeconfig import parse_kubeconfig, replace_credentials
from kubectl_vcerts.pki.layout import ca_fingerprint, fill_ca_copies, serving_ca_key
from kubectl_vcerts.pki.parse import (
    PrivateKey,
    cert_pem,
    first_certificate,
    key_pem,
    load_private_key,
    public_key_of,
)
from kubectl_vcerts.pki.sans import SanConfig, expected_sans

# vCluster >= 0.33 re-issues leaf certificates at start-up when they expire within this window.
RENEWAL_THRESHOLD = timedelta(days=90)
# What we issue must stay clear of that window by this much: a 91-day certificate would be replaced by
# the watcher or the next start a day later, undoing the rotation the user just confirmed.
RENEWAL_MARGIN = timedelta(days=30)
MIN_VALIDITY = RENEWAL_THRESHOLD + RENEWAL_MARGIN
_HINT = "restore a complete PKI (`kubectl vcerts restore`) or create a new one (`kubectl vcerts rotate-ca`)"


@dataclass(frozen=True)
class Signer:
    """A CA able to sign: its certificate and key (which never appears in a repr)."""

    secret_key: str
    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)


def check_validity(validity: timedelta, *, allow_short: bool, what: str = "leaf validity") -> None:
    if validity <= timedelta(0):
        raise InvalidInputError(f"{what} must be positive", hint="pass a duration such as 365d")
    if validity < MIN_VALIDITY and not allow_short:
        inside = validity <= RENEWAL_THRESHOLD
        raise InvalidInputError(
            f"{what} of {validity.days} days is "
            + ("within" if inside else f"less than {RENEWAL_MARGIN.days} days clear of")
            + f" vCluster's {RENEWAL_THRESHOLD.days}-day start-up renewal window",
            hint=f"choose at least {MIN_VALIDITY.days} days (vCluster >= 0.33 replaces certificates with "
                 f"{RENEWAL_THRESHOLD.days} days or less left), or force it explicitly",
        )


def require_certificate(data: Mapping[str, bytes], key: str) -> x509.Certificate:
    raw = data.get(key)
    if not raw:
        raise InvalidPkiError(f"{key} is missing from the PKI; its profile cannot be cloned", hint=_HINT)
    try:
        return first_certificate(raw)
    except ValueError as exc:
        raise InvalidPkiError(f"{key} cannot be parsed ({exc})", hint=_HINT) from exc


def require_key(data: Mapping[str, bytes], key: str) -> PrivateKey:
    raw = data.get(key)
    if not raw:
        raise InvalidPkiError(f"{key} is missing from the PKI", hint=_HINT)
    try:
        return load_private_key(raw)
    except ValueError as exc:
        raise InvalidPkiError(f"{key} cannot be parsed ({exc})", hint=_HINT) from exc


def load_signer(data: Mapping[str, bytes], cert_key: str) -> Signer:
    return Signer(cert_key, require_certificate(data, cert_key),
                  require_key(data, cert_key.removesuffix(".crt") + ".key"))


def issuer_of(item: CatalogueEntry, serving_ca: str) -> str:
    """The CA entry that signs ``item``: apiserver.crt is signed by the serving CA (server-ca in the
    k3s split, else ca)."""
    return serving_ca if item.path == "apiserver.crt" else str(item.issuer)


@dataclass(frozen=True)
class LeafSource:
    """One leaf or kubeconfig entry read ahead of its re-issue: the certificate it is cloned from and its
    new key, being generated (None: generate it in its turn)."""

    item: CatalogueEntry
    old: x509.Certificate
    old_key_pem: bytes | None = field(default=None, repr=False)  # the key replaced: serialise alike
    kubeconfig: bytes | None = field(default=None, repr=False)  # the whole file, for kubeconfig entries
    key: Future[PrivateKey] | None = field(default=None, repr=False)


def _read_leaf(source: Mapping[str, bytes], item: CatalogueEntry) -> LeafSource:
    if item.kind is not Kind.KUBECONFIG:
        return LeafSource(item, require_certificate(source, item.secret_key),
                          old_key_pem=source.get(str(item.pair)))
    raw = source.get(item.secret_key)
    if not raw:
        raise InvalidPkiError(f"{item.secret_key} is missing from the PKI; its profile cannot be cloned",
                              hint=_HINT)
    try:
        parts = parse_kubeconfig(raw)
        old = first_certificate(parts.client_cert_pem)
    except ValueError as exc:
        raise InvalidPkiError(f"{item.secret_key} is not a usable kubeconfig ({exc})", hint=_HINT) from exc
    return LeafSource(item, old, old_key_pem=parts.client_key_pem, kubeconfig=raw)


def read_leaves(source: Mapping[str, bytes], keys: KeyPool) -> tuple[LeafSource | InvalidPkiError, ...]:
    """Every leaf, then every kubeconfig, in catalogue order, each with its new key submitted to ``keys``.

    The first entry that cannot be read ends the tuple as its error, which ``reissue_leaves`` raises in
    its turn (so errors come in the order the one-by-one code raised them, after the earlier entries'
    own). A key that cannot be generated is not an error here: ``Future.result()`` raises it in its turn.
    """
    out: list[LeafSource | InvalidPkiError] = []
    for item in (*LEAVES, *KUBECONFIGS):
        try:
            read = _read_leaf(source, item)
        except InvalidPkiError as exc:
            out.append(exc)
            break
        try:
            public = public_key_of(read.old)
        except ValueError:
            out.append(read)  # unsupported key type: renew() raises it in its turn, as it always did
            break
        out.append(replace(read, key=keys.submit(public)))
    return tuple(out)


def reissue_leaves(source: Mapping[str, bytes], signers: Mapping[str, Signer], *, now: datetime,
                   validity: timedelta, serving_ca: str, serving_ca_pem: bytes | None,
                   leaves: Sequence[LeafSource | InvalidPkiError] | None = None,
                   sans: Mapping[str, x509.SubjectAlternativeName] | None = None) -> dict[str, bytes]:
    """New leaves and kubeconfig credentials cloned from ``source``, signed by ``signers`` (by the
    secret key of the CA each catalogue entry names). ``serving_ca_pem`` replaces kubeconfig CA data.

    ``leaves`` is ``read_leaves(source, pool)`` when the caller started the new keys earlier, to overlap
    them with its own work; without it they are read and started here. ``sans`` (secret key → SANs)
    replaces the cloned SANs of those leaves."""
    if leaves is None:
        with KeyPool() as pool:
            return reissue_leaves(source, signers, now=now, validity=validity, serving_ca=serving_ca,
                                  serving_ca_pem=serving_ca_pem, leaves=read_leaves(source, pool), sans=sans)
    out: dict[str, bytes] = {}
    for read in leaves:
        if isinstance(read, InvalidPkiError):
            raise read
        item = read.item
        key = None if read.key is None else read.key.result()
        if read.kubeconfig is None:
            signer = signers[issuer_of(item, serving_ca)]
            cert, key = renew(read.old, signer=signer.key, issuer=signer.certificate, now=now,
                              validity=validity, key=key, sans=(sans or {}).get(item.secret_key))
            out[item.secret_key] = cert_pem(cert)
            out[str(item.pair)] = key_pem(key, like=read.old_key_pem)
        else:
            signer = signers[str(item.issuer)]
            cert, key = renew(read.old, signer=signer.key, issuer=signer.certificate, now=now,
                              validity=validity, not_before=signer.certificate.not_valid_before_utc, key=key)
            out[item.secret_key] = replace_credentials(read.kubeconfig, client_cert_pem=cert_pem(cert),
                                                       client_key_pem=key_pem(key, like=read.old_key_pem),
                                                       ca_pem=serving_ca_pem)
    return out


def not_after_of(data: Mapping[str, bytes], key: str) -> datetime | None:
    """NotAfter of a certificate entry (or a kubeconfig's client certificate); None when unreadable."""
    raw = data.get(key)
    if not raw:
        return None
    try:
        if key.endswith(".conf"):
            return first_certificate(parse_kubeconfig(raw).client_cert_pem).not_valid_after_utc
        if key.endswith(".crt"):
            return first_certificate(raw).not_valid_after_utc
    except ValueError:
        return None
    return None


def describe_changes(old: Mapping[str, bytes], new: Mapping[str, bytes],
                     actions: Mapping[str, str]) -> tuple[EntryChange, ...]:
    return tuple(
        EntryChange(secret_key=key, action=action, old_not_after=not_after_of(old, key),
                    new_not_after=not_after_of(new, key))
        for key, action in sorted(actions.items()) if old.get(key) != new.get(key)
    )


def renew_leaves(data: Mapping[str, bytes], *, now: datetime, validity: timedelta = timedelta(days=365),
                 allow_short: bool = False, refresh_sans: SanConfig | None = None) -> PkiChange:
    """Renew every leaf and kubeconfig client certificate under the existing CAs; ``data`` is not mutated.
    With ``refresh_sans`` the SANs are the ones vCluster would issue (pki/sans.py), not the old ones."""
    sans = expected_sans(refresh_sans) if refresh_sans is not None else None
    check_validity(validity, allow_short=allow_short)
    old, data = data, fill_ca_copies(data)  # never write what vCluster would crash on or not overwrite
    copied = {key: "copied" for key in data if data.get(key) != old.get(key)}
    serving_ca = serving_ca_key(data)
    needed = {issuer_of(item, serving_ca) for item in (*LEAVES, *KUBECONFIGS)}
    with KeyPool() as pool:
        leaves = read_leaves(data, pool)  # the new keys are generated while the CA keys load
        signers = {key: load_signer(data, key) for key in sorted(needed)}
        renewed = reissue_leaves(data, signers, now=now, validity=validity, serving_ca=serving_ca,
                                 serving_ca_pem=None, leaves=leaves, sans=sans)
    new = {**data, **renewed}
    actions = {**copied, **dict.fromkeys(renewed, "renewed")}
    return PkiChange(data=new, changes=describe_changes(old, new, actions),
                     ca_fingerprint=ca_fingerprint(new))
