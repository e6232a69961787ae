"""The node agent runs real Pods: probes, images, restarts, init order, env, volumes, the sandbox."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from testenv.node.images import repo_root
from tests.node_agent.conftest import (
    TOKEN_MOUNT,
    NodeEnv,
    condition,
    container_status,
    delete_pod,
    token_volume,
)

pytestmark = pytest.mark.controlplane

JsonObj = dict[str, Any]

DEMO_IMAGE = "ghcr.io/argo-bluegreen/demo-app:v7"
STEPS_IMAGE = "ghcr.io/argo-bluegreen/steps:0.1.0"


def _python(script: str) -> list[str]:
    """A container command running ``script`` with the checkout's Python (the steps image's)."""
    return ["python", "-c", script]


def test_demo_app_becomes_ready_and_answers_on_its_pod_ip(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.create_pod(
        ns,
        "web",
        {
            "containers": [
                {
                    "name": "app",
                    "image": DEMO_IMAGE,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
                }
            ]
        },
    )
    pod = node_env.wait_pod(ns, "web", "Ready", lambda p: condition(p, "Ready") == "True")
    assert pod is not None
    status = pod["status"]
    assert status["phase"] == "Running"
    assert status["hostIP"] == node_env.net.node_ip
    ip = status["podIP"]
    assert ip.startswith(f"10.244.{node_env.net.index}.")
    assert {c["type"] for c in status["conditions"]} >= {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodReadyToStartContainers",
    }
    with urllib.request.urlopen(f"http://{ip}:8080/version", timeout=5) as resp:
        body = json.load(resp)
    assert body["version"] == "v7"
    assert body["pod"] == "web"
    app = container_status(pod, "app")
    assert app["ready"] and app["started"] and "running" in app["state"]


def _terminated(pod: JsonObj | None, name: str, init: bool = False) -> JsonObj:
    return dict(container_status(pod, name, init).get("state", {}).get("terminated") or {})


def _succeeded_or_failed(pod: JsonObj | None) -> bool:
    return ((pod or {}).get("status") or {}).get("phase") in ("Succeeded", "Failed")


def test_unknown_image_reports_err_image_pull_then_image_pull_back_off(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    image = "registry.invalid/nobody/nothing:1"
    node_env.create_pod(ns, "bad", {"containers": [{"name": "app", "image": image}]})
    seen: set[str] = set()

    def reasons(pod: JsonObj | None) -> bool:
        waiting = container_status(pod, "app").get("state", {}).get("waiting") or {}
        if waiting.get("reason"):
            seen.add(waiting["reason"])
            if waiting["reason"] == "ImagePullBackOff":
                assert waiting["message"].startswith(f'Back-off pulling image "{image}"')
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    pod = node_env.wait_pod(ns, "bad", "ErrImagePull then ImagePullBackOff", reasons)
    assert pod is not None and pod["status"]["phase"] == "Pending"
    assert condition(pod, "Ready") == "False"


def test_crash_loop_backs_off_and_counts_restarts(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.create_pod(
        ns, "crash", {"containers": [{"name": "app", "image": STEPS_IMAGE, "command": _python("raise SystemExit(3)")}]}
    )
    seen_back_off = False

    def crashing(pod: JsonObj | None) -> bool:
        nonlocal seen_back_off
        status = container_status(pod, "app")
        waiting = status.get("state", {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            seen_back_off = True
            assert "restarting failed container=app" in waiting["message"]
        return seen_back_off and status.get("restartCount", 0) >= 2

    pod = node_env.wait_pod(ns, "crash", "CrashLoopBackOff with 2 restarts", crashing, timeout=90)
    last = container_status(pod, "app")["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert pod is not None and pod["status"]["phase"] == "Running"


SELF_REVIEW = """
import json, os, ssl, sys, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
req = urllib.request.Request(
    os.environ["API_SERVER"] + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
)
user = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["status"]["userInfo"]
open("/dev/termination-log", "w").write(user["username"] + " " + open(sa + "/namespace").read())
"""


def _token_pod_spec(api_server: str) -> JsonObj:
    return {
        "restartPolicy": "Never",
        "serviceAccountName": "default",
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
        "containers": [
            {
                "name": "main",
                "image": STEPS_IMAGE,
                "command": _python(SELF_REVIEW),
                "env": [{"name": "API_SERVER", "value": api_server}],
                "volumeMounts": [TOKEN_MOUNT],
            }
        ],
        "volumes": [token_volume()],
    }


def test_projected_token_authenticates_the_pod_to_the_api_server(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.create_pod(ns, "whoami", _token_pod_spec(node_env.server))
    pod = node_env.wait_pod(ns, "whoami", "completion", _succeeded_or_failed)
    terminated = _terminated(pod, "main")
    assert terminated.get("exitCode") == 0, terminated
    assert terminated["message"] == f"system:serviceaccount:{ns}:default {ns}"


def test_init_containers_run_in_order_before_the_main_container(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    append = "open('/work/order', 'a').write('{}\\n')"
    node_env.create_pod(
        ns,
        "ordered",
        {
            "restartPolicy": "Never",
            "initContainers": [
                {
                    "name": f"init-{i}",
                    "image": STEPS_IMAGE,
                    "command": _python(append.format(f"init-{i}")),
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
                for i in (1, 2)
            ],
            "containers": [
                {
                    "name": "main",
                    "image": STEPS_IMAGE,
                    "command": _python("open('/dev/termination-log','w').write(open('/work/order').read())"),
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
            ],
            "volumes": [{"name": "work", "emptyDir": {}}],
        },
    )
    pod = node_env.wait_pod(ns, "ordered", "completion", _succeeded_or_failed)
    assert pod is not None and pod["status"]["phase"] == "Succeeded"
    assert _terminated(pod, "main")["message"] == "init-1\ninit-2\n"
    for name in ("init-1", "init-2"):
        assert _terminated(pod, name, init=True)["reason"] == "Completed"
    assert condition(pod, "Initialized") == "True"
    assert condition(pod, "Ready") == "False"


def test_a_failing_init_container_fails_a_never_restart_pod(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.create_pod(
        ns,
        "init-fails",
        {
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": STEPS_IMAGE, "command": _python("raise SystemExit(2)")}],
            "containers": [{"name": "main", "image": STEPS_IMAGE, "command": _python("pass")}],
        },
    )
    pod = node_env.wait_pod(ns, "init-fails", "completion", _succeeded_or_failed)
    assert pod is not None and pod["status"]["phase"] == "Failed"
    assert _terminated(pod, "init", init=True)["exitCode"] == 2
    assert "waiting" in container_status(pod, "main")["state"]


GRACEFUL = """
import os, signal, sys, time
log = "/evidence/events"
def note(what):
    with open(log, "a") as f:
        f.write(f"{time.monotonic():.3f} {what}\\n")
def on_term(signum, frame):
    note("sigterm")  # and keep running: only SIGKILL ends this one
signal.signal(signal.SIGTERM, on_term)
note(f"started {os.getpid()} {os.readlink('/proc/self/ns/pid')}")
while True:
    time.sleep(0.1)
"""


def _processes_in(pid_namespace: str) -> list[int]:
    """The node's processes inside ``pid_namespace`` (a ``pid:[inode]`` link), seen from the host."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == pid_namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_deletion_runs_pre_stop_then_sigterm_then_sigkill_after_the_grace_period(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    evidence = node_env.workdir / "evidence" / ns
    evidence.mkdir(parents=True)
    evidence.chmod(0o777)
    note = "import time; open('/evidence/events','a').write(f'{time.monotonic():.3f} prestop\\n')"
    node_env.create_pod(
        ns,
        "graceful",
        {
            "terminationGracePeriodSeconds": 3,
            "containers": [
                {
                    "name": "app",
                    "image": STEPS_IMAGE,
                    "command": _python(GRACEFUL),
                    "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", note]}}},
                    "volumeMounts": [{"name": "evidence", "mountPath": "/evidence"}],
                }
            ],
            "volumes": [{"name": "evidence", "hostPath": {"path": str(evidence)}}],
        },
    )
    events = evidence / "events"
    node_env.wait_pod(ns, "graceful", "running", lambda p: events.exists() and "started" in events.read_text())
    _, _, pid, pid_namespace = events.read_text().split()
    # The program is PID 1 of a namespace of its own, as in any container runtime, and the SIGTERM still reaches it.
    assert pid == "1" and pid_namespace != os.readlink("/proc/self/ns/pid"), (pid, pid_namespace)
    assert _processes_in(pid_namespace), "the container's namespace is not where its processes are"
    delete_pod(node_env, ns, "graceful")
    node_env.wait_pod(ns, "graceful", "removal", lambda p: p is None, timeout=30)
    gone_at = time.monotonic()
    lines = [line.split() for line in events.read_text().splitlines()]
    kinds = [parts[1] for parts in lines]
    assert kinds == ["started", "prestop", "sigterm"], lines
    sigterm_at = float(lines[2][0])
    # The grace period (3 s) runs from deletion; SIGKILL comes only once it is over.
    assert gone_at - sigterm_at >= 2.0, (gone_at, sigterm_at)
    # The container's init is killed and reaped inside the container (by its relay) before the agent lets the Pod
    # go, as a runtime shim does. Left to the host's init, a zombie outlives the Pod for as long as that init pleases.
    assert _processes_in(pid_namespace) == []
    assert not (node_env.workdir / "pods").joinpath(ns).exists()


SIGNAL_NOTES = """
import signal, sys, time
log = "/evidence/" + sys.argv[1]
def note(what):
    with open(log, "a") as f:
        f.write(what + "\\n")
for received in (signal.SIGUSR1, signal.SIGTERM):
    signal.signal(received, lambda signum, frame: note(signal.Signals(signum).name))
note("started")
if sys.argv[1] == "sender":
    # What Argo's emissary does when it passes a stop signal on after its own child was reaped: pid -1.
    import os
    try:
        os.kill(-1, signal.SIGUSR1)
    except ProcessLookupError:  # nothing else in reach: the container's only process is this one
        pass
    note("sent")
while True:
    time.sleep(0.1)
"""


def test_a_signal_to_every_process_reaches_only_the_containers_own(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    evidence = node_env.workdir / "evidence" / ns
    evidence.mkdir(parents=True)
    evidence.chmod(0o777)

    def pod(name: str, role: str) -> None:
        node_env.create_pod(
            ns,
            name,
            {
                "terminationGracePeriodSeconds": 3,
                "containers": [
                    {
                        "name": "app",
                        "image": STEPS_IMAGE,  # both as the steps image's user, who may signal the other's processes
                        "command": [*_python(SIGNAL_NOTES), role],
                        "volumeMounts": [{"name": "evidence", "mountPath": "/evidence"}],
                    }
                ],
                "volumes": [{"name": "evidence", "hostPath": {"path": str(evidence)}}],
            },
        )

    bystander = evidence / "bystander"
    pod("bystander", "bystander")
    node_env.wait_pod(ns, "bystander", "running", lambda p: bystander.exists())
    sender = evidence / "sender"
    pod("sender", "sender")
    node_env.wait_pod(ns, "sender", "sent", lambda p: sender.exists() and "sent" in sender.read_text())
    # Stopping the bystander the kubelet's way: a SIGUSR1 from the sender, had it arrived, is noted before the SIGTERM.
    delete_pod(node_env, ns, "bystander")
    node_env.wait_pod(ns, "bystander", "removal", lambda p: p is None, timeout=30)
    assert bystander.read_text().split() == ["started", "SIGTERM"], bystander.read_text()
    delete_pod(node_env, ns, "sender", grace=0)


ENV_DUMP = """
import json, os
keys = [k for k in os.environ if k.startswith(("MY_", "FROM_", "KUBERNETES_SERVICE_"))] + ["HOSTNAME"]
open("/dev/termination-log", "w").write(json.dumps({k: os.environ.get(k) for k in keys}))
"""


def test_env_value_from_fields_resources_secrets_config_maps_and_expansion(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.api.create(
        f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    )
    node_env.api.create(
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "3"}},
    )

    def field(path: str) -> JsonObj:
        return {"fieldRef": {"fieldPath": path}}

    env = [
        {"name": "MY_NAME", "valueFrom": field("metadata.name")},
        {"name": "MY_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "MY_UID", "valueFrom": field("metadata.uid")},
        {"name": "MY_TEAM", "valueFrom": field("metadata.labels['team']")},
        {"name": "MY_NODE", "valueFrom": field("spec.nodeName")},
        {"name": "MY_SA", "valueFrom": field("spec.serviceAccountName")},
        {"name": "MY_POD_IP", "valueFrom": field("status.podIP")},
        {"name": "MY_HOST_IP", "valueFrom": field("status.hostIP")},
        {"name": "MY_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MY_MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
        {"name": "MY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MY_MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "MY_MISSING", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
        {"name": "MY_GREETING", "value": "$(MY_NAME) in $(MY_NAMESPACE) $$(MY_NAME) $(UNDEFINED)"},
    ]
    node_env.create_pod(
        ns,
        "env",
        {
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "main",
                    "image": STEPS_IMAGE,
                    "command": _python(ENV_DUMP),
                    "env": env,
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "FROM_"}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "96Mi"}},
                }
            ],
        },
        labels={"team": "platform"},
    )
    pod = node_env.wait_pod(ns, "env", "completion", _succeeded_or_failed)
    assert pod is not None
    terminated = _terminated(pod, "main")
    assert terminated["exitCode"] == 0, terminated
    seen = json.loads(terminated["message"])
    assert seen == {
        "MY_NAME": "env",
        "MY_NAMESPACE": ns,
        "MY_UID": pod["metadata"]["uid"],
        "MY_TEAM": "platform",
        "MY_NODE": node_env.agent.node_name,
        "MY_SA": "default",
        "MY_POD_IP": pod["status"]["podIP"],
        "MY_HOST_IP": node_env.net.node_ip,
        "MY_CPU": "1",
        "MY_MEM_MI": "96",
        "MY_PASSWORD": "s3cret",
        "MY_MODE": "fast",
        "MY_GREETING": f"env in {ns} $(MY_NAME) $(UNDEFINED)",
        "FROM_mode": "fast",
        "FROM_level": "3",
        "KUBERNETES_SERVICE_HOST": node_env.net.kubernetes_service_ip,
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "HOSTNAME": "env",
    }


def test_a_missing_required_secret_is_create_container_config_error(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    ref = {"secretKeyRef": {"name": "absent", "key": "x"}}
    node_env.create_pod(
        ns,
        "no-secret",
        {"containers": [{"name": "main", "image": STEPS_IMAGE, "env": [{"name": "X", "valueFrom": ref}]}]},
    )
    pod = node_env.wait_pod(
        ns,
        "no-secret",
        "CreateContainerConfigError",
        lambda p: (
            (container_status(p, "main").get("state", {}).get("waiting") or {}).get("reason")
            == "CreateContainerConfigError"
        ),
    )
    waiting = container_status(pod, "main")["state"]["waiting"]
    assert waiting["message"] == 'secret "absent" not found'


def _host_entries() -> dict[str, set[str]]:
    watched = ["/", "/var", "/var/run", "/tmp", str(repo_root()), str(repo_root().parent)]
    return {d: set(os.listdir(d)) for d in watched if os.path.isdir(d)}


def test_volumes_over_tmp_and_over_the_checkout_neither_hide_the_program_nor_touch_the_host(node_env: NodeEnv) -> None:
    """The trial's two traps: an emptyDir at /tmp (or above the checkout) and mount points on the host root."""
    ns = node_env.namespace()
    before = _host_entries()
    above_checkout = str(repo_root().parent)
    argo_mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        # A checkout directly under /tmp is already covered by the /tmp volume (paths must be unique in a Pod).
        *([{"name": "above-checkout", "mountPath": above_checkout}] if above_checkout != "/tmp" else []),
        {"name": "var-run-argo", "mountPath": "/var/run/argo"},
        {"name": "tmp", "mountPath": "/mainctrfs/tmp"},
        TOKEN_MOUNT,
    ]
    script = (
        "import os, steps;"
        "open('/tmp/written', 'w').write('x');"
        "open('/dev/termination-log', 'w').write(' '.join(sorted(os.listdir('/mainctrfs/tmp'))))"
    )
    node_env.create_pod(
        ns,
        "sandboxed",
        {
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "main",
                    "image": STEPS_IMAGE,
                    "command": _python(script),
                    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                    "volumeMounts": argo_mounts,
                }
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "above-checkout", "emptyDir": {}},
                {"name": "var-run-argo", "emptyDir": {}},
                token_volume(),
            ],
        },
    )
    pod = node_env.wait_pod(ns, "sandboxed", "completion", _succeeded_or_failed)
    terminated = _terminated(pod, "main")
    assert terminated.get("exitCode") == 0, terminated
    # A checkout under /tmp is bound over the /tmp volume, so its mount point shows in that volume beside the file.
    checkout = repo_root()
    mount_point = [checkout.relative_to("/tmp").parts[0]] if checkout.is_relative_to("/tmp") else []
    assert terminated["message"] == " ".join(sorted(["written", *mount_point]))
    after = _host_entries()
    for directory, entries in before.items():
        if directory == "/tmp":
            # Other tests of a parallel run come and go here: only what this Pod wrote must not appear, and what this
            # session keeps here must not be hidden.
            assert "written" not in after[directory]
            continue
        assert after[directory] == entries, directory
    assert node_env.workdir.exists() and repo_root().exists()
    assert not os.path.exists("/mainctrfs")
    assert not os.path.exists("/var/run/argo")


def test_a_bluegreen_step_runs_from_the_steps_image_entrypoint(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    node_env.create_pod(
        ns,
        "step-help",
        {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": STEPS_IMAGE,
                    "args": ["--help"],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    )
    pod = node_env.wait_pod(ns, "step-help", "completion", _succeeded_or_failed)
    assert _terminated(pod, "main").get("exitCode") == 0, pod
