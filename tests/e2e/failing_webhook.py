"""An admission webhook that is down for a while: the real way an API server answers 500 to a step's writes.

The API server calls it for every write of one resource in one namespace. For the first ``seconds`` after the first
call it answers HTTP 500, so the API server refuses the write with an internal error (``failurePolicy: Fail``), as
it does when a real webhook's backend is down; after that it admits everything.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testenv.local_cluster import LocalCluster
from testenv.rest import request

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def _self_signed(ip: str, directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "failing-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, pem


class FailingWebhook:
    """Context manager: registers the webhook on enter, removes it on exit."""

    def __init__(self, cluster: LocalCluster, namespace: str, resource: str, seconds: float) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.resource = resource
        self.seconds = seconds
        self.refused = 0
        self.admitted = 0
        self._first_call: float | None = None
        self._lock = threading.Lock()
        self._name = f"failing-{resource}-{namespace}"
        self._tmp = tempfile.TemporaryDirectory(prefix="failing-webhook-")
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
        cert, key, pem = _self_signed(host, Path(self._tmp.name))
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
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
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
        self._tmp.cleanup()
