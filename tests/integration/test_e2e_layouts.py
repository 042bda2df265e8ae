"""End to end on layouts beyond the chart default, with the emulator playing every pod's start-up and
setting its readiness (Ready only once its plane answers), and deployed etcd as a REAL etcd on the
secret's files (CA read at start, key pair at every handshake):

* a Deployment with deployed etcd: a leaf rotation is a surge rollout, and a kubeconfig saved before it
  lists namespaces at every moment — polled continuously, not only before and after;
* a CA change restarts etcd with the control plane: the data survives, the new vc-NAME works and the
  saved kubeconfig is refused;
* HA with 2 and 3 replicas: each replica runs its own start-up on its own volume, and a leaf rotation
  (one replica at a time) keeps the API answering throughout.
Probes are single requests on new connections (kubectl would retry a reset GET and hide a gap).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.e2e_support import emulated, kubectl, plugin, save_vc_kubeconfig, wait_serving
from tests.support.emulator import Emulator, Generation

pytestmark = pytest.mark.cluster


@dataclass
class Probes:
    """`kubectl get namespaces` with one kubeconfig, again and again, each result kept."""

    results: list[tuple[float, bool, str]] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[float, bool, str]]:
        return [r for r in self.results if not r[1]]


def one_request(kubeconfig: Path, workdir: Path) -> Callable[[], tuple[bool, str]]:
    """GET /api/v1/namespaces with the kubeconfig's server, CA and client certificate: one attempt on a
    new connection each time (kubectl would retry a GET whose connection was reset and hide a gap)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    trusted = base64.b64decode(cluster["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=trusted)
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "client.crt", workdir / "client.key"
    for path, field_name in ((cert, "client-certificate-data"), (key, "client-key-data")):
        path.touch(mode=0o600)
        path.write_bytes(base64.b64decode(user[field_name]))
    context.load_cert_chain(cert, key)
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)

    def request() -> tuple[bool, str]:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
        try:
            connection.request("GET", "/api/v1/namespaces")
            response = connection.getresponse()
            response.read()
            return response.status == 200, f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{type(exc).__name__}: {exc}"[:200]
        finally:
            connection.close()

    return request


@contextmanager
def probing(kubeconfig: Path, workdir: Path) -> Iterator[Probes]:
    with polling(one_request(kubeconfig, workdir)) as probes:
        yield probes


@contextmanager
def polling(request: Callable[[], tuple[bool, str]]) -> Iterator[Probes]:
    """`request` again and again on a thread (every 50 ms) while the block runs, each result kept."""
    probes = Probes()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            ok, detail = request()
            probes.results.append((time.monotonic(), ok, detail))
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield probes
    finally:
        stop.set()
        thread.join(timeout=60)


def serving_planes(emulator: Emulator) -> list[Generation]:
    return [g for g in emulator.generations if g.plane is not None and g.serving]


def wait_one_plane(emulator: Emulator, after: Generation, timeout: float = 60) -> Generation:
    """The newest plane serving, once it is the only one (the old pod gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        planes = serving_planes(emulator)
        if len(planes) == 1 and planes[0].number > after.number:
            return planes[0]
        time.sleep(0.2)  # polling the emulator's state, not timing an assertion
    raise AssertionError(f"planes still serving: {[g.number for g in serving_planes(emulator)]}")


def with_survivor(emulator: Emulator, tmp_path: Path) -> tuple[Generation, Path]:
    """Once the first plane serves: the kubeconfig saved from vc-NAME, and a ConfigMap `survivor` made
    through it — the data a restart must keep."""
    first = wait_serving(emulator, None)
    saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
    made = kubectl(saved, "create", "configmap", "survivor", "-n", "default")
    assert made.returncode == 0, made.stderr
    return first, saved


def survivor(kubeconfig: Path) -> Any:
    return kubectl(kubeconfig, "get", "configmap", "survivor", "-n", "default", "-o", "name")


@pytest.mark.parametrize("members", [1, 3])
def test_a_deployment_with_deployed_etcd_answers_at_every_moment_of_a_leaf_rotation(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, members: int
) -> None:
    """etcd's members keep running through a leaf rotation (their key pairs are swapped in place)."""
    vc = make_vcluster(persistence=False, deployed_etcd=True, etcd_replicas=members, emulated_readiness=True)
    assert vc.kind == "Deployment"
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first, saved = with_survivor(emulator, tmp_path)
        assert emulator.store is not None and len(emulator.store.cluster.members) == members
        starts = emulator.store.generation

        with probing(saved, tmp_path / "probe") as probes:
            result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "150s", "-o", "json")
            assert result.returncode == 0, result.stderr
            second = wait_one_plane(emulator, first)
        assert [s["group"] for s in json.loads(result.stdout)["restart"]["steps"]] == ["rollout"]
        assert len(probes.results) >= 20, "too few probes to show anything"
        assert probes.failures == [], f"{len(probes.failures)} of {len(probes.results)} probes failed"
        assert second.pod_uid != first.pod_uid and first.plane is None
        assert emulator.store.generation == starts, "no etcd member was restarted"
        # the data is in deployed etcd, not in the pod: the new pod's plane has it
        got = survivor(saved)
        assert got.stdout.strip() == "configmap/survivor", got.stderr


@pytest.mark.parametrize("members", [1, 3])
def test_a_ca_change_restarts_deployed_etcd_on_the_new_ca_and_keeps_its_data(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, members: int
) -> None:
    """Every member restarts on the new CA together (peers on different CAs refuse each other), each
    on its own volume: the cluster forms again with its data and takes writes."""
    vc = make_vcluster(persistence=False, deployed_etcd=True, etcd_replicas=members, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first, saved = with_survivor(emulator, tmp_path)
        assert emulator.store is not None
        etcd_before = emulator.store.generation

        result = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "150s", "-o", "json")
        assert result.returncode == 0, result.stderr
        steps = json.loads(result.stdout)["restart"]["steps"]
        assert [len([p for p in s["pods"] if "-etcd-" in p]) for s in steps] == [members]
        wait_one_plane(emulator, first)
        assert emulator.store.generation == etcd_before + members, "every member starts again on the new CA"
        assert all(m.alive for m in emulator.store.cluster.members.values())
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=first)
        got = survivor(fresh)
        assert got.stdout.strip() == "configmap/survivor", got.stderr
        wrote = kubectl(fresh, "create", "configmap", "after-the-change", "-n", "default")
        assert wrote.returncode == 0, wrote.stderr
        refused = kubectl(saved, "get", "namespaces")
        assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr


def wait_planes(emulator: Emulator, count: int, *, after: int = 0, timeout: float = 120) -> list[Generation]:
    """Exactly `count` planes serving, every one started after generation `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        planes = serving_planes(emulator)
        if len(planes) == count and all(g.number > after for g in planes):
            return planes
        time.sleep(0.2)  # polling the emulator's state, not timing an assertion
    raise AssertionError(f"serving: {[(g.number, g.pod_name) for g in serving_planes(emulator)]}, "
                         f"errors: {emulator.errors[-3:]}")


def through_each_replica(kubeconfig: Path, planes: list[Generation], *args: str) -> list[Any]:
    """`kubectl ARGS` once through every replica's own syncer (not the Service in front of them)."""
    return [kubectl(kubeconfig, "--server", g.syncer.server, *args) for g in planes if g.syncer is not None]


@pytest.mark.parametrize("replicas", [2, 3])
def test_every_ha_replica_starts_up_on_its_own_and_the_api_answers_through_a_leaf_rotation(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, replicas: int
) -> None:
    """The replicas are members of one REAL etcd cluster (embedded etcd): what one writes, every one
    reads, through the rolling restart too. With 3 members the API answers at every moment; with 2 the
    one left while the other restarts is no majority, and the plan says that the API pauses."""
    vc = make_vcluster(replicas=replicas, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        before = wait_planes(emulator, replicas)
        assert sorted(g.volume for g in before) == [f"claim-data-{vc.name}-{i}" for i in range(replicas)]
        assert sorted(g.member or "" for g in before) == [f"{vc.name}-{i}" for i in range(replicas)]
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        made = kubectl(saved, "create", "configmap", "survivor", "-n", "default")
        assert made.returncode == 0, made.stderr
        seen = through_each_replica(saved, before, "get", "configmap", "survivor", "-n", "default")
        assert [r.returncode for r in seen] == [0] * replicas, [r.stderr for r in seen]

        with probing(saved, tmp_path / "probe") as probes:
            result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "240s", "-o", "json")
            assert result.returncode == 0, result.stderr
            after = wait_planes(emulator, replicas, after=max(g.number for g in before))
        document = json.loads(result.stdout)
        steps = document["restart"]["steps"]
        assert [s["pods"] for s in steps] == [[f"{vc.name}-{i}"] for i in range(replicas)]
        majority = [n for n in document["notes"] if "not a majority" in n]
        if replicas == 2:
            assert majority and "leaves 1 of 2 etcd members running" in majority[0], document["notes"]
        else:
            assert majority == [], majority
            assert len(probes.results) >= 20, "too few probes to show anything"
            assert probes.failures == [], f"{len(probes.failures)} of {len(probes.results)} probes failed"
        # each replica came back on its own volume, from the renewed secret, and the data with it
        assert sorted(g.volume for g in after) == sorted(g.volume for g in before)
        seen = through_each_replica(saved, after, "get", "configmap", "survivor", "-n", "default")
        assert [r.returncode for r in seen] == [0] * replicas, [r.stderr for r in seen]


def test_restore_on_a_deployment_brings_the_old_ca_back_and_the_saved_kubeconfig_with_it(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(persistence=False, deployed_etcd=True, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first, saved = with_survivor(emulator, tmp_path)
        changed = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "150s", "-o", "json")
        assert changed.returncode == 0, changed.stderr
        second = wait_one_plane(emulator, first)
        assert kubectl(saved, "get", "namespaces").returncode != 0

        backup = json.loads(changed.stdout)["backup"]
        restored = plugin(host, vc.namespace, "restore", vc.name, "--backup", backup, "--yes",
                          "--timeout", "150s")
        assert restored.returncode == 0, restored.stderr
        wait_one_plane(emulator, second)
        got = survivor(saved)
        assert got.stdout.strip() == "configmap/survivor", got.stderr


def test_deployed_etcd_on_an_emptydir_really_loses_its_data_when_allowed_and_keeps_it_otherwise(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """The refusal is about something real: a leaf rotation keeps the members (and the data); the CA
    change the user allowed with --allow-data-loss restarts every member at once and the data is gone."""
    vc = make_vcluster(persistence=False, deployed_etcd=True, etcd_persistence=False, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first, saved = with_survivor(emulator, tmp_path)
        leaf = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "150s")
        assert leaf.returncode == 0, leaf.stderr
        second = wait_one_plane(emulator, first)
        got = survivor(saved)
        assert got.stdout.strip() == "configmap/survivor", got.stderr

        refused = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes")
        assert refused.returncode == 22, refused.stderr
        allowed = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--allow-data-loss",
                         "--timeout", "150s")
        assert allowed.returncode == 0, allowed.stderr
        wait_one_plane(emulator, second)
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=second)
        gone = survivor(fresh)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, (gone.stdout, gone.stderr)


def test_an_ha_ca_change_restarts_every_replica_on_the_new_ca(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(replicas=2, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        before = wait_planes(emulator, 2)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        out = tmp_path / "new.kubeconfig"
        # the address users reach the Service at (vc-NAME names the pod's own localhost:8443)
        result = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "240s",
                        "--kubeconfig-out", str(out), "--vcluster-server", emulator.service)
        assert result.returncode == 0, result.stderr
        wait_planes(emulator, 2, after=max(g.number for g in before))
        assert kubectl(out, "get", "namespaces").returncode == 0, "the --kubeconfig-out file must work"
        refused = kubectl(saved, "get", "namespaces")
        assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr


def on_delete(session: Any, vc: Any) -> None:
    """The StatefulSet's updateStrategy OnDelete, nothing staged (the template is unchanged)."""
    session.apps.patch_namespaced_stateful_set(vc.name, vc.namespace, {"spec": {"updateStrategy": {
        "type": "OnDelete", "rollingUpdate": None}}})


@pytest.mark.parametrize(
    ("layout", "planes", "prepare"),
    [
        pytest.param({"replicas": 2}, 2, None, id="HA, 2 replicas, embedded etcd"),
        pytest.param({"replicas": 3}, 3, None, id="HA, 3 replicas, embedded etcd"),
        pytest.param({"deployed_etcd": True, "etcd_replicas": 3}, 1, None, id="deployed etcd, 3 members"),
        pytest.param({}, 1, on_delete, id="StatefulSet under OnDelete"),
    ],
)
def test_rotate_rotate_ca_and_restore_keep_every_client_working_and_lose_nothing(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, layout: dict[str, Any],
    planes: int, prepare: Callable[[Any, Any], None] | None
) -> None:
    """One after the other on one vCluster of each layout: a leaf rotation keeps the saved kubeconfig
    working; the CA change hands out a kubeconfig that works and refuses the saved one; the restore of
    the backup taken before it makes the saved one work again. The data is there at every step."""
    vc = make_vcluster(emulated_readiness=True, **layout)
    if prepare is not None:
        prepare(kube_session, vc)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        running = wait_planes(emulator, planes)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        assert kubectl(saved, "create", "configmap", "survivor", "-n", "default").returncode == 0

        def step(*args: str) -> dict[str, Any]:
            nonlocal running
            result = plugin(host, vc.namespace, *args, vc.name, "--yes", "--timeout", "240s", "-o", "json")
            assert result.returncode == 0, f"{args[0]}: {result.stderr}"
            running = wait_planes(emulator, planes, after=max(g.number for g in running))
            document: dict[str, Any] = json.loads(result.stdout)
            return document

        step("rotate")
        assert survivor(saved).returncode == 0, "a leaf rotation keeps the saved kubeconfig working"
        out = tmp_path / "handed-out.kubeconfig"
        changed = step("rotate-ca", "--kubeconfig-out", str(out), "--vcluster-server", emulator.service)
        got = survivor(out)
        assert got.stdout.strip() == "configmap/survivor", got.stderr
        refused = kubectl(saved, "get", "namespaces")
        assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr
        step("restore", "--backup", changed["backup"])
        got = survivor(saved)
        assert got.stdout.strip() == "configmap/survivor", got.stderr
        assert kubectl(saved, "create", "configmap", "after-restore", "-n", "default").returncode == 0
        checked = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        assert checked.returncode == 0, checked.stdout
        assert json.loads(checked.stdout)["notRestarted"] is None
