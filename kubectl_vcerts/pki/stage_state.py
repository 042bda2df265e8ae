"""Where a staged CA rotation stands, read from the PKI alone (see pki/staged.py for the phases): cheap
enough for `check`, which imports only this and the parser.

Imports only the standard library, ``cryptography`` and sibling pki modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from kubectl_vcerts.pki.parse import (
    fingerprint,
    key_matches,
    load_certificates,
    load_private_key,
    public_key_of,
    signed_by,
)


class Stage(StrEnum):
    """The phases of a staged rotation, in order."""

    TRUST = "trust"
    SWITCH = "switch"
    FINISH = "finish"


ORDER = (Stage.TRUST, Stage.SWITCH, Stage.FINISH)


def next_key(family: str) -> str:
    """Secret key of the new CA's private key while in trust (``family`` is e.g. ``ca``)."""
    return f"vcerts-next-{family}.key"


@dataclass(frozen=True)
class StagedState:
    """Where a staged rotation stands: the last phase done (trust or switch) and the two CAs of the
    ``ca`` family (fingerprints of the certificates, N's self-signed one)."""

    phase: Stage
    old_ca: str
    new_ca: str

    @property
    def next(self) -> Stage:
        return ORDER[ORDER.index(self.phase) + 1]


def self_signed(cert: x509.Certificate) -> bool:
    return signed_by(cert, cert)


def switch_parts(bundle: list[x509.Certificate]) -> tuple[x509.Certificate, list[x509.Certificate],
                                                          list[x509.Certificate]] | None:
    """A switch-phase bundle N×O, O…, N… as (N×O, old bundle, new bundle); None for any other bundle.
    N×O is recognised as a first certificate that is not self-signed while a later one has its key."""
    first = bundle[0]
    if len(bundle) < 3 or self_signed(first):
        return None
    key = public_key_of(first)
    for index in range(2, len(bundle)):
        if public_key_of(bundle[index]) == key and self_signed(bundle[index]):
            old, new = bundle[1:index], bundle[index:]
            return (first, old, new) if signed_by(first, old[0]) else None
    return None


def staged_state(data: Mapping[str, bytes]) -> StagedState | None:
    """The phase the PKI is in; None when no staged rotation is under way (or ca.crt is unreadable:
    the operations refuse that PKI on their own)."""
    try:
        bundle = load_certificates(data.get("ca.crt") or b"")
    except ValueError:
        return None
    if data.get(next_key("ca")):
        try:
            key = load_private_key(data[next_key("ca")])
        except ValueError:
            return None
        new = [c for c in bundle[1:] if key_matches(public_key_of(c), key)]
        return StagedState(Stage.TRUST, fingerprint(bundle[0]), fingerprint(new[0])) if new else None
    split = switch_parts(bundle)
    if split is None:
        return None
    _, old, new = split
    return StagedState(Stage.SWITCH, fingerprint(old[0]), fingerprint(new[0]))


def bundle_holds_only_old(ca_pem: bytes, state: StagedState) -> bool:
    """True when a trust bundle (a kubeconfig's CA data) has the old CA but not the new one: it stops
    verifying the vCluster at finish."""
    try:
        prints = {fingerprint(c) for c in load_certificates(ca_pem)}
    except ValueError:
        return False
    return state.old_ca in prints and state.new_ca not in prints


def _certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        return load_certificates(pem)
    except ValueError:
        return []


def old_admin_test(bundles: Sequence[bytes], admin_cert_pem: bytes,
                   state: StagedState) -> Callable[[bytes], bool]:
    """Whether a client certificate is an admin certificate (admin.conf's subject) the old CA issued —
    any of them: by finish the one from before the rotation is two phases back. Those stop at finish.
    ``bundles`` are CA files to find the old CA in."""
    old_ca = next((c for pem in bundles for c in _certificates(pem) if fingerprint(c) == state.old_ca), None)
    admin = _certificates(admin_cert_pem)

    def issued(cert_pem: bytes) -> bool:
        certs = _certificates(cert_pem)
        return (old_ca is not None and bool(certs) and bool(admin) and certs[0].subject == admin[0].subject
                and signed_by(certs[0], old_ca))

    return issued
