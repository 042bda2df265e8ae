"""A real local Kubernetes control plane on 127.0.0.1, made of the binaries scripts/testbin builds.

`DevCluster` drives `kwokctl --runtime binary`: etcd, kube-apiserver (RBAC + default admission),
kube-controller-manager, kube-scheduler and the kwok controller, all bound to 127.0.0.1, every binary
path set so nothing is downloaded. Two fake nodes run pods: the scheduler binds them, kwok marks them
Running and Ready, the controller-manager recreates deleted StatefulSet pods. Used by the pytest
fixtures (tests/conftest.py), scripts/dev-cluster and scripts/demo.

Standard library only (so `scripts/dev-cluster` runs with any python3). Run as
`python -m tests.support.devcluster up|down|env [NAME]`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.testbin import testbin_dir

DEFAULT_NAME = "vcerts-test"
NODE_COUNT = 2
NODE_PREFIX = "kwok-node-"
# Label that makes the kwok stage below hold a pod in a container "waiting" state instead of Ready.
WAITING_REASON_LABEL = "vcerts.io/test-waiting-reason"
# Label of pods whose readiness the control-plane emulator sets (tests/support/emulator.py): kwok makes
# them Running with running containers that are not Ready, and leaves the rest to the emulator.
EMULATED_READINESS_LABEL = "vcerts.io/test-readiness"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")

_NOT_READY_STAGE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: NAME
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - jq:
        key: '.metadata.labels["LABEL"]'
        operator: Exists
    - jq:
        key: .metadata.deletionTimestamp
        operator: DoesNotExist
    - jq:
        key: .status.phase
        operator: In
        values:
        - Pending
  weight: 1000
  next:
    statusTemplate: |
      {{ $now := Now }}
LEAD      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
STATE
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"""


def _not_ready_stage(name: str, label: str, *, lead: str, state: str) -> str:
    """A stage for Pending pods carrying `label`: phase Running, not Ready, containers in `state`."""
    return (_NOT_READY_STAGE.replace("NAME", name).replace("LABEL", label).replace("LEAD", lead)
            .replace("STATE", state))


# Added to the default kwok stages: a pod labelled WAITING_REASON_LABEL=<reason> (e.g. CrashLoopBackOff)
# becomes phase Running with its containers waiting for <reason> and Ready=False, which is what a
# crash-looping pod looks like to `kubectl get pods` and to vCluster's status algorithm. Weight > 0
# makes kwok prefer it over the default pod-ready stage (weight 0) for such pods.
WAITING_STAGE = _not_ready_stage(
    "vcerts-pod-waiting", WAITING_REASON_LABEL,
    lead=f'      {{{{ $reason := index .metadata.labels "{WAITING_REASON_LABEL}" }}}}\n',
    state="""\
        started: false
        restartCount: 5
        state:
          waiting:
            reason: {{ $reason | Quote }}
            message: simulated by the kwok stage vcerts-pod-waiting""")

# A pod labelled EMULATED_READINESS_LABEL starts as a real one whose readiness probe does not pass yet:
# phase Running, containers running, Ready=False. kwok's own stages never touch a Running pod again, so
# the emulator's status patches (Ready once its plane answers, CrashLoopBackOff when it cannot) stay.
STARTING_STAGE = _not_ready_stage(
    "vcerts-pod-starting", EMULATED_READINESS_LABEL, lead="",
    state="""\
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}""")
STAGES = {"vcerts-pod-waiting": WAITING_STAGE, "vcerts-pod-starting": STARTING_STAGE}


def default_workdir() -> Path:
    """KWOK_WORKDIR for our clusters: under the user's cache, never inside the repository."""
    override = os.environ.get("VCERTS_KWOK_WORKDIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kubectl-vcerts" / "kwok"


def cluster_name_from_env() -> str:
    return os.environ.get("VCERTS_TEST_CLUSTER") or DEFAULT_NAME


class ClusterError(RuntimeError):
    """The local control plane could not be started, stopped or reached."""


def _node_manifest(name: str) -> dict[str, object]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            # kwok manages every node here (--manage-all-nodes); the annotation documents it.
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        # No taints: ordinary pods schedule here without tolerations.
        "spec": {},
        "status": {"allocatable": resources, "capacity": resources},
    }


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) has exited; it only waits to be reaped by its parent.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class DevCluster:
    """One named local cluster under KWOK_WORKDIR (default ~/.cache/kubectl-vcerts/kwok).

    Attributes: `name`, `kubeconfig` (Path; admin credentials, server https://127.0.0.1:<port>),
    `bin_dir` (the testbin directory), `workdir`, `cluster_dir`, `logs_dir`.

    Lifecycle:
      * `up()` creates the cluster, or starts its stopped components, or does nothing when it runs;
        then makes sure the nodes exist and are Ready. Returns True when it created or started something.
      * `down()` deletes the cluster: kwokctl stops exactly the processes recorded in the cluster's
        pid files (first checked to really be this cluster's processes) and removes its directory.
      * `is_running()` — every component process alive and the API server answering /readyz.

    API server restart, for tests that need the server to go away during a watch:
      * `stop_apiserver()` sends SIGTERM to this cluster's kube-apiserver (SIGKILL after 3 s), waits
        until it has exited and returns; etcd and the other components keep running.
      * `start_apiserver()` runs `kwokctl start cluster`, which starts only the components that are
        not running, and waits until the API server answers again.
      * `restart_apiserver()` does both. The port, certificates and data stay the same, so existing
        clients reconnect to the same URL. (kwokctl 0.8 has no per-component command; this is the
        same pid-file mechanism kwokctl itself uses.)

    Nodes: `kwok-node-0`, `kwok-node-1` (no taints), kept Ready by kwok through status heartbeats
    rather than node Leases, so a restarted kwok takes the nodes over at once. The scheduler and the
    controller-manager run without leader election (one instance each).

    Pods: `WAITING_REASON_LABEL` on a pod (value e.g. "CrashLoopBackOff") makes kwok report it
    phase Running with containers waiting for that reason and Ready=False.
    """

    def __init__(self, name: str = DEFAULT_NAME, *, bin_dir: Path | None = None,
                 workdir: Path | None = None) -> None:
        self.name = name
        self.workdir = workdir or default_workdir()
        self._bin_dir = bin_dir

    # --- paths -------------------------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = testbin_dir()
        return self._bin_dir

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def logs_dir(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def _config_path(self) -> Path:
        return self.workdir / f"{self.name}.kwokctl.yaml"

    def __repr__(self) -> str:
        return f"DevCluster(name={self.name!r}, kubeconfig={str(self.kubeconfig)!r})"

    # --- commands ----------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KWOK_WORKDIR"] = str(self.workdir)
        # kwokctl looks kubectl up on PATH first; make it ours.
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kwokctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / "kwokctl"), "--name", self.name, *args]
        result = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise ClusterError(
                f"kwokctl {' '.join(args)} failed ({result.returncode}) for cluster {self.name}: "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run this cluster's kubectl with its kubeconfig; output captured as text."""
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, input=input,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stderr.strip()[-2000:]}")
        return result

    def env_lines(self) -> list[str]:
        return [f"export KUBECONFIG={self.kubeconfig}", f"export VCERTS_TEST_CLUSTER={self.name}"]

    # --- state -------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.cluster_dir / "kwok.yaml").exists() and self.kubeconfig.exists()

    def _pid_file(self, component: str) -> Path:
        return self.cluster_dir / "pids" / f"{component}.pid"

    def component_pid(self, component: str) -> int | None:
        """Pid of a running component of THIS cluster, else None (stale pid files are removed)."""
        path = self._pid_file(component)
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        # Every component's command line names a file in this cluster's directory. A pid that does not
        # (an exited process whose number was reused) must never be signalled: drop the pid file.
        if not _pid_alive(pid) or str(self.cluster_dir) not in cmdline:
            path.unlink(missing_ok=True)
            return None
        return pid

    def _components_alive(self) -> bool:
        return all(self.component_pid(c) is not None for c in COMPONENTS)

    def _served(self) -> bool:
        try:
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def is_running(self) -> bool:
        return self.exists() and self._components_alive() and self._served()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down of the same cluster name across processes (pytest sessions, scripts)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / f"{self.name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- lifecycle ---------------------------------------------------------------------------------

    def _write_config(self) -> None:
        b = self.bin_dir
        config = {
            "kind": "KwokctlConfiguration",
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeAdmission": True,
                "kubeAuthorization": True,
                "kubeApiserverBinary": str(b / "kube-apiserver"),
                "kubeControllerManagerBinary": str(b / "kube-controller-manager"),
                "kubeSchedulerBinary": str(b / "kube-scheduler"),
                "kwokControllerBinary": str(b / "kwok"),
                "etcdBinary": str(b / "etcd"),
                "kubectlBinary": str(b / "kubectl"),
                # kwok serves pods/portforward for fake pods as its PortForward objects say (the
                # virtual-API port-forward fallback is tested with it); clusters created earlier
                # lack the CRD and those tests skip.
                "enableCRDs": ["PortForward"],
            },
            # One instance each: without leader election they schedule and reconcile as soon as they
            # start (no wait for a dead leader's lease) and never exit when an API server restart
            # outlasts the renew deadline.
            "componentsPatches": [
                {"name": name, "extraArgs": [{"key": "leader-elect", "value": "false"}]}
                for name in ("kube-controller-manager", "kube-scheduler")
            ],
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._config_path.write_text(json.dumps(config, indent=2) + "\n")

    def _add_stages(self) -> bool:
        """Append our stages missing from the cluster's kwok config (after kwokctl wrote the defaults)."""
        path = self.cluster_dir / "kwok.yaml"
        text = path.read_text()
        missing = [stage for name, stage in STAGES.items() if f"name: {name}\n" not in text]
        if not missing:
            return False
        path.write_text(text.rstrip("\n") + "".join("\n---\n" + stage for stage in missing))
        return True

    def _stop_component(self, component: str, *, grace: float = 20.0) -> None:
        pid = self.component_pid(component)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + grace
            time.sleep(0.1)
        self._pid_file(component).unlink(missing_ok=True)

    def _start_stopped(self) -> None:
        self.kwokctl("start", "cluster", "--timeout", "5m")

    def up(self) -> bool:
        """Create or start the cluster if needed and wait until it is usable. Idempotent."""
        with self._lock():
            changed = False
            if self.cluster_dir.exists() and not self.exists():
                # A create that was interrupted half-way: start over.
                self._delete()
            if not self.exists():
                self._write_config()
                # No node leases: a lease names the kwok process that holds it, so a restarted kwok
                # would leave the nodes (and their pods) alone until the old lease expired (200 s).
                self.kwokctl("-c", str(self._config_path), "create", "cluster", "--kubeconfig", "",
                             "--node-lease-duration-seconds", "0", "--wait", "2m", "--timeout", "5m")
                changed = True
            elif not (self._components_alive() and self._served()):
                self._start_stopped()
                changed = True
            if self._add_stages():
                # kwok reads its stages at start: restart only the kwok controller to load ours.
                self._stop_component("kwok-controller")
                self._start_stopped()
                changed = True
            self._wait_served()
            self._ensure_nodes()
            return changed

    def down(self) -> bool:
        """Delete the cluster (its processes and directory). Returns False when there was none."""
        with self._lock():
            if not self.cluster_dir.exists():
                return False
            self._delete()
            return True

    def _delete(self) -> None:
        for component in COMPONENTS:
            self.component_pid(component)  # drops pid files that are not this cluster's processes
        # Name the cluster's own kubeconfig: kwokctl would otherwise remove a context from the user's.
        self.kwokctl("delete", "cluster", "--kubeconfig", str(self.kubeconfig))
        self._config_path.unlink(missing_ok=True)

    def stop_apiserver(self) -> None:
        # The API server's graceful shutdown waits for open watches for ~20 s; tests only need it gone.
        self._stop_component("kube-apiserver", grace=3.0)

    def start_apiserver(self) -> None:
        self._start_stopped()
        self._wait_served()

    def restart_apiserver(self) -> None:
        self.stop_apiserver()
        self.start_apiserver()

    # --- readiness ---------------------------------------------------------------------------------

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        wait_until(check, timeout=timeout, interval=0.25, fail=lambda: ClusterError(
            f"cluster {self.name}: {what} not reached within {timeout:.0f}s; logs in {self.logs_dir}"))

    def _wait_served(self, timeout: float = 120) -> None:
        self._wait("API server /readyz", self._served, timeout)

    def node_names(self) -> list[str]:
        return [f"{NODE_PREFIX}{i}" for i in range(NODE_COUNT)]

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        ready = {
            item["metadata"]["name"]
            for item in json.loads(out.stdout)["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in item.get("status", {}).get("conditions", []))
        }
        return set(self.node_names()) <= ready

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def _ensure_nodes(self) -> None:
        manifest = {"apiVersion": "v1", "kind": "List",
                    "items": [_node_manifest(n) for n in self.node_names()]}
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self._wait("nodes Ready", self._nodes_ready, 120)
        # The controller-manager creates the `default` ServiceAccounts; pods need them to be admitted.
        self._wait("default ServiceAccount", self._default_service_account, 120)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: dev-cluster up|down|env|status [NAME]"
             "   (NAME defaults to $VCERTS_TEST_CLUSTER or vcerts-test)")
    if not args or args[0] not in {"up", "down", "env", "status"} or len(args) > 2:
        print(usage, file=sys.stderr)
        return 2
    cluster = DevCluster(args[1] if len(args) == 2 else cluster_name_from_env())
    try:
        if args[0] == "up":
            started = cluster.up()
            print(f"cluster {cluster.name} {'started' if started else 'already running'}; "
                  f"kubeconfig {cluster.kubeconfig}", file=sys.stderr)
            print("\n".join(cluster.env_lines()))
        elif args[0] == "down":
            gone = cluster.down()
            print(f"cluster {cluster.name} {'deleted' if gone else 'did not exist'}", file=sys.stderr)
        elif args[0] == "env":
            if not cluster.exists():
                print(f"cluster {cluster.name} does not exist; run: scripts/dev-cluster up {cluster.name}",
                      file=sys.stderr)
                return 1
            print("\n".join(cluster.env_lines()))
        else:
            running = cluster.is_running()
            print(f"cluster {cluster.name}: {'running' if running else 'not running'}")
            return 0 if running else 1
    except ClusterError as exc:
        print(f"dev-cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
