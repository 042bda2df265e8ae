"""kube.client.connect on kubeconfigs it cannot use: a usage error naming the file, never its contents."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_vcerts.errors import ExitCode, NotFoundError, UsageError
from kubectl_vcerts.kube.client import KubeTarget, connect

# A kubeconfig line that holds (fake) key material right where the YAML breaks.
_BROKEN = (
    "apiVersion: v1\nusers:\n- name: u\n"
    "  user: {client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\n"
)


def test_a_kubeconfig_that_is_not_yaml_is_a_usage_error_without_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(_BROKEN)
    with pytest.raises(UsageError) as info:
        connect(KubeTarget(kubeconfig=str(path)))
    assert info.value.exit_code == ExitCode.USAGE
    assert str(path) in info.value.message
    assert "LS0t" not in info.value.message
    assert "client-key-data" not in info.value.message


def test_a_missing_kubeconfig_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        connect(KubeTarget(kubeconfig=str(tmp_path / "absent")))
