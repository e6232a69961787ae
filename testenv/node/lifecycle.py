"""One Pod's life on this node: sandbox, init containers, sidecars, containers, status, deletion.

A :class:`PodWorker` thread owns one Pod. Each pass of its loop compares what should run with what
runs, starts or restarts what is missing (with the kubelet's back-off), and publishes the status
the kubelet would (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/):

- sandbox first (network namespace, volumes; ``PodReadyToStartContainers``), then init containers
  one at a time, sidecars (init containers with ``restartPolicy: Always``) kept running, then the
  regular containers together;
- restarts follow ``restartPolicy`` with the kubelet's crash back-off (10 s doubling to 300 s,
  reset after 10 minutes of running): ``CrashLoopBackOff`` while waiting;
- an image that cannot be pulled (or is missing from the table) is ``ErrImagePull`` and then ``ImagePullBackOff``;
- phase, conditions, container statuses, Pod IP and host IP as the kubelet reports them;
- on ``deletionTimestamp``: preStop hook, SIGTERM, the rest of the grace period, SIGKILL, then the
  Pod object is deleted with grace 0 and every trace of it is removed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testenv.node import downward, exits, network, probes, processes, sandbox
from testenv.node.container_logs import ContainerLog, tail_text
from testenv.node.env import EnvError, EnvResolver, command_line
from testenv.node.images import ImageConfig, ImageNotFound
from testenv.node.kubeapi import ApiError
from testenv.node.volumes import PodVolumes, VolumeError

if TYPE_CHECKING:
    from testenv.node.agent import NodeAgent

JsonObj = dict[str, Any]
log = logging.getLogger("testenv.node")

BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
BACKOFF_RESET_SECONDS = 600.0
MINIMUM_GRACE_AFTER_HOOK_SECONDS = 2.0
# How long a relay may take to reap its killed init and end before it is killed itself.
RELAY_EXIT_SECONDS = 5.0
DEFAULT_GRACE_SECONDS = 30
VOLUME_RETRY_SECONDS = 2.0
# A backstop only: container exits (exits.py), probe results and watch events wake a worker at once.
IDLE_RESYNC_SECONDS = 5.0
TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LINES = 80
# How long a failed container's last output may take to reach its log, for FallbackToLogsOnError.
LOG_DRAIN_SECONDS = 2.0


# The kubelet's wording for the commonest reasons a container has no log yet.
_WAITING_LOG_MESSAGES = {
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


class LogUnavailable(Exception):
    """A container's log cannot be served; ``status`` is the HTTP status the kubelet answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def now_rfc3339() -> str:
    """Current time as the API writes timestamps."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Backoff:
    """The kubelet's back-off for one container (or one image pull).

    No entry until the first retry: a container's first restart is immediate, and each later
    one waits ``delay`` from the event (the container's exit, or the last pull attempt), doubling
    up to the maximum; a long quiet spell starts over.
    """

    delay: float = 0.0
    last_update: float = 0.0

    def blocked_since(self, event: float) -> bool:
        """True while ``event`` (a monotonic time) is less than ``delay`` ago."""
        return self.delay > 0 and time.monotonic() - event < self.delay

    def step(self) -> None:
        """A retry happens now: lengthen the back-off for the next one."""
        now = time.monotonic()
        if not self.delay or now - self.last_update > BACKOFF_RESET_SECONDS:
            self.delay = BACKOFF_INITIAL_SECONDS
        else:
            self.delay = min(self.delay * 2, BACKOFF_MAX_SECONDS)
        self.last_update = now


@dataclass
class ContainerRun:
    """One running (or finished) instance of a container."""

    process: subprocess.Popen[bytes]
    log: ContainerLog
    container_dir: Path
    identity: sandbox.Identity
    env: dict[str, str]
    container_id: str
    started_monotonic: float
    started_at: str
    probes: dict[str, probes.ProbeWorker] = field(default_factory=dict)
    termination_file: Path = Path()
    finished_at: str = ""
    exit_code: int | None = None
    stopping: bool = False

    @property
    def running(self) -> bool:
        """True until the main process has been reaped."""
        return self.exit_code is None

    @property
    def started(self) -> bool:
        """Running, and the startup probe (if any) has succeeded."""
        startup = self.probes.get("startup")
        return self.running and (startup is None or bool(startup.result))

    @property
    def ready(self) -> bool:
        """Started, and the readiness probe (if any) says ready."""
        readiness = self.probes.get("readiness")
        return self.started and (readiness is None or bool(readiness.result))

    def stop_probes(self) -> None:
        """Stop every probe of this instance."""
        for worker in self.probes.values():
            worker.stop()


@dataclass
class ContainerSlot:
    """A container of the Pod spec across its restarts."""

    spec: JsonObj
    kind: str  # "init", "sidecar" or "regular"
    restart_count: int = 0
    run: ContainerRun | None = None
    last_terminated: JsonObj | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    backoff: Backoff = field(default_factory=Backoff)
    image_backoff: Backoff = field(default_factory=Backoff)
    image_id: str = ""
    finished_monotonic: float = 0.0

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec["name"])

    @property
    def succeeded(self) -> bool:
        """Its last instance exited 0 and none runs now."""
        return self.run is None and self.last_terminated is not None and self.last_terminated.get("exitCode") == 0

    @property
    def failed(self) -> bool:
        """Its last instance exited non-zero and none runs now."""
        return self.run is None and self.last_terminated is not None and self.last_terminated.get("exitCode") != 0


class PodWorker:
    """Runs one Pod until it is deleted (or the agent stops)."""

    def __init__(self, agent: NodeAgent, pod: JsonObj) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        self.key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.dir = agent.workdir / "pods" / self.uid
        self.wake = threading.Event()
        self.stop_requested = threading.Event()
        self.gone_from_api = False
        self.pod_network: network.PodNetwork | None = None
        self.volumes = PodVolumes(agent.api, pod, self.dir, agent.workdir)
        spec = pod["spec"]
        self.slots: list[ContainerSlot] = [
            ContainerSlot(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers", []) or []
        ] + [ContainerSlot(c, "regular") for c in spec.get("containers", [])]
        self.conditions: dict[str, JsonObj] = {}
        # Every instance's log by container ID, so earlier instances stay readable (``previous``).
        self.logs: dict[str, ContainerLog] = {}
        self.terminal = False
        self.start_time = pod.get("status", {}).get("startTime") or now_rfc3339()
        self._published: JsonObj | None = None
        self._volume_error = ""
        self._next_volume_sync = 0.0
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.key}", daemon=True)

    # ---- entry points used by the agent ---------------------------------------------------

    def update(self, pod: JsonObj) -> None:
        """A newer version of the Pod arrived from the watch.

        Only a change the worker must act on wakes it; echoes of its own status writes do not,
        so a state such as ``ErrImagePull`` stays visible until the next sync, as with a kubelet.
        """
        old_meta = self.pod["metadata"]
        self.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") != old_meta.get("deletionTimestamp") or meta.get(
            "generation"
        ) != old_meta.get("generation"):
            self.wake.set()

    def deleted(self) -> None:
        """The Pod object is gone from the API (force deletion): stop at once."""
        self.gone_from_api = True
        self.wake.set()

    def stop(self) -> None:
        """The agent is stopping: kill everything of this Pod without touching the API."""
        self.stop_requested.set()
        self.wake.set()

    # ---- the loop ---------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while True:
                if self.stop_requested.is_set():
                    self._teardown(remove_files=True)
                    return
                if self.gone_from_api:
                    self._kill_all(grace=0)
                    self._teardown(remove_files=True)
                    return
                if self.pod["metadata"].get("deletionTimestamp"):
                    self._terminate_gracefully()
                    return
                try:
                    delay = self._sync()
                except Exception:
                    # One bad pass (an API hiccup, a bug on one path) must not orphan the Pod.
                    log.exception("pod sync failed, retrying", extra={"pod": self.key})
                    delay = VOLUME_RETRY_SECONDS
                self.wake.wait(delay)
                self.wake.clear()
        except Exception:
            log.exception("pod worker failed", extra={"pod": self.key})
            self._teardown(remove_files=True)

    def _sync(self) -> float:
        """One reconcile pass; returns how long to wait before the next one at the latest."""
        if self.terminal:
            return IDLE_RESYNC_SECONDS
        if not self._ensure_sandbox():
            self._publish()
            return VOLUME_RETRY_SECONDS
        self._reap()
        self._enforce_probes()
        self._run_init_and_sidecars() and self._run_regular()
        if self._phase() in ("Succeeded", "Failed"):
            self._finish()
        self._publish()
        return self._next_wakeup()

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        deadlines = [s.finished_monotonic + s.backoff.delay - now for s in self.slots if s.run is None] + [
            s.image_backoff.last_update + s.image_backoff.delay - now for s in self.slots if s.run is None
        ]
        return max(0.05, min([IDLE_RESYNC_SECONDS, *(d for d in deadlines if d > 0)]))

    # ---- sandbox ------------------------------------------------------------------------

    def facts(self) -> downward.PodFacts:
        """The downward API's view of this Pod."""
        ip = self.pod_network.ip if self.pod_network else ""
        return downward.PodFacts(self.pod, ip, self.agent.net.node_ip, self.agent.allocatable)

    def _ensure_sandbox(self) -> bool:
        if self.pod_network is None:
            ip = self.agent.addresses.allocate(self.uid)
            self.pod_network = network.create_pod_network(self.agent.net, self.uid, ip)
            self._write_pod_files()
            self.conditions_set("PodReadyToStartContainers", True)
            log.info("sandbox ready", extra={"pod": self.key, "podIP": ip, "netns": self.pod_network.netns})
        if time.monotonic() >= self._next_volume_sync:
            try:
                self.volumes.sync(self.facts())
                self._volume_error = ""
                self._next_volume_sync = time.monotonic() + IDLE_RESYNC_SECONDS
            except (VolumeError, ApiError) as exc:
                self._volume_error = str(exc)
                log.warning("volume setup failed", extra={"pod": self.key, "error": str(exc)})
                self._next_volume_sync = time.monotonic() + VOLUME_RETRY_SECONDS
                for slot in self.slots:
                    if slot.run is None and not slot.last_terminated:
                        slot.waiting = ("ContainerCreating", "")
                return False
        return not self._volume_error

    def _write_pod_files(self) -> None:
        assert self.pod_network is not None
        meta, spec = self.pod["metadata"], self.pod["spec"]
        etc = self.dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        net = self.agent.net
        searches = f"{meta['namespace']}.svc.cluster.local svc.cluster.local cluster.local"
        (etc / "resolv.conf").write_text(f"nameserver {net.gateway_ip}\nsearch {searches}\noptions ndots:5\n")
        hostname = spec.get("hostname") or meta["name"]
        hosts = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
            f"{self.pod_network.ip}\t{hostname}",
        ]
        for alias in spec.get("hostAliases", []) or []:
            hosts.append(f"{alias['ip']}\t{chr(9).join(alias.get('hostnames', []))}")
        (etc / "hosts").write_text("\n".join(hosts) + "\n")
        (etc / "hostname").write_text(f"{hostname}\n")
        for name in ("resolv.conf", "hosts", "hostname"):
            (etc / name).chmod(0o644)

    # ---- containers ---------------------------------------------------------------------

    def _reap(self) -> None:
        for slot in self.slots:
            run = slot.run
            if run is None or run.process.poll() is None:
                continue
            run.exit_code = run.process.returncode
            if run.exit_code < 0:  # killed by a signal: the runtime reports 128 + signal
                run.exit_code = 128 - run.exit_code
            run.finished_at = now_rfc3339()
            slot.finished_monotonic = time.monotonic()
            run.stop_probes()
            # Whatever the container left running in the background ends with it, as in a runtime.
            self.agent.cgroups.kill_container(self.uid, run.container_dir.name)
            reason = "Completed" if run.exit_code == 0 else "Error"
            message = _read_limited(run.termination_file)
            start_error = sandbox.start_error(run.container_dir)
            if start_error and run.exit_code == sandbox.START_ERROR_EXIT_CODE:
                reason, message = "StartError", start_error
            elif (
                not message
                and run.exit_code != 0
                and slot.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            ):
                run.log.wait_until_complete(LOG_DRAIN_SECONDS)
                message = tail_text(run.log.path, FALLBACK_LOG_LINES, TERMINATION_MESSAGE_LIMIT)
            terminated: JsonObj = {
                "exitCode": run.exit_code,
                "reason": reason,
                "startedAt": run.started_at,
                "finishedAt": run.finished_at,
                "containerID": run.container_id,
            }
            if message:
                terminated["message"] = message
            slot.last_terminated = terminated
            slot.run = None
            slot.waiting = None
            log.info(
                "container exited",
                extra={"pod": self.key, "container": slot.name, "exitCode": run.exit_code, "reason": reason},
            )
            shutil.rmtree(run.container_dir, ignore_errors=True)

    def _enforce_probes(self) -> None:
        for slot in self.slots:
            run = slot.run
            if run is None or run.stopping:
                continue
            for kind in ("liveness", "startup"):
                worker = run.probes.get(kind)
                if worker is not None and worker.result is False:
                    log.info(
                        "probe failed, restarting container",
                        extra={"pod": self.key, "container": slot.name, "probe": kind, "message": worker.last_message},
                    )
                    self._stop_container(slot, self._grace_seconds(), run_pre_stop=True)
                    self._reap()
                    break

    def _restart_allowed(self, slot: ContainerSlot) -> bool:
        if slot.kind == "sidecar":
            return True
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if slot.kind == "init":
            return slot.failed and policy != "Never"
        if policy == "Always":
            return True
        return policy == "OnFailure" and slot.failed

    def _ensure_running(self, slot: ContainerSlot) -> None:
        """Start ``slot`` now, or mark why it waits (back-off, image, config)."""
        if slot.run is not None:
            return
        restarting = slot.last_terminated is not None
        if restarting and not self._restart_allowed(slot):
            return
        if restarting and slot.backoff.blocked_since(slot.finished_monotonic):
            message = (
                f"back-off {int(slot.backoff.delay)}s restarting failed "
                f"container={slot.name} pod={self.pod['metadata']['name']}_{self.pod['metadata']['namespace']}"
                f"({self.uid})"
            )
            slot.waiting = ("CrashLoopBackOff", message)
            return
        image_name = str(slot.spec.get("image", ""))
        try:
            image = self.agent.images.resolve(image_name, str(slot.spec.get("imagePullPolicy") or "IfNotPresent"))
        except ImageNotFound as exc:
            if slot.image_backoff.blocked_since(slot.image_backoff.last_update):
                slot.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image_name}": ErrImagePull: {exc}')
            else:
                slot.waiting = ("ErrImagePull", str(exc))
                slot.image_backoff.step()
                log.info("image pull failed", extra={"pod": self.key, "container": slot.name, "image": image_name})
            return
        slot.image_id = image.image_id or f"local://{image.repository}"
        try:
            self._start(slot, image)
        except (EnvError, sandbox.SandboxError, downward.DownwardError) as exc:
            slot.waiting = ("CreateContainerConfigError", str(exc))
            return
        if restarting:
            slot.restart_count += 1
            slot.backoff.step()

    def _start(self, slot: ContainerSlot, image: ImageConfig) -> None:
        assert self.pod_network is not None
        spec = slot.spec
        ident = sandbox.identity(self.pod, spec, image)
        env = EnvResolver(self.agent.api, self.facts()).environment(spec, image.env)
        argv = command_line(spec, image.entrypoint, image.cmd, env)
        instance = slot.restart_count + (1 if slot.last_terminated is not None else 0)
        container_dir = self.dir / "containers" / f"{slot.name}-{instance}"
        shutil.rmtree(container_dir, ignore_errors=True)
        container_dir.mkdir(parents=True)
        termination_file = self.dir / "termination" / f"{slot.name}-{instance}"
        termination_file.parent.mkdir(parents=True, exist_ok=True)
        termination_file.write_bytes(b"")
        termination_file.chmod(0o666)  # written by the container's own uid
        etc = self.dir / "etc"
        file_binds = [
            {"source": str(etc / name), "target": f"/etc/{name}", "readonly": True}
            for name in ("resolv.conf", "hosts", "hostname")
        ]
        file_binds += [
            {"source": str(source), "target": target, "readonly": True} for source, target in image.image_files
        ]
        file_binds.append(
            {
                "source": str(termination_file),
                "target": spec.get("terminationMessagePath") or sandbox.DEFAULT_TERMINATION_MESSAGE_PATH,
                "readonly": False,
            }
        )
        security = spec.get("securityContext") or {}
        cgroup_name = f"{slot.name}-{instance}"
        plan = sandbox.LaunchPlan(
            container_dir=container_dir,
            netns_path=self.pod_network.netns_path,
            hostname=str(self.pod["spec"].get("hostname") or self.pod["metadata"]["name"]),
            argv=argv,
            env=env,
            working_dir=spec.get("workingDir") or image.working_dir,
            identity=ident,
            mounts=sandbox.volume_mounts(spec, {n: self.volumes.host_path(n) for n in self._volume_names()}),
            file_binds=file_binds,
            runtime_paths=[str(p) for p in image.runtime_paths],
            readonly_root=bool(security.get("readOnlyRootFilesystem", False)),
            cgroup_procs=self.agent.cgroups.create(self.uid, cgroup_name),
            termination_message_file=termination_file,
            image_root=image.rootfs,
        )
        process = sandbox.start(plan)
        started = time.monotonic()
        container_id = f"bluegreen://{self.uid[:8]}-{slot.name}-{instance}"
        container_log = self.logs[container_id] = ContainerLog(self.dir / "logs" / slot.name / f"{instance}.log")
        assert process.stdout is not None and process.stderr is not None
        container_log.capture({"stdout": process.stdout, "stderr": process.stderr})
        # The exit is reaped (and the next init container started) the moment it happens.
        exits.notify_on_exit(process.pid, self.wake.set, name=f"{self.key}/{slot.name}")
        run = ContainerRun(
            process=process,
            log=container_log,
            container_dir=container_dir,
            identity=ident,
            env=env,
            container_id=container_id,
            started_monotonic=started,
            started_at=now_rfc3339(),
            termination_file=termination_file,
        )
        ports = {p["name"]: int(p["containerPort"]) for p in spec.get("ports", []) or [] if p.get("name")}
        pid = process.pid

        def exec_prefix(cmd: list[str]) -> list[str]:
            return sandbox.exec_argv(pid, ident, env, cmd)

        target = probes.ProbeTarget(pod_ip=self.pod_network.ip, ports=ports, exec_prefix=exec_prefix)
        for kind in ("startup", "readiness", "liveness"):
            probe = spec.get(f"{kind}Probe")
            if probe:
                may_run = (lambda: True) if kind == "startup" else (lambda r=run: r.started)
                run.probes[kind] = probes.ProbeWorker(kind, probe, target, started, may_run, self.wake.set)
        slot.run = run
        slot.waiting = None
        for worker in run.probes.values():
            worker.start()
        log.info(
            "container started",
            extra={"pod": self.key, "container": slot.name, "pid": process.pid, "argv": argv, "restart": instance},
        )

    def _volume_names(self) -> list[str]:
        return [v["name"] for v in self.pod["spec"].get("volumes", []) or []]

    def _run_init_and_sidecars(self) -> bool:
        """Advance the init sequence; True once every init container is done and sidecars started."""
        for slot in self.slots:
            if slot.kind == "regular":
                continue
            if slot.kind == "sidecar":
                self._ensure_running(slot)
                if slot.run is None or not slot.run.started:
                    return False
                continue
            if slot.succeeded:
                continue
            if slot.run is None:
                self._ensure_running(slot)
            return False
        self.conditions_set("Initialized", True)
        return True

    def _run_regular(self) -> bool:
        for slot in self.slots:
            if slot.kind == "regular":
                self._ensure_running(slot)
        return True

    # ---- phase and status ---------------------------------------------------------------

    def _phase(self) -> str:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        inits = [s for s in self.slots if s.kind == "init"]
        if policy == "Never" and any(s.failed for s in inits):
            return "Failed"
        if not all(s.succeeded for s in inits):
            return "Pending"
        regular = [s for s in self.slots if s.kind == "regular"]
        if any(s.run is None and s.last_terminated is None for s in regular):
            return "Pending"
        if any(s.run is not None for s in regular):
            return "Running"
        # Every regular container has exited at least once and none runs right now.
        if policy == "Always" or (policy == "OnFailure" and any(s.failed for s in regular)):
            return "Running"
        return "Failed" if any(s.failed for s in regular) else "Succeeded"

    def conditions_set(self, kind: str, status: bool, reason: str = "", message: str = "") -> None:
        """Record a condition, keeping its transition time while its status stays the same."""
        value = "True" if status else "False"
        old = self.conditions.get(kind)
        if old and old["status"] == value and old.get("reason", "") == reason:
            return
        condition: JsonObj = {"type": kind, "status": value, "lastProbeTime": None}
        condition["lastTransitionTime"] = (
            old["lastTransitionTime"] if old and old["status"] == value else now_rfc3339()
        )
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        self.conditions[kind] = condition

    def _container_status(self, slot: ContainerSlot) -> JsonObj:
        run = slot.run
        status: JsonObj = {
            "name": slot.name,
            "image": slot.spec.get("image", ""),
            "imageID": slot.image_id,
            "ready": bool(run and run.ready and not run.stopping),
            "restartCount": slot.restart_count,
            "started": bool(run and run.started),
            "lastState": {},
        }
        if run is not None:
            status["containerID"] = run.container_id
            status["state"] = {"running": {"startedAt": run.started_at}}
            if slot.last_terminated:
                status["lastState"] = {"terminated": slot.last_terminated}
        elif slot.waiting is not None:
            waiting = {"reason": slot.waiting[0]}
            if slot.waiting[1]:
                waiting["message"] = slot.waiting[1]
            status["state"] = {"waiting": waiting}
            if slot.last_terminated:
                status["lastState"] = {"terminated": slot.last_terminated}
                status["containerID"] = slot.last_terminated["containerID"]
        elif slot.last_terminated is not None:
            status["state"] = {"terminated": slot.last_terminated}
            status["containerID"] = slot.last_terminated["containerID"]
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return status

    def log_of(self, container: str, previous: bool) -> ContainerLog:
        """The log ``kubectl logs`` means: the current (or last) instance, or with ``previous`` the one before.

        Raises :class:`LogUnavailable` with the kubelet's status and wording when there is none.
        Called from the kubelet server's threads; it only reads the worker's state.
        """
        pod_name = _go_quoted(self.pod["metadata"]["name"])
        slot = next((s for s in self.slots if s.name == container), None)
        name = _go_quoted(container)
        if slot is None:
            raise LogUnavailable(404, f"container {name} not found in pod {pod_name}")
        status = self._container_status(slot)
        state, last = status.get("state", {}), status.get("lastState", {})
        if previous:
            container_id = (last.get("terminated") or {}).get("containerID", "")
            if not container_id:
                raise LogUnavailable(400, f"previous terminated container {name} in pod {pod_name} not found")
        elif "running" in state or "terminated" in state:
            container_id = status.get("containerID", "")
        elif last.get("terminated"):
            container_id = last["terminated"].get("containerID", "")
        else:
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            reason = _WAITING_LOG_MESSAGES.get(reason, reason)
            raise LogUnavailable(400, f"container {name} in pod {pod_name} is waiting to start: {reason}")
        log = self.logs.get(container_id)
        if log is None:
            raise LogUnavailable(400, f"container {name} in pod {pod_name} has no log")
        return log

    def _status(self) -> JsonObj:
        phase = self._phase()
        init_slots = [s for s in self.slots if s.kind != "regular"]
        regular = [s for s in self.slots if s.kind == "regular"]
        incomplete = [
            s.name
            for s in init_slots
            if (s.kind == "init" and not s.succeeded) or (s.kind == "sidecar" and not (s.run and s.run.started))
        ]
        if incomplete:
            self.conditions_set(
                "Initialized",
                False,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            )
        else:
            self.conditions_set("Initialized", True)
        unready = [
            s.name for s in regular + [s for s in init_slots if s.kind == "sidecar"] if not (s.run and s.run.ready)
        ]
        if phase in ("Succeeded", "Failed"):
            self.conditions_set("ContainersReady", False, "PodCompleted")
            self.conditions_set("Ready", False, "PodCompleted")
        elif unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            self.conditions_set("ContainersReady", False, "ContainersNotReady", message)
            self.conditions_set("Ready", False, "ContainersNotReady", message)
        else:
            self.conditions_set("ContainersReady", True)
            self.conditions_set("Ready", True)
        self.conditions_set("PodScheduled", True)
        if "PodReadyToStartContainers" not in self.conditions:
            self.conditions_set("PodReadyToStartContainers", False)
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        status: JsonObj = {
            "phase": phase,
            "conditions": [self.conditions[k] for k in order if k in self.conditions],
            "hostIP": self.agent.net.node_ip,
            "hostIPs": [{"ip": self.agent.net.node_ip}],
            "startTime": self.start_time,
            "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
            "containerStatuses": [self._container_status(s) for s in regular],
        }
        if init_slots:
            status["initContainerStatuses"] = [self._container_status(s) for s in init_slots]
        if self.pod_network is not None:
            status["podIP"] = self.pod_network.ip
            status["podIPs"] = [{"ip": self.pod_network.ip}]
        if self._volume_error:
            status["message"] = self._volume_error
        return status

    def _publish(self) -> None:
        status = self._status()
        if status == self._published:
            return
        meta = self.pod["metadata"]
        try:
            self.agent.api.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": status}
            )
        except ApiError as exc:
            if exc.status == 404:
                self.gone_from_api = True
                return
            raise
        if self._published is None or self._published.get("phase") != status["phase"]:
            log.info("pod phase", extra={"pod": self.key, "phase": status["phase"]})
        self._published = status

    # ---- stopping -----------------------------------------------------------------------

    def _grace_seconds(self) -> float:
        meta_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if meta_grace is not None:
            return float(meta_grace)
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))

    def _stop_container(self, slot: ContainerSlot, grace: float, run_pre_stop: bool) -> None:
        """Run the preStop hook, then SIGTERM, wait out the grace period, SIGKILL (the kubelet's order)."""
        run = slot.run
        if run is None or not run.running:
            return
        run.stopping = True
        run.stop_probes()
        deadline = time.monotonic() + grace
        pre_stop = (slot.spec.get("lifecycle") or {}).get("preStop")
        if run_pre_stop and pre_stop and grace > 0:
            log.info("running preStop hook", extra={"pod": self.key, "container": slot.name})
            self._run_pre_stop(pre_stop, run, slot, deadline)
            # The kubelet leaves the container at least two seconds after a hook used up the grace.
            deadline = max(deadline, time.monotonic() + MINIMUM_GRACE_AFTER_HOOK_SECONDS)
        if grace > 0 and run.process.poll() is None:
            log.info("sending SIGTERM", extra={"pod": self.key, "container": slot.name, "pid": run.process.pid})
            with contextlib.suppress(ProcessLookupError):
                run.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if run.process.poll() is None:
            log.info("sending SIGKILL", extra={"pod": self.key, "container": slot.name, "pid": run.process.pid})
            processes.kill_container_init(run.process.pid)
            # The relay ends on its own once it has reaped the init; the kills below are for a relay that does not.
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=RELAY_EXIT_SECONDS)
        cgroup_name = Path(run.container_dir).name
        self.agent.cgroups.kill_container(self.uid, cgroup_name)
        with contextlib.suppress(ProcessLookupError):
            run.process.kill()
        run.process.wait()

    def _run_pre_stop(self, hook: JsonObj, run: ContainerRun, slot: ContainerSlot, deadline: float) -> None:
        remaining = max(0.0, deadline - time.monotonic())
        if "sleep" in hook:
            # The hook itself is a sleep of the requested length, bounded by the grace period.
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=min(float(hook["sleep"]["seconds"]), remaining))
            return
        ports = {p["name"]: int(p["containerPort"]) for p in slot.spec.get("ports", []) or [] if p.get("name")}
        assert self.pod_network is not None
        target = probes.ProbeTarget(
            self.pod_network.ip,
            ports,
            lambda cmd: sandbox.exec_argv(run.process.pid, run.identity, run.env, cmd),
        )
        ok, message = probes.run_handler(hook, target, timeout=remaining)
        if not ok:
            log.warning("preStop hook failed", extra={"pod": self.key, "container": slot.name, "message": message})

    def _kill_all(self, grace: float) -> None:
        threads = []
        for kind in ("regular", "sidecar", "init"):
            for slot in self.slots:
                if slot.kind == kind and slot.run is not None:
                    thread = threading.Thread(target=self._stop_container, args=(slot, grace, grace > 0), daemon=True)
                    thread.start()
                    threads.append(thread)
            # Sidecars outlive the containers they serve, as in the kubelet.
            for thread in threads:
                thread.join()
        self._reap()

    def _finish(self) -> None:
        """All regular containers are done for good: stop sidecars and release the sandbox."""
        for slot in self.slots:
            if slot.kind == "sidecar" and slot.run is not None:
                self._stop_container(slot, self._grace_seconds(), run_pre_stop=True)
        self._reap()
        self.terminal = True
        self._release_network()
        # Every process is gone, and with them the private mount namespaces that bound these dirs.
        self.volumes.tear_down()
        log.info("pod finished", extra={"pod": self.key, "phase": self._phase()})

    def _terminate_gracefully(self) -> None:
        grace = self._grace_seconds()
        log.info("terminating pod", extra={"pod": self.key, "grace": grace})
        self._kill_all(grace)
        with contextlib.suppress(ApiError):
            self._publish()
        meta = self.pod["metadata"]
        try:
            self.agent.api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
        log.info("pod deleted", extra={"pod": self.key})
        self._teardown(remove_files=True)

    def _release_network(self) -> None:
        if self.pod_network is not None:
            network.destroy_pod_network(self.agent.net, self.pod_network)
            self.agent.addresses.release(self.uid)

    def _teardown(self, remove_files: bool) -> None:
        for slot in self.slots:
            if slot.run is not None:
                slot.run.stop_probes()
        self.agent.cgroups.kill(self.uid)
        for slot in self.slots:
            if slot.run is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.run.process.kill()
                slot.run.process.wait()
        self._release_network()
        self.pod_network = None
        if remove_files:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.agent.forget(self.uid)


def _read_limited(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(TERMINATION_MESSAGE_LIMIT).decode(errors="replace")
    except OSError:
        return ""


def _go_quoted(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (the kubelet's messages quote names so)."""
    return json.dumps(text)
