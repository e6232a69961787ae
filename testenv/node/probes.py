"""Startup, readiness and liveness probes with the kubelet's timing semantics.

https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/:
- the first probe runs ``initialDelaySeconds`` after the container started, then every
  ``periodSeconds``; each attempt may take ``timeoutSeconds``;
- the result flips to success after ``successThreshold`` consecutive successes and to failure
  after ``failureThreshold`` consecutive failures;
- readiness starts as "not ready", liveness and startup as "unknown"; liveness and readiness do
  not run until the startup probe has succeeded.

``httpGet`` (2xx/3xx is success), ``tcpSocket`` (a connection is success) and ``exec`` (exit 0,
run inside the container's namespaces) are supported; ``grpc`` always fails with a message.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]
PROBE_USER_AGENT = "kube-probe/1.37"


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go: its Pod IP, its named ports, and how to exec inside it."""

    pod_ip: str
    ports: dict[str, int]
    exec_prefix: Callable[[list[str]], list[str]]


def resolve_port(port: Any, ports: dict[str, int]) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    if port in ports:
        return ports[port]
    raise ValueError(f"port {port!r} not found among the container's ports")


def run_handler(handler: JsonObj, target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    """Run one probe or hook action; returns (success, message)."""
    try:
        if "httpGet" in handler:
            return _http_get(handler["httpGet"], target, timeout)
        if "tcpSocket" in handler:
            spec = handler["tcpSocket"]
            host = spec.get("host") or target.pod_ip
            with socket.create_connection((host, resolve_port(spec["port"], target.ports)), timeout=timeout):
                return True, ""
        if "exec" in handler:
            argv = target.exec_prefix(list(handler["exec"]["command"]))
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
            output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
            return proc.returncode == 0, output or f"command exited with {proc.returncode}"
        if "grpc" in handler:
            return False, "grpc probes are not supported by this node agent"
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout}s"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return False, str(exc)
    return False, f"no probe handler in {sorted(handler)}"


def _http_get(spec: JsonObj, target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host = spec.get("host") or target.pod_ip
    port = resolve_port(spec["port"], target.ports)
    conn_type = (
        http.client.HTTPSConnection if spec.get("scheme", "HTTP").upper() == "HTTPS" else http.client.HTTPConnection
    )
    conn = conn_type(host, port, timeout=timeout)
    headers = {"User-Agent": PROBE_USER_AGENT, "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in spec.get("httpHeaders", []) or []})
    try:
        conn.request("GET", spec.get("path") or "/", headers=headers)
        response = conn.getresponse()
        body = response.read(1024).decode(errors="replace")
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {response.status} {body[:200]}".strip()


class ProbeWorker:
    """Runs one probe of one container instance in its own thread."""

    def __init__(
        self,
        kind: str,
        probe: JsonObj,
        target: ProbeTarget,
        started_at: float,
        may_run: Callable[[], bool],
        on_change: Callable[[], None],
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.target = target
        self.started_at = started_at
        self.may_run = may_run
        self.on_change = on_change
        # None until the thresholds decide; readiness starts as not ready.
        self.result: bool | None = False if kind == "readiness" else None
        self.last_message = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe-{kind}", daemon=True)

    def start(self) -> None:
        """Begin probing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop probing (the current attempt finishes in the background)."""
        self._stop.set()

    def _loop(self) -> None:
        period = float(self.probe.get("periodSeconds", 10))
        timeout = float(self.probe.get("timeoutSeconds", 1))
        success_threshold = int(self.probe.get("successThreshold", 1))
        failure_threshold = int(self.probe.get("failureThreshold", 3))
        first = self.started_at + float(self.probe.get("initialDelaySeconds", 0))
        # The kubelet's own timing, not a wait on state: the first probe after the initial delay.
        if self._stop.wait(max(0.0, first - time.monotonic())):
            return
        successes = failures = 0
        while not self._stop.is_set():
            if self.may_run():
                ok, message = run_handler(self.probe, self.target, timeout)
                if self._stop.is_set():
                    return
                successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
                self.last_message = message
                new = self.result
                if ok and successes >= success_threshold:
                    new = True
                elif not ok and failures >= failure_threshold:
                    new = False
                if new != self.result:
                    self.result = new
                    self.on_change()
                if self.kind == "startup" and self.result:
                    return  # a startup probe stops once it has succeeded
            self._stop.wait(period)
