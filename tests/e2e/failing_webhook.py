"""An admission webhook that is down for a while: the real way an API server answers 500 to a step's writes.

The API server calls it for every write of one resource of one service in one namespace: the e2e tests share their
namespace and run side by side, so a webhook that saw the others' writes would fail their runs too. For the first
``seconds`` after the first call it answers HTTP 500, so the API server refuses the write with an internal error
(``failurePolicy: Fail``), as it does when a real webhook's backend is down; after that it admits everything.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from bluegreen_spec import SERVICE_LABEL
from testenv.local_cluster import LocalCluster
from testenv.rest import request
from tests.steps.http_servers import self_signed_certificate, server_context

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


class FailingWebhook:
    """Context manager: registers the webhook on enter, removes it on exit."""

    def __init__(self, cluster: LocalCluster, namespace: str, service: str, resource: str, seconds: float) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.service = service
        self.resource = resource
        self.seconds = seconds
        self.refused = 0
        self.admitted = 0
        self._first_call: float | None = None
        self._lock = threading.Lock()
        self._name = f"failing-{resource}-{namespace}-{service}"
        self._server: ThreadingHTTPServer | None = None

    def _decide(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._first_call is None:
                self._first_call = now
            refuse = now - self._first_call < self.seconds
            if refuse:
                self.refused += 1
            else:
                self.admitted += 1
            return not refuse

    def __enter__(self) -> FailingWebhook:
        assert self.cluster.network is not None
        host = self.cluster.network.host_ip
        pem, key_pem = self_signed_certificate(host, "failing-webhook")
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review: dict[str, Any] = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if not hook._decide():
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": True},
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((host, 0), Handler)
        server.socket = server_context(pem, key_pem).wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="failing-webhook", daemon=True).start()
        port = server.server_address[1]
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self._name},
            "webhooks": [
                {
                    "name": "refuse.failing-webhook.test",
                    "clientConfig": {"url": f"https://{host}:{port}/", "caBundle": base64.b64encode(pem).decode()},
                    "rules": [
                        {
                            "apiGroups": ["argo-bluegreen.io"],
                            "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": [self.resource, f"{self.resource}/status"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                    "objectSelector": {"matchLabels": {SERVICE_LABEL: self.service}},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                }
            ],
        }
        request(self.cluster.api, "POST", WEBHOOKS, body=body)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        request(self.cluster.api, "DELETE", f"{WEBHOOKS}/{self._name}")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
