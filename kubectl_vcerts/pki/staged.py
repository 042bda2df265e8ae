"""A staged CA rotation: trust, switch, finish — the old and the new CA trusted side by side until the user
finishes, so that no kubeconfig, client certificate or trust store made before the rotation breaks early.

What vCluster does with a CA bundle decides the shape of each phase (loft-sh/vcluster
`pkg/server/cert/cert.go`, `pkg/server/server.go`, `pkg/certs/ensure.go`, `pkg/k8s/k8s.go`):

* the syncer serves leaf + the FIRST certificate of ``server-ca.crt``, signed with ``server-ca.key``, and
  keeps it while it verifies against ALL of ``server-ca.crt``; client certificates are checked against
  all of ``client-ca.crt`` (so is kube-apiserver's ``--client-ca-file``): a bundle is a pool;
* kube-controller-manager signs with the first certificate of ``server-ca.crt`` and publishes the whole
  file as ``kube-root-ca.crt``; etcd trusts all of ``etcd-ca.crt``;
* vCluster treats the PKI as split (k3s) when the first certificates of ``ca.crt``, ``server-ca.crt``
  and ``client-ca.crt`` differ, so each phase keeps them equal (or, in a split PKI, keeps the split).

For every CA family (``ca`` with its copies ``server-ca``/``client-ca``, or ``server-ca`` on its own in a
split PKI, ``front-proxy-ca``, ``etcd-ca``), with O the old CA and N the new one:

=========  ==========================  =============  =========================================
phase      ``<ca>.crt``                ``<ca>.key``   leaves and kubeconfig client certificates
=========  ==========================  =============  =========================================
trust      O, N                        O's            re-issued by O (admin.conf's by N); N's key aside
switch     N×O, O, N                   N's            re-issued by N
finish     N                           N's            kept (only the kubeconfigs' CA data change)
=========  ==========================  =============  =========================================

N×O is N's certificate (same subject, key and extensions) signed by O. As the first certificate it is
what the syncer serves beside its leaf, so a client that trusts only O verifies leaf → N×O → O, and a
client that trusts N verifies the leaf against N directly: kubeconfigs from before the rotation work
until finish (their client certificates, issued by O, are in the client CA pool until then), and the
kubeconfigs handed out from trust on (admin.conf's client certificate is N's from trust) work after it.
Kubeconfig CA data is the whole serving bundle.
A phase's start-up never meets a peer it cannot talk to (each trusts what the previous one issued),
which is why the workflow may restart one pod at a time.

While in trust, N's key is kept in the secret under ``vcerts-next-<ca>.key`` (vCluster writes unknown
keys to ``/data/pki`` under their name and otherwise ignores them). The phase is read from the PKI
itself (:func:`staged_state`), so it survives restores and any machine can continue it.

Imports only the standard library, ``cryptography``, kubectl_vcerts.errors and sibling pki modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography import x509

from kubectl_vcerts.errors import InvalidPkiError, UnsupportedError
from kubectl_vcerts.pki.byo import CaMaterial
from kubectl_vcerts.pki.catalogue import KUBECONFIGS
from kubectl_vcerts.pki.change import PkiChange
from kubectl_vcerts.pki.issue import BACKDATE, KeyPool, clone_certificate
from kubectl_vcerts.pki.kubeconfig import replace_ca_data
from kubectl_vcerts.pki.layout import ca_fingerprint, is_split
from kubectl_vcerts.pki.parse import (
    PrivateKey,
    cert_pem,
    key_matches,
    key_pem,
    load_certificates,
    public_key_of,
)
from kubectl_vcerts.pki.renew import (
    Signer,
    check_validity,
    describe_changes,
    read_leaves,
    reissue_leaves,
    require_key,
)
from kubectl_vcerts.pki.sans import SanConfig, expected_sans
from kubectl_vcerts.pki.stage_state import (
    ORDER,
    Stage,
    StagedState,
    bundle_holds_only_old,
    next_key,
    staged_state,
    switch_parts,
)

ADMIN = "admin.conf"

_HINT = ("restore the backup taken before the last phase (`kubectl vcerts rotate-ca NAME --phase "
         "rollback`), or restore any earlier backup with `kubectl vcerts restore`")


def _families(data: Mapping[str, bytes]) -> tuple[str, ...]:
    return ("ca", *(("server-ca",) if is_split(data) else ()), "front-proxy-ca", "etcd-ca")


def _bundle(data: Mapping[str, bytes], family: str) -> list[x509.Certificate]:
    raw = data.get(f"{family}.crt")
    if not raw:
        raise InvalidPkiError(f"{family}.crt is missing from the PKI", hint=_HINT)
    try:
        return load_certificates(raw)
    except ValueError as exc:
        raise InvalidPkiError(f"{family}.crt cannot be parsed ({exc})", hint=_HINT) from exc


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(cert_pem(c) for c in certs)


def _new_ca(old: x509.Certificate, key: PrivateKey, *, now: datetime,
            validity: timedelta) -> x509.Certificate:
    return clone_certificate(old, public_key=key.public_key(), signer=key, issuer=None,
                             not_before=now - BACKDATE, not_after=now + validity)


def _copies(new: dict[str, bytes], actions: dict[str, str], *, split: bool) -> None:
    """client-ca.* (and server-ca.* unless split) are byte copies of ca.* — the whole bundle, a pool."""
    for copy in ("client-ca", *(() if split else ("server-ca",))):
        new[f"{copy}.crt"], new[f"{copy}.key"] = new["ca.crt"], new["ca.key"]
        actions[f"{copy}.crt"] = actions[f"{copy}.key"] = "copied"


def _serving(new: Mapping[str, bytes], *, split: bool) -> tuple[str, bytes]:
    key = "server-ca.crt" if split else "ca.crt"
    return key, new[key]


def _change(old: Mapping[str, bytes], new: dict[str, bytes], actions: Mapping[str, str]) -> PkiChange:
    return PkiChange(data=new, changes=describe_changes(old, new, actions),
                     ca_fingerprint=ca_fingerprint(new))


def stage_trust(data: Mapping[str, bytes], *, now: datetime, ca_validity: timedelta = timedelta(days=3650),
                leaf_validity: timedelta = timedelta(days=365), byo_ca: CaMaterial | None = None,
                allow_short: bool = False, refresh_sans: SanConfig | None = None) -> PkiChange:
    """Phase trust: every CA file holds old and new (old first, still signing); the leaves are re-issued
    by the old CAs (fresh validity keeps vCluster's start-up renewal, which would drop the new keys
    kept aside, away) and the kubeconfigs trust both."""
    check_validity(leaf_validity, allow_short=allow_short)
    check_validity(ca_validity, allow_short=allow_short, what="CA validity")
    under_way = staged_state(data)
    if under_way is not None:
        raise InvalidPkiError(f"the PKI is not ready for the trust phase: the last phase done is "
                              f"{under_way.phase}", hint=_HINT)
    split = is_split(data)
    if split and byo_ca is not None:
        raise UnsupportedError(
            "a staged rotation with --ca-cert/--ca-key cannot keep this PKI's split server CA "
            "(server-ca.crt differs from ca.crt: a vCluster migrated from k3s)",
            hint="run the staged rotation without --ca-cert/--ca-key, or bring your CA with a "
            "one-step `rotate-ca --ca-cert ... --ca-key ...`",
        )
    sans = expected_sans(refresh_sans) if refresh_sans is not None else None
    new: dict[str, bytes] = dict(data)
    actions: dict[str, str] = {}
    signers: dict[str, Signer] = {}
    with KeyPool() as pool:
        bundles = {family: _bundle(data, family) for family in _families(data)}
        keys = {family: require_key(data, f"{family}.key") for family in bundles}
        pending = {family: pool.submit(public_key_of(b[0])) for family, b in bundles.items()
                   if not (family == "ca" and byo_ca is not None)}
        leaves = read_leaves(data, pool)
        for family, bundle in bundles.items():
            if family == "ca" and byo_ca is not None:
                added, key = load_certificates(byo_ca.bundle_pem), byo_ca.key
                action = "byo-ca"
            else:
                key = pending[family].result()
                added, action = [_new_ca(bundle[0], key, now=now, validity=ca_validity)], "new-ca"
            new[f"{family}.crt"] = _pem(bundle) + _pem(added)
            new[next_key(family)] = key_pem(key, like=data.get(f"{family}.key"))
            actions[f"{family}.crt"] = actions[next_key(family)] = action
            signers[f"{family}.crt"] = Signer(f"{family}.crt", bundle[0], keys[family])
        _copies(new, actions, split=split)
        serving_ca, serving_pem = _serving(new, split=split)
        reissued = reissue_leaves(data, signers, now=now, validity=leaf_validity, serving_ca=serving_ca,
                                  serving_ca_pem=serving_pem, leaves=leaves, sans=sans)
    new.update(reissued)
    actions.update(dict.fromkeys(reissued, "renewed"))
    new = admin_on_new_ca(new, now=now, validity=leaf_validity)
    actions[ADMIN] = "reissued"
    return _change(data, new, actions)


def admin_on_new_ca(data: Mapping[str, bytes], *, now: datetime,
                    validity: timedelta = timedelta(days=365)) -> dict[str, bytes]:
    """In trust, admin.conf's client certificate comes from the new CA (kept aside): every client CA pool
    holds it, and what is handed out from it — vc-NAME, --kubeconfig-out, --update-kubeconfig — then
    outlives finish. A leaf renewal in the window keeps it so. Outside trust: ``data`` as it is."""
    state = staged_state(data)
    if state is None or state.phase is not Stage.TRUST:
        return dict(data)
    key = require_key(data, next_key("ca"))
    ca = next(c for c in _bundle(data, "ca")[1:] if key_matches(public_key_of(c), key))
    serving_ca, serving_pem = _serving(data, split=is_split(data))
    with KeyPool() as pool:
        admin = [r for r in read_leaves(data, pool)
                 if isinstance(r, InvalidPkiError) or r.item.secret_key == ADMIN]
        return {**data, **reissue_leaves(data, {"ca.crt": Signer("ca.crt", ca, key)}, now=now,
                                         validity=validity, serving_ca=serving_ca, serving_ca_pem=serving_pem,
                                         leaves=admin)}


def _require(data: Mapping[str, bytes], phase: Stage) -> StagedState:
    state = staged_state(data)
    if state is None or state.next is not phase:
        done = "no staged rotation is under way" if state is None else f"the last phase done is {state.phase}"
        raise InvalidPkiError(f"the PKI is not ready for the {phase} phase: {done}", hint=_HINT)
    return state


def stage_switch(data: Mapping[str, bytes], *, now: datetime, leaf_validity: timedelta = timedelta(days=365),
                 allow_short: bool = False, refresh_sans: SanConfig | None = None) -> PkiChange:
    """Phase switch: the new CAs sign (first in each file as N×O, so old trust stores verify them),
    every leaf and kubeconfig client certificate is re-issued by them; the old CAs stay trusted."""
    check_validity(leaf_validity, allow_short=allow_short)
    _require(data, Stage.SWITCH)
    split = is_split(data)
    sans = expected_sans(refresh_sans) if refresh_sans is not None else None
    new: dict[str, bytes] = dict(data)
    actions: dict[str, str] = {}
    signers: dict[str, Signer] = {}
    for family in _families(data):
        bundle = _bundle(data, family)
        old_key = require_key(data, f"{family}.key")
        key = require_key(data, next_key(family))
        at = next((i for i, c in enumerate(bundle) if i and key_matches(public_key_of(c), key)), None)
        if at is None:
            raise InvalidPkiError(f"{next_key(family)} belongs to no certificate of {family}.crt", hint=_HINT)
        old, added = bundle[:at], bundle[at:]
        ours = added[0]
        crossed = clone_certificate(ours, public_key=key.public_key(), signer=old_key, issuer=old[0],
                                    not_before=ours.not_valid_before_utc, not_after=ours.not_valid_after_utc,
                                    key_id_of_issuer=True)
        new[f"{family}.crt"] = cert_pem(crossed) + _pem(old) + _pem(added)
        new[f"{family}.key"] = data[next_key(family)]
        del new[next_key(family)]
        actions[f"{family}.crt"] = actions[f"{family}.key"] = "switched"
        actions[next_key(family)] = "removed"
        signers[f"{family}.crt"] = Signer(f"{family}.crt", crossed, key)
    _copies(new, actions, split=split)
    serving_ca, serving_pem = _serving(new, split=split)
    reissued = reissue_leaves(data, signers, now=now, validity=leaf_validity, serving_ca=serving_ca,
                              serving_ca_pem=serving_pem, sans=sans)
    new.update(reissued)
    actions.update(dict.fromkeys(reissued, "reissued"))
    return _change(data, new, actions)


def stage_finish(data: Mapping[str, bytes]) -> PkiChange:
    """Phase finish: the old CAs (and N×O) leave every bundle and the kubeconfigs' CA data; the leaves
    stay as switch issued them. Only now does what trusts or was issued by the old CA stop working."""
    _require(data, Stage.FINISH)
    split = is_split(data)
    new: dict[str, bytes] = dict(data)
    actions: dict[str, str] = {}
    for family in _families(data):
        bundle = _bundle(data, family)
        parts = switch_parts(bundle)
        if parts is None:
            raise InvalidPkiError(f"{family}.crt is not in the switch phase like ca.crt", hint=_HINT)
        new[f"{family}.crt"] = _pem(parts[2])
        actions[f"{family}.crt"] = "old-ca-dropped"
    _copies(new, actions, split=split)
    _, serving_pem = _serving(new, split=split)
    for item in KUBECONFIGS:
        raw = data.get(item.secret_key)
        if raw:
            try:
                new[item.secret_key] = replace_ca_data(raw, serving_pem)
            except ValueError as exc:
                raise InvalidPkiError(f"{item.secret_key} is not a usable kubeconfig ({exc})",
                                      hint=_HINT) from exc
            actions[item.secret_key] = "old-ca-dropped"
    return _change(data, new, actions)


__all__ = [
    "ADMIN",
    "ORDER",
    "Stage",
    "StagedState",
    "admin_on_new_ca",
    "bundle_holds_only_old",
    "next_key",
    "stage_finish",
    "stage_switch",
    "stage_trust",
    "staged_state",
]
