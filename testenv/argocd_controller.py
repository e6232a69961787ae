"""The real Argo CD beside the local cluster: its application controller, repo server and Redis, as host processes.

``with ArgoCD(cluster, namespace) as argocd:`` applies the Application and AppProject CRDs of the pinned release
(``testenv/argocd.py`` builds the binary and copies them), creates the namespace with the settings Argo CD reads
(``argocd-cm``, ``argocd-secret``) and the ``default`` AppProject, then runs ``redis-server``, the repo server and the
application controller on the host, as the rollouts controller runs here. The controller uses the cluster's admin
kubeconfig both for its own objects and for the destination ``https://kubernetes.default.svc``: outside a Pod that
address means nothing, and Argo CD resolves it with ``rest.InClusterConfig()`` unless ``ARGOCD_FAKE_IN_CLUSTER`` is
set, which makes it read ``$KUBECONFIG`` instead (``Cluster.RawRestConfig`` in Argo CD's ``pkg/apis``).

No argocd-server runs: nothing here needs its API or UI, and Applications are plain objects a test applies. So the
``default`` AppProject, which the API server creates on start, is created here, and ``argocd-rbac-cm`` (read only by
the API server) is not.

Git repositories are local: :meth:`ArgoCD.git_repo` makes a bare repository and a working clone, and Applications
name the bare one by a ``file://`` URL, which the repo server clones like any remote (Argo CD's own end-to-end tests
do the same). Each instance stamps its namespace as ``installationID`` in ``argocd-cm``: Argo CD then tracks only the
objects carrying that ID, so two instances on the shared cluster never count each other's objects as their own (and
prune them).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from testenv import argocd
from testenv.controlplane import die_with_parent, free_port
from testenv.local_cluster import LocalCluster
from testenv.rest import KubeApiError, WatchStream, request

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
#: The destination server that means "the cluster this controller runs against".
IN_CLUSTER = "https://kubernetes.default.svc"
#: The annotation that asks the controller to compare an Application again now (``normal``), or to regenerate its
#: manifests from git first, ignoring the cached ones (``hard``); the controller removes it once done.
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
#: The annotation Argo CD stamps on every object it applies; its value names the Application.
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
#: The label that makes Argo CD's settings manager see a ConfigMap (its informer filters on it).
PART_OF = {"app.kubernetes.io/part-of": "argocd"}
#: Automated sync that prunes what git no longer holds and undoes edits made by hand.
AUTOMATED: Mapping[str, Any] = {"automated": {"prune": True, "selfHeal": True}}
APPLICATIONS = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications"
APPPROJECTS = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/appprojects"
# A fixed identity, so commits do not depend on the git configuration of whoever runs the tests.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "argo-bluegreen tests",
    "GIT_AUTHOR_EMAIL": "tests@argo-bluegreen.invalid",
    "GIT_COMMITTER_NAME": "argo-bluegreen tests",
    "GIT_COMMITTER_EMAIL": "tests@argo-bluegreen.invalid",
}
GIT_BRANCH = "main"


class ArgoCDError(RuntimeError):
    """Argo CD did not start, or an Application did not reach the state waited for; the message says what it saw."""


def missing_host_programs() -> list[str]:
    """The host programs Argo CD needs here that are not on PATH: its cache, and the git its repo server runs."""
    return [program for program in ("redis-server", "git") if shutil.which(program) is None]


def _git_env() -> dict[str, str]:
    env = dict(os.environ, **GIT_IDENTITY)
    # The user's and the system's git configuration (signing, hooks, default branch) must not change the commits.
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


def _git(args: Sequence[str], cwd: Path) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise ArgoCDError(f"`git {' '.join(args)}` in {cwd} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


@dataclass
class GitRepo:
    """A bare repository (what Argo CD clones, at :attr:`url`) and a working clone that commits and pushes to it."""

    bare: Path
    work: Path

    @property
    def url(self) -> str:
        """The ``file://`` URL an Application's ``repoURL`` names."""
        return self.bare.resolve().as_uri()

    def commit(self, files: Mapping[str, str | None], message: str) -> str:
        """Write (or, for ``None``, delete) ``files`` by path relative to the root, commit, push; return the SHA."""
        for relative, content in files.items():
            target = self.work / relative
            if content is None:
                _git(["rm", "--quiet", "--ignore-unmatch", "--", relative], self.work)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            _git(["add", "--", relative], self.work)
        _git(["commit", "--quiet", "--allow-empty", "-m", message], self.work)
        _git(["push", "--quiet", "origin", GIT_BRANCH], self.work)
        return self.head()

    def head(self) -> str:
        """The SHA the branch points at in the bare repository, which is what Argo CD resolves ``HEAD`` to."""
        return _git(["rev-parse", GIT_BRANCH], self.bare)


@dataclass
class _Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class ArgoCD:
    """Argo CD's application controller and repo server, with their Redis, serving Applications in ``namespace``.

    Their logs go to a temporary directory, which is removed when the block they ran in ends cleanly and kept (its
    path is in the failure) when it fails.
    """

    cluster: LocalCluster
    namespace: str = "argocd"
    #: How often every Application is compared with git again (Argo CD's default is 120 s plus up to 60 s jitter):
    #: without a webhook, this is how soon a commit is noticed.
    app_resync_seconds: int = 5
    #: The least time between two self-heal syncs of one Application (a fixed delay, not Argo CD's default backoff).
    self_heal_timeout_seconds: int = 5
    #: Extra ``argocd-cm`` settings (resource customizations, exclusions...).
    settings: Mapping[str, str] = field(default_factory=dict)
    workdir: Path = field(init=False, default_factory=lambda: Path(tempfile.mkdtemp(prefix="bluegreen-argocd-")))
    #: ``127.0.0.1:<port>`` of Redis and of the repo server's gRPC, once started.
    redis_address: str = field(init=False, default="")
    repo_server_address: str = field(init=False, default="")
    _processes: list[_Process] = field(init=False, default_factory=list)

    def __enter__(self) -> ArgoCD:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if kind is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif exc is not None:
            exc.add_note(f"Argo CD's logs (redis, repo server, application controller): {self.workdir}")

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Apply the CRDs and settings, start Redis, the repo server and the controller; return once all answer."""
        binary = argocd.binary()
        missing = missing_host_programs()
        if missing:
            raise ArgoCDError(f"{', '.join(missing)} not on PATH: `make host-deps` installs the Debian packages")
        self._apply_crds()
        self._apply_settings()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self._start_redis(deadline)
        self._start_repo_server(binary, deadline)
        self._start_controller(binary, deadline)

    def stop(self) -> None:
        """Stop the processes, last started first (idempotent); the CRDs and objects stay, as after an uninstall."""
        for proc in reversed(self._processes):
            if proc.process.poll() is None:
                proc.process.terminate()
                try:
                    proc.process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait()
        self._processes.clear()

    def _apply_crds(self) -> None:
        # Only the two the application controller serves: no ApplicationSet controller runs here.
        for name in argocd.REQUIRED_CRDS:
            crd = argocd.crd_file(name)
            self.cluster.run_tool(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(crd)])
        self.cluster.run_tool(
            [
                "kubectl",
                "wait",
                "--for=condition=Established",
                *(f"crd/{name}" for name in argocd.REQUIRED_CRDS),
                f"--timeout={START_TIMEOUT_SECONDS:.0f}s",
            ]
        )

    def _server_side_apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return request(
            self.cluster.api,
            "PATCH",
            path,
            query={"fieldManager": "argo-bluegreen-tests", "force": True},
            body=dict(body),
            content_type="application/apply-patch+yaml",
        )

    def _apply_settings(self) -> None:
        ns = self.namespace
        try:
            request(
                self.cluster.api,
                "POST",
                "/api/v1/namespaces",
                body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
        except KubeApiError as exc:
            if exc.status != 409:
                raise
        config = {"installationID": ns, **self.settings}
        self._server_side_apply(
            f"/api/v1/namespaces/{ns}/configmaps/argocd-cm",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": ns, "labels": PART_OF},
                "data": config,
            },
        )
        # The settings manager refuses settings without a server signature key, though only the API server signs.
        secret_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self._server_side_apply(
            f"/api/v1/namespaces/{ns}/secrets/argocd-secret",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "argocd-secret", "namespace": ns, "labels": PART_OF},
                "data": {"server.secretkey": base64.b64encode(secret_key.encode()).decode()},
            },
        )
        # What the API server would create on its first start: a project that allows every repository and cluster.
        self._server_side_apply(
            f"{APPPROJECTS.format(ns=ns)}/default",
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": ns},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            },
        )

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> _Process:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=dict(os.environ, **(env or {})),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        started = _Process(name, process, log)
        self._processes.append(started)
        return started

    def _wait_ready(self, proc: _Process, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            if proc.process.poll() is not None:
                raise ArgoCDError(f"{proc.name} exited {proc.process.returncode}:\n{self.log_tail(proc.name)}")
            if time.monotonic() > deadline:
                raise ArgoCDError(
                    f"{proc.name} was not ready in {START_TIMEOUT_SECONDS}s:\n{self.log_tail(proc.name)}"
                )
            time.sleep(0.2)  # bounded poll: each process answers once it listens (and, for the controller, syncs)

    def _start_redis(self, deadline: float) -> None:
        port = free_port()
        data = self.workdir / "redis"
        data.mkdir()
        # A cache only: no snapshots, no append-only file, bound to loopback.
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        proc = self._spawn("redis", [*argv, "--dir", str(data)])
        self.redis_address = f"127.0.0.1:{port}"
        self._wait_ready(proc, deadline, lambda: _redis_pong(port))

    def _start_repo_server(self, binary: Path, deadline: float) -> None:
        port, metrics = free_port(), free_port()
        scratch = self.workdir / "repo-server-tmp"
        scratch.mkdir()
        env = {
            argocd.ROLE_ENV: argocd.REPO_SERVER_ROLE,
            # Its checkouts (os.TempDir()/_argocd-repo) and its git credential socket (default /tmp/...) would be
            # shared by every instance on this host; each gets its own.
            "TMPDIR": str(scratch),
            "ARGOCD_ASK_PASS_SOCK": str(self.workdir / "askpass.sock"),
            # Signature verification needs a GnuPG home under /app/config; nothing here signs commits.
            "ARGOCD_GPG_ENABLED": "false",
        }
        argv = [
            str(binary),
            "--address=127.0.0.1",
            f"--port={port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={metrics}",
            # TLS would need certificates under /app/config; the controller is told to speak plaintext.
            "--disable-tls",
            f"--redis={self.redis_address}",
            # How long a branch's resolved SHA is reused. A real install sets it from timeout.reconciliation like
            # the controller's resync; left at its 3 min default, a commit would go unseen that long (a refresh
            # annotation resolves afresh either way).
            f"--revision-cache-expiration={self.app_resync_seconds}s",
            "--logformat=text",
            "--loglevel=info",
        ]
        proc = self._spawn("repo-server", argv, env)
        self.repo_server_address = f"127.0.0.1:{port}"
        # ?full=true makes it call its own gRPC health service, so "ready" means it serves gRPC.
        self._wait_ready(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{metrics}/healthz?full=true"))

    def _start_controller(self, binary: Path, deadline: float) -> None:
        metrics = free_port()
        kubeconfig = str(self.cluster.kubeconfig_path)
        env = {
            argocd.ROLE_ENV: argocd.CONTROLLER_ROLE,
            # The destination https://kubernetes.default.svc then means this kubeconfig's cluster (see the module doc).
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "KUBECONFIG": kubeconfig,
        }
        argv = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--namespace={self.namespace}",
            f"--redis={self.redis_address}",
            f"--repo-server={self.repo_server_address}",
            "--repo-server-plaintext",
            f"--metrics-port={metrics}",
            f"--app-resync={self.app_resync_seconds}",
            # Argo CD adds up to 60 s of random delay to each resync by default, which a test would wait out.
            "--app-resync-jitter=0",
            f"--self-heal-timeout-seconds={self.self_heal_timeout_seconds}",
            # 0 turns the default exponential backoff off, so the fixed timeout above is what applies.
            "--self-heal-backoff-timeout-seconds=0",
            "--status-processors=2",
            "--operation-processors=2",
            "--logformat=text",
            "--loglevel=info",
        ]
        proc = self._spawn("application-controller", argv, env)
        self._wait_ready(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{metrics}/healthz"))

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of one process's log (``redis``, ``repo-server``, ``application-controller``)."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- git -------------------------------------------------------------------------------------------------------

    def git_repo(self, path: Path) -> GitRepo:
        """A new repository under ``path``: ``path/repo.git`` (bare, the remote) and ``path/work`` (a clone)."""
        bare, work = path / "repo.git", path / "work"
        path.mkdir(parents=True, exist_ok=True)
        _git(["init", "--quiet", "--bare", f"--initial-branch={GIT_BRANCH}", str(bare)], path)
        _git(["clone", "--quiet", str(bare), str(work)], path)
        # A clone of an empty repository has no branch yet; name it so the first push creates the one HEAD names.
        _git(["checkout", "--quiet", "-b", GIT_BRANCH], work)
        return GitRepo(bare=bare, work=work)

    # -- Applications ----------------------------------------------------------------------------------------------

    def application(
        self,
        name: str,
        repo_url: str,
        path: str,
        dest_namespace: str,
        *,
        revision: str = "HEAD",
        sync_policy: Mapping[str, Any] | None = AUTOMATED,
        sync_options: Sequence[str] = (),
        ignore_differences: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The Application syncing directory ``path`` of ``repo_url`` at ``revision`` into ``dest_namespace``.

        ``sync_policy`` is the ``spec.syncPolicy`` (default :data:`AUTOMATED`; ``None`` for manual sync);
        ``sync_options`` go into it as ``syncOptions`` (``"ServerSideApply=true"``...); ``ignore_differences`` is
        ``spec.ignoreDifferences`` as written in an Application.
        """
        policy: dict[str, Any] = json.loads(json.dumps(dict(sync_policy or {})))
        if sync_options:
            policy["syncOptions"] = [*policy.get("syncOptions", []), *sync_options]
        spec: dict[str, Any] = {
            "project": "default",
            "source": {"repoURL": repo_url, "path": path, "targetRevision": revision},
            "destination": {"server": IN_CLUSTER, "namespace": dest_namespace},
        }
        if policy:
            spec["syncPolicy"] = policy
        if ignore_differences:
            spec["ignoreDifferences"] = [dict(item) for item in ignore_differences]
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }

    def apply(self, app: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update an Application (server-side apply); returns it as stored."""
        name = str(app["metadata"]["name"])
        return self._server_side_apply(f"{APPLICATIONS.format(ns=self.namespace)}/{name}", app)

    def get(self, name: str) -> dict[str, Any]:
        """The Application as stored now."""
        return request(self.cluster.api, "GET", f"{APPLICATIONS.format(ns=self.namespace)}/{name}")

    def refresh(self, name: str, hard: bool = False) -> None:
        """Ask the controller to compare ``name`` with git now; ``hard`` regenerates the manifests, skipping caches."""
        request(
            self.cluster.api,
            "PATCH",
            f"{APPLICATIONS.format(ns=self.namespace)}/{name}",
            body={"metadata": {"annotations": {REFRESH_ANNOTATION: "hard" if hard else "normal"}}},
            content_type="application/merge-patch+json",
        )

    def wait_for(self, name: str, done: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """Watch ``name`` until ``done(app)`` holds, and return that Application.

        At the deadline it raises :class:`ArgoCDError` with the last status seen and the controller's log.
        """
        deadline = time.monotonic() + timeout
        collection = APPLICATIONS.format(ns=self.namespace)
        last: dict[str, Any] = {}
        while True:
            listed = request(self.cluster.api, "GET", collection, query={"fieldSelector": f"metadata.name={name}"})
            items = listed.get("items") or []
            if items:
                last = items[0]
                if done(last):
                    return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ArgoCDError(
                    f"Application {self.namespace}/{name} did not become {what} in {timeout:.0f}s; "
                    f"last seen: {summary(last) if last else 'absent'}\n"
                    f"application-controller:\n{self.log_tail('application-controller')}"
                )
            query: dict[str, str | int | bool] = {
                "fieldSelector": f"metadata.name={name}",
                "resourceVersion": str(listed["metadata"]["resourceVersion"]),
                "timeoutSeconds": max(1, int(remaining)),
            }
            stream = WatchStream(self.cluster.api, collection, query, read_timeout=remaining + 5.0)
            try:
                for event in stream.events():
                    if event.get("type") not in ("ADDED", "MODIFIED"):
                        continue  # DELETED leaves `last` as it was; ERROR (an expired version) ends in a new list
                    last = event["object"]
                    if done(last):
                        return last
            finally:
                stream.close()

    def wait_synced_healthy(
        self,
        name: str,
        revision: str | None = None,
        timeout: float = 120.0,
        operation_after: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """Wait until ``name`` is Synced (at ``revision`` when given) and Healthy, with its last sync succeeded.

        A failed or running last operation does not count, nor, with ``revision``, one that synced another revision:
        the wait is for git's content live on the cluster. With ``operation_after`` (say, :func:`operation_started`
        of an earlier answer), the last sync must also have started after it: a self-heal or a re-sync of the same
        revision, which sync status alone cannot tell from the sync before.
        """

        def settled(app: dict[str, Any]) -> bool:
            status = app.get("status") or {}
            sync = status.get("sync") or {}
            operation = status.get("operationState") or {}
            return (
                sync.get("status") == "Synced"
                and (status.get("health") or {}).get("status") == "Healthy"
                and (revision is None or sync.get("revision") == revision)
                # No operation yet (git matched the cluster already) is settled too; a running or failed one is not.
                and operation.get("phase", "Succeeded") == "Succeeded"
                and (revision is None or not operation or _operation_revision(operation) == revision)
                and (operation_after is None or (bool(operation) and operation_started(app) > operation_after))
            )

        what = f"Synced{f' at {revision[:12]}' if revision else ''} and Healthy"
        if operation_after is not None:
            what += f" by a sync started after {operation_after.isoformat()}"
        return self.wait_for(name, settled, timeout, what)


def _operation_revision(operation: Mapping[str, Any]) -> str:
    return str(((operation.get("syncResult") or {}).get("revision")) or "")


def operation_started(app: Mapping[str, Any]) -> datetime.datetime:
    """When the Application's last sync operation started (``status.operationState.startedAt``)."""
    return datetime.datetime.fromisoformat(str(app["status"]["operationState"]["startedAt"]))


def summary(app: Mapping[str, Any]) -> str:
    """One line of what an Application's status says: sync, revision, health, last operation and conditions."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    operation = status.get("operationState") or {}
    conditions = "; ".join(f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions") or [])
    return (
        f"sync={sync.get('status')} revision={str(sync.get('revision') or '')[:12]} "
        f"health={(status.get('health') or {}).get('status')} "
        f"operation={operation.get('phase')} ({operation.get('message', '')}) conditions=[{conditions}]"
    )


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


__all__ = [
    "AUTOMATED",
    "IN_CLUSTER",
    "ArgoCD",
    "ArgoCDError",
    "GitRepo",
    "missing_host_programs",
    "operation_started",
    "summary",
]
