"""Values that travel through the rotation layer with a complete NAME-certs never show its keys in a repr
(a repr reaches tracebacks with -v, test output and debugging sessions)."""

from __future__ import annotations

from kubectl_vcerts.rotation.ports import CaChange
from tests.unit.rotation_fakes import make_vcluster, pki_data, pki_start


def test_the_repr_of_a_ca_change_holds_no_private_key() -> None:
    data = dict(pki_data())
    assert any(b"PRIVATE KEY" in value for value in data.values())  # the fixture really holds keys
    change = CaChange(vcluster=make_vcluster(), operation="rotate-ca", old_ca_fingerprint="sha256:old",
                      new_ca_fingerprint="sha256:new", new_data=data, at=pki_start())
    text = repr(change)
    assert "PRIVATE KEY" not in text
    assert "sha256:new" in text
