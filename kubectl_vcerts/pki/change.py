"""The result of a PKI operation: the complete new secret data and what changed in it.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EntryChange:
    """One secret key whose bytes change.

    ``action`` is a stable string: ``renewed`` (leaf or kubeconfig, same CA), ``reissued`` (leaf or
    kubeconfig under a new CA), ``new-ca`` (generated CA), ``byo-ca`` (CA supplied by the user),
    ``copied`` (server-ca/client-ca filled from ca). The workflow adds ``restored``/``removed``.
    """

    secret_key: str
    action: str
    old_not_after: datetime | None
    new_not_after: datetime | None


@dataclass(frozen=True)
class PkiChange:
    data: dict[str, bytes] = field(repr=False)  # the complete new secret data (holds private keys)
    changes: tuple[EntryChange, ...]
    ca_fingerprint: str
