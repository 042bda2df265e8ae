"""The staged CA rotation (rotate-ca --phase trust|switch|finish|rollback) on the real local cluster.

With the emulator (vCluster's start-up, the syncer's serving-certificate rules, readiness following the
plane): kubeconfigs polled continuously — one request on a new connection every 50 ms, not only
between phases — show that a kubeconfig saved before the rotation lists namespaces at every moment
until finish and is refused after it, and that one handed out in trust works at every moment through
switch and finish and after it. A ServiceAccount token checked against kube-root-ca.crt (what a pod
holds) is never refused. Without the emulator (kwok keeps the pods Ready): a run SIGKILLed after it
wrote each phase is finished by the next one, a rollback of each phase puts the PKI from before it
back, `check` shows the phase, and a phase out of order is refused (exit 23) leaving everything as is.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ExitCode
from kubectl_vcerts.pki import Status, inspect_pki
from kubectl_vcerts.pki.stage_state import Stage, staged_state
from tests.integration.e2e_support import (
    emulated,
    kubectl,
    plugin,
    read_secret,
    save_vc_kubeconfig,
    token_kubeconfig,
    wait_serving,
)
from tests.integration.rotation_support import backups, decode, run_cli, snapshot, start_cli
from tests.integration.test_crash_rotate import kill_paused
from tests.integration.test_e2e_k3s_migrated import assert_split
from tests.integration.test_e2e_layouts import Probes, polling, probing, wait_planes

pytestmark = pytest.mark.cluster

PHASES = ("trust", "switch", "finish")


def run_phase(host: Path, vc: Any, phase: str, *extra: str) -> dict[str, Any]:
    result = plugin(host, vc.namespace, "rotate-ca", vc.name, "--phase", phase, "--yes", "--timeout", "240s",
                    "-o", "json", *extra)
    assert result.returncode == 0, f"{phase}: {result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["stage"] == phase
    return doc


def before(probes: Probes, moment: float) -> list[tuple[float, bool, str]]:
    return [r for r in probes.results if r[0] < moment]


def test_old_kubeconfigs_work_at_every_moment_until_finish_and_trust_phase_ones_through_it(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    # 3 replicas: one restarting leaves 2 of 3 etcd members, a majority (with 2 the API pauses: the plan
    # says so)
    vc = make_vcluster(replicas=3, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        planes = wait_planes(emulator, 3)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        with probing(saved, tmp_path / "probe-saved") as old:
            trust = run_phase(host, vc, "trust", "--kubeconfig-out", str(tmp_path / "handed-out.kubeconfig"),
                              "--vcluster-server", _server(saved))
            assert trust["restart"]["mode"] == "rolling"
            planes = wait_planes(emulator, 3, after=max(g.number for g in planes))
            handed_out = tmp_path / "handed-out.kubeconfig"
            assert _trusted_count(handed_out) == 2  # old and new CA
            with probing(handed_out, tmp_path / "probe-new") as new:
                run_phase(host, vc, "switch")
                planes = wait_planes(emulator, 3, after=max(g.number for g in planes))
                # Go's verifier too (kubectl): the old CA alone verifies leaf -> new CA signed by the old
                for kubeconfig in (saved, handed_out):
                    got = kubectl(kubeconfig, "get", "namespaces")
                    assert got.returncode == 0, got.stderr
                finish_started = time.monotonic()
                finish = run_phase(host, vc, "finish")
                wait_planes(emulator, 3, after=max(g.number for g in planes))
                _more(old.results, 10)  # probes against the finished PKI alone
                _more(new.results, 10)
        assert len(before(old, finish_started)) >= 40, "too few probes to show anything"
        assert [r for r in before(old, finish_started) if not r[1]] == [], "the saved kubeconfig failed"
        assert len(new.results) >= 40 and new.failures == [], f"{len(new.failures)} of {len(new.results)}"
        # after finish the saved kubeconfig is refused: the old CA does not verify the server any more
        assert not old.results[-1][1] and "CERTIFICATE_VERIFY_FAILED" in old.results[-1][2], old.results[-1]
        refused = kubectl(saved, "get", "namespaces")
        assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr
        assert kubectl(handed_out, "get", "namespaces").returncode == 0
        assert finish["ca"]["newFingerprint"] == finish["ca"]["finalFingerprint"]
        data = read_secret(kube_session, vc.namespace, contract.certs_secret_name(vc.name))
        assert staged_state(data) is None and _trusted_count_pem(data["ca.crt"]) == 1


def test_deployed_etcd_members_restart_one_by_one_in_every_phase_and_keep_serving(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """Three REAL deployed-etcd members, each restarted alone in every phase (its trusted CA is read at
    start, its peers keep theirs): peers and API server keep talking, so a Deployment's saved
    kubeconfig lists namespaces at every moment until finish and the data takes writes after each."""
    vc = make_vcluster(persistence=False, deployed_etcd=True, etcd_replicas=3, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        wait_serving(emulator, None)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        assert emulator.store is not None
        members = emulator.store.cluster.members
        with probing(saved, tmp_path / "probe") as probes:
            for phase in ("trust", "switch"):
                starts = emulator.store.generation
                doc = run_phase(host, vc, phase)
                etcd_steps = [s["pods"] for s in doc["restart"]["steps"] if s["group"] == "etcd"]
                assert etcd_steps == [[f"{vc.name}-etcd-{i}"] for i in range(3)], doc["restart"]["steps"]
                assert emulator.store.generation == starts + 3 and all(m.alive for m in members.values())
                wrote = kubectl(saved, "create", "configmap", f"after-{phase}", "-n", "default")
                assert wrote.returncode == 0, wrote.stderr
        assert len(probes.results) >= 40, "too few probes to show anything"
        failed = probes.failures
        assert failed == [], f"{len(failed)} of {len(probes.results)}: {failed[:2]}"
        before_finish = wait_serving(emulator, None)
        run_phase(host, vc, "finish")
        assert all(m.alive for m in members.values())
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=before_finish)
        got = kubectl(fresh, "get", "configmap", "after-trust", "after-switch", "-n", "default", "-o", "name")
        assert got.returncode == 0, got.stderr
        assert kubectl(fresh, "create", "configmap", "after-finish", "-n", "default").returncode == 0


def test_a_pod_with_kube_root_ca_and_a_token_is_never_refused_and_check_follows_the_phases(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """One replica: each restart is a gap (as for a leaf renewal), never a refusal."""
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first = wait_serving(emulator, None)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        assert kubectl(saved, "create", "serviceaccount", "app", "-n", "default").returncode == 0
        token = kubectl(saved, "create", "token", "app", "-n", "default", "--duration", "2h")
        assert token.returncode == 0, token.stderr
        root_before = _root_ca(saved)
        run_phase(host, vc, "trust")
        generation = wait_serving(emulator, first)
        checked = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        assert json.loads(checked.stdout)["stagedRotation"]["next"] == "switch", checked.stderr
        # what a pod started now mounts: kube-root-ca.crt (both CAs) and its token
        root_ca = _root_ca(saved)
        assert _trusted_count_pem(root_ca) == 2
        pod = _with_ca(token_kubeconfig(saved, token.stdout.strip(), tmp_path / "pod.kubeconfig"), root_ca)
        with polling(_token_request(pod)) as seen:
            for phase in ("switch", "finish"):
                run_phase(host, vc, phase)
                generation = wait_serving(emulator, generation)
            _more(seen.results, 10)
        refusals = [r for r in seen.failures if r[2].startswith("refused")]
        assert refusals == [], refusals[:3]
        assert sum(1 for r in seen.results if r[1]) >= 20
        assert seen.results[-1][1], seen.results[-1]
        # the control: a pod whose kube-root-ca.crt was never refreshed since before trust is refused now
        stale = _with_ca(token_kubeconfig(saved, token.stdout.strip(), tmp_path / "stale.kubeconfig"),
                         root_before)
        ok, detail = _token_request(stale)()
        assert not ok and detail.startswith("refused"), detail
        checked = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        assert json.loads(checked.stdout)["stagedRotation"] is None


def test_a_k3s_migrated_vcluster_keeps_its_split_through_every_phase(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True, migrated_from_k3s=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        generation = wait_serving(emulator, None)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        from_trust: Path | None = None
        for phase in PHASES:
            previous = generation
            run_phase(host, vc, phase)
            generation = wait_serving(emulator, generation)
            certs = read_secret(kube_session, vc.namespace, vc.certs_secret)
            assert_split(certs)
            if from_trust is None:
                from_trust = save_vc_kubeconfig(emulator, tmp_path / "trust.kubeconfig", after=previous)
            old = kubectl(saved, "get", "namespaces")
            assert (old.returncode == 0) is (phase != "finish"), (phase, old.stderr)
            assert kubectl(from_trust, "get", "namespaces").returncode == 0, phase


def test_a_phase_killed_after_its_write_is_finished_by_the_next_run(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(replicas=2)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    for phase in PHASES:
        proc = start_cli(config, ns, "rotate-ca", name, "--phase", phase, "--yes", "--timeout", "90s",
                         env={"VCERTS_TEST_PAUSE_AFTER": "write"})
        kill_paused(proc, "write")
        assert contract.OPERATION_ANNOTATION in snapshot(kube_session, ns, name).annotations, phase
        again = run_cli(config, ns, "rotate-ca", name, "--phase", phase, "--yes", "--timeout", "90s")
        assert again.returncode == 0, f"{phase}: {again.stderr}"
        assert "finished an interrupted run" in again.stdout, phase
        after = snapshot(kube_session, ns, name)
        state = staged_state(after.data)
        assert (str(state.phase) if state else "finish") == phase
        assert contract.OPERATION_ANNOTATION not in after.annotations
        assert inspect_pki(after.data, now=_now()).worst is Status.OK, phase


def test_each_phase_rolls_back_to_the_pki_from_before_it_and_can_run_again(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    for phase in PHASES:
        previous = snapshot(kube_session, ns, name).data
        done = run_cli(config, ns, "rotate-ca", name, "--phase", phase, "--yes", "--timeout", "90s")
        assert done.returncode == 0, done.stderr
        undone = run_cli(config, ns, "rotate-ca", name, "--phase", "rollback", "--yes", "--timeout", "90s",
                         "-o", "json")
        assert undone.returncode == 0, undone.stderr
        doc = json.loads(undone.stdout)
        assert doc["stage"] == "rollback" and doc["operation"] == "restore"
        assert snapshot(kube_session, ns, name).data == previous, phase
        again = run_cli(config, ns, "rotate-ca", name, "--phase", phase, "--yes", "--timeout", "90s")
        assert again.returncode == 0, again.stderr
    labelled = sorted(b.metadata.annotations[contract.BACKUP_OPERATION_ANNOTATION]
                      for b in backups(kube_session, ns, name))
    assert {"rotate-ca:trust", "rotate-ca:switch", "rotate-ca:finish"} <= set(labelled)
    assert all(decode(b.data) for b in backups(kube_session, ns, name))


def test_a_phase_out_of_order_is_refused_and_leaves_everything_as_it_was(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    before_all = snapshot(kube_session, ns, name)
    refused = run_cli(config, ns, "rotate-ca", name, "--phase", "finish", "--yes")
    assert refused.returncode == ExitCode.STAGE_ORDER, refused.stderr
    assert "the finish phase of a staged CA rotation cannot run now" in refused.stderr
    assert f"--phase {Stage.TRUST}" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2  # one line, and its hint
    after = snapshot(kube_session, ns, name)
    assert after.data == before_all.data and after.pods == before_all.pods
    assert backups(kube_session, ns, name) == []
    nothing = run_cli(config, ns, "rotate-ca", name, "--phase", "rollback", "--yes")
    assert nothing.returncode == ExitCode.NOT_FOUND, nothing.stderr
    dry = run_cli(config, ns, "rotate-ca", name, "--phase", "trust", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "staged CA rotation, phase trust" in dry.stdout
    assert "existing kubeconfigs keep working" in dry.stdout
    due = run_cli(config, ns, "rotate-ca", name, "--staged", "--dry-run", "-o", "json")
    assert due.returncode == 0 and json.loads(due.stdout)["stage"] == "trust", due.stderr
    both = run_cli(config, ns, "rotate-ca", name, "--staged", "--phase", "trust", "--yes")
    assert both.returncode == ExitCode.USAGE and "--staged and --phase" in both.stderr
    assert snapshot(kube_session, ns, name).data == before_all.data


# ----------------------------------------------------------------------------------------- helpers
def _more(results: list[Any], count: int, timeout: float = 60) -> None:
    """Wait until the prober has added `count` more results (polling its list, not timing anything)."""
    target = len(results) + count
    deadline = time.monotonic() + timeout
    while len(results) < target and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(results) >= target, "the prober stopped"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _server(kubeconfig: Path) -> str:
    import yaml

    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


def _trusted_count_pem(pem: bytes) -> int:
    return pem.count(b"-----BEGIN CERTIFICATE-----")


def _trusted_count(kubeconfig: Path) -> int:
    import yaml

    doc = yaml.safe_load(kubeconfig.read_text())
    return _trusted_count_pem(base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]))


def _root_ca(kubeconfig: Path) -> bytes:
    got = kubectl(kubeconfig, "get", "configmap", "kube-root-ca.crt", "-n", "default", "-o",
                  "jsonpath={.data.ca\\.crt}")
    assert got.returncode == 0, got.stderr
    return got.stdout.encode()


def _with_ca(kubeconfig: Path, ca_pem: bytes) -> Path:
    import yaml

    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    kubeconfig.write_text(yaml.safe_dump(doc))
    return kubeconfig


def _token_request(kubeconfig: Path) -> Callable[[], tuple[bool, str]]:
    """GET /api (discovery: open to every authenticated user) with a bearer token, one attempt on a new
    connection: (True, ""), or False with "refused: …" (TLS verification or 401: what a trust change
    would cause) or "unavailable: …" (nothing listening, or not answering yet)."""
    import yaml

    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    trusted = base64.b64decode(cluster["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=trusted)
    headers = {"Authorization": f"Bearer {user['token']}"}
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)

    def request() -> tuple[bool, str]:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
        try:
            connection.request("GET", "/api", headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return True, ""
            return False, f"{'refused' if response.status == 401 else 'unavailable'}: HTTP {response.status}"
        except ssl.SSLCertVerificationError as exc:
            return False, f"refused: {exc}"[:200]
        except (OSError, http.client.HTTPException) as exc:
            return False, f"unavailable: {type(exc).__name__}: {exc}"[:200]
        finally:
            connection.close()

    return request
