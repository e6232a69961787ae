"""The signed-image test kit: a local OCI registry, and cosign keys, signatures and ``vuln`` attestations, all offline.

Every part is the real program, built from pinned modules by ``make tools`` (see ``testenv/tools.py``):

- :class:`LocalRegistry` runs ``crane registry serve`` (go-containerregistry's ``pkg/registry``) on an address the
  caller picks. Give it the local cluster's host address (``10.243.<n>.1``, see ``testenv/node/network.py``): the
  host's test process reaches it directly and Pods reach it through their default route, and because it is an
  RFC 1918 address, go-containerregistry and cosign talk plain HTTP to it without being told (their rule: RFC 1918,
  loopback and ``*.local`` registries are insecure ones). A loopback address serves tests that run no Pods.
- :func:`generate_key_pair`, :func:`sign` and :func:`attest_vuln` run ``cosign`` with a key, without the
  transparency log, and without its TUF update (:data:`OFFLINE_TUF_MIRROR`), so nothing leaves the machine.
- :func:`vuln_predicate` writes the predicate ``trivy --format cosign-vuln`` produces for ``cosign attest --type
  vuln``: a Trivy JSON report wrapped in cosign's ``CosignVulnPredicate``.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from testenv import tools
from testenv.node.images import COSIGN_REPOSITORY, DEMO_APP_PATH

# The image a workflow step names to run the pinned cosign; the node agent maps it to the built binary.
COSIGN_VERSION = "v2.6.5"
COSIGN_IMAGE = f"{COSIGN_REPOSITORY}:{COSIGN_VERSION}"
# Where the demo app lives in the test registry; the node agent runs the demo app for it, whatever the host.
DEMO_APP_REPOSITORY_PATH = DEMO_APP_PATH
# A TUF mirror other than sigstore's makes cosign look for that mirror's root.json in its (empty) cache and, finding
# none, skip the trusted-root update with a warning instead of going to the network. ``.invalid`` never resolves.
OFFLINE_TUF_MIRROR = "https://tuf-mirror.invalid"
# cosign's `vuln` predicate type, as `cosign attest --type vuln` writes it into the in-toto statement.
VULN_PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"
# Trivy's severities, lowest first.
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
SCANNER_VERSION = "0.58.1"
SCAN_DURATION = timedelta(seconds=4)
READY_SECONDS = 20.0
STOP_SECONDS = 10.0
COMMAND_SECONDS = 120.0
_SERVING = re.compile(r"serving on port (\d+)")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class SupplyChainError(RuntimeError):
    """A registry, crane or cosign step failed; the message carries the command and what it said."""


class KeyPair(NamedTuple):
    """A cosign key pair: the encrypted private key's file (empty password) and the public key's PEM text."""

    private_key: Path
    public_key_pem: str


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            list(argv),
            env=None if env is None else {**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SupplyChainError(f"`{' '.join(argv)}` did not finish in {COMMAND_SECONDS:.0f}s") from exc
    if proc.returncode != 0:
        raise SupplyChainError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def run_cosign(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = COMMAND_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run the pinned cosign with ``args`` offline and return how it went (the caller judges the exit code).

    HOME and the TUF cache are a fresh directory per call, so nothing is read from or left in the user's home.
    """
    cosign = tools.program("cosign")
    with tempfile.TemporaryDirectory(prefix="cosign-home-") as home:
        offline = {"HOME": home, "TUF_ROOT": str(Path(home) / "tuf"), "TUF_MIRROR": OFFLINE_TUF_MIRROR}
        return subprocess.run(
            [str(cosign), *args],
            env={**os.environ, **offline, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _cosign_checked(args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    proc = run_cosign(args, env)
    if proc.returncode != 0:
        raise SupplyChainError(f"`cosign {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _require_digest(image: str) -> None:
    if not re.search(rf"@{_DIGEST.pattern}$", image):
        raise ValueError(f"{image!r} is not pinned by digest: sign and attest <repository>@sha256:<digest> only")


def generate_key_pair(directory: Path) -> KeyPair:
    """``cosign generate-key-pair`` in ``directory`` (created if needed) with an empty password, non-interactively."""
    directory.mkdir(parents=True, exist_ok=True)
    private_key, public_key = directory / "cosign.key", directory / "cosign.pub"
    if private_key.exists() or public_key.exists():
        raise SupplyChainError(f"{directory} already holds a cosign key pair; use another directory")
    proc = subprocess.run(
        [str(tools.program("cosign")), "generate-key-pair"],
        cwd=directory,
        env={**os.environ, "COSIGN_PASSWORD": ""},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    if proc.returncode != 0 or not public_key.is_file():
        raise SupplyChainError(f"cosign generate-key-pair exited {proc.returncode}:\n{proc.stderr.strip()}")
    return KeyPair(private_key=private_key, public_key_pem=public_key.read_text())


def sign(image: str, private_key: Path) -> None:
    """``cosign sign`` ``image`` (``repository@sha256:...``) with ``private_key``, pushing the signature beside it."""
    _require_digest(image)
    _cosign_checked(
        ["sign", "--key", str(private_key), "--tlog-upload=false", "--yes", image], env={"COSIGN_PASSWORD": ""}
    )


def attest_vuln(image: str, private_key: Path, predicate: Mapping[str, Any]) -> None:
    """``cosign attest --type vuln`` of ``predicate`` (see :func:`vuln_predicate`) to ``image``, signed by the key."""
    _require_digest(image)
    with tempfile.TemporaryDirectory(prefix="vuln-predicate-") as scratch:
        predicate_file = Path(scratch) / "predicate.json"
        predicate_file.write_text(json.dumps(predicate))
        _cosign_checked(
            [
                "attest",
                "--key",
                str(private_key),
                "--type",
                "vuln",
                "--predicate",
                str(predicate_file),
                "--tlog-upload=false",
                "--yes",
                image,
            ],
            env={"COSIGN_PASSWORD": ""},
        )


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; give scan times as aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vuln_predicate(
    findings: Sequence[tuple[str, str]], scanned_at: datetime, artifact_name: str = "demo-app"
) -> dict[str, Any]:
    """The ``vuln`` predicate (cosign's) of a Trivy scan that finished at ``scanned_at`` with ``findings``.

    ``findings`` are ``(vulnerability id, Trivy severity)`` pairs; each becomes a vulnerability of its own made-up
    package, as Trivy lists them under ``Results[].Vulnerabilities[]``.
    """
    vulnerabilities = []
    for number, (vulnerability_id, severity) in enumerate(findings, start=1):
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} of {vulnerability_id} is not one of Trivy's {SEVERITIES}")
        vulnerabilities.append(
            {
                "VulnerabilityID": vulnerability_id,
                "PkgName": f"libdemo{number}",
                "InstalledVersion": "1.0.0",
                "FixedVersion": "1.0.1",
                "Status": "fixed",
                "Severity": severity,
            }
        )
    finished = _rfc3339(scanned_at)
    report = {
        "SchemaVersion": 2,
        "CreatedAt": finished,
        "ArtifactName": artifact_name,
        "ArtifactType": "container_image",
        "Results": [
            {"Target": f"{artifact_name} (debian 12.8)", "Class": "os-pkgs", "Type": "debian"}
            | ({"Vulnerabilities": vulnerabilities} if vulnerabilities else {})
        ],
    }
    return {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": f"pkg:github/aquasecurity/trivy@{SCANNER_VERSION}",
            "version": SCANNER_VERSION,
            "db": {"uri": "", "version": ""},
            "result": report,
        },
        "metadata": {"scanStartedOn": _rfc3339(scanned_at - SCAN_DURATION), "scanFinishedOn": finished},
    }


def _random_layer(directory: Path) -> Path:
    """A tarball holding one file of random bytes: every push makes an image no other push made."""
    layer = directory / "layer.tar"
    payload = secrets.token_bytes(512)
    with tarfile.open(layer, "w") as archive:
        info = tarfile.TarInfo("random.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return layer


class LocalRegistry:
    """``crane registry serve`` on ``host`` (a free port), holding images in memory until :meth:`stop`."""

    def __init__(self, host: str, crane: Path | None = None) -> None:
        self.host = host
        self.crane = crane if crane is not None else tools.program("crane")
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._log: deque[str] = deque(maxlen=200)
        self._drain: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` as image references name it."""
        if self.port is None:
            raise SupplyChainError("the registry is not started")
        return f"{self.host}:{self.port}"

    def reference(self, repository: str, tag: str | None = None, digest: str | None = None) -> str:
        """``<address>/<repository>`` with ``:tag`` and/or ``@digest``."""
        return f"{self.address}/{repository}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    def start(self, timeout: float = READY_SECONDS) -> None:
        """Start the registry and wait (bounded) until it answers the OCI distribution API's ``GET /v2/``."""
        if self._process is not None:
            return
        process = self._process = subprocess.Popen(
            [str(self.crane), "registry", "serve", "--address", f"{self.host}:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port_seen = threading.Event()

        def drain() -> None:
            # crane logs every request; the pipe must keep flowing, and the tail explains a failure.
            assert process.stderr is not None
            for line in process.stderr:
                self._log.append(line.rstrip())
                match = _SERVING.search(line)
                if match and self.port is None:
                    self.port = int(match.group(1))
                    port_seen.set()
            port_seen.set()

        self._drain = threading.Thread(target=drain, name="registry-log", daemon=True)
        self._drain.start()
        deadline = time.monotonic() + timeout
        try:
            if not port_seen.wait(timeout) or self.port is None:
                raise SupplyChainError(f"crane registry serve on {self.host} did not start:\n{self.log_tail()}")
            while not self._answers():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SupplyChainError(f"registry at {self.address} does not answer /v2/:\n{self.log_tail()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self) -> str:
        """The registry's last log lines (requests and errors)."""
        return "\n".join(self._log)

    def stop(self) -> None:
        """Stop the registry (its images go with it). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)
        if self._drain is not None:
            self._drain.join(STOP_SECONDS)
        if process.stderr is not None:
            process.stderr.close()
        self.port = None

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _crane(self, *args: str) -> str:
        with tempfile.TemporaryDirectory(prefix="crane-home-") as home:
            # An empty HOME: no docker credentials or config of the user's are read.
            return _run([str(self.crane), *args], env={"HOME": home})

    def push_random_image(self, repository: str, tag: str) -> str:
        """Push a new image of one random layer as ``<repository>:<tag>``; return its ``sha256:`` digest."""
        with tempfile.TemporaryDirectory(prefix="random-image-") as scratch:
            layer = _random_layer(Path(scratch))
            pushed = self._crane("append", "--new_layer", str(layer), "--new_tag", self.reference(repository, tag))
        match = _DIGEST.search(pushed)
        if match is None:
            raise SupplyChainError(f"crane append printed no digest for {repository}:{tag}: {pushed!r}")
        return match.group(0)

    def move_tag(self, repository: str, tag: str, digest: str) -> None:
        """Point ``<repository>:<tag>`` at the image ``digest`` (a tag moved after signing)."""
        self._crane("tag", self.reference(repository, digest=digest), tag)

    def digest(self, repository: str, tag: str) -> str:
        """The digest ``<repository>:<tag>`` points at now."""
        return self._crane("digest", self.reference(repository, tag)).strip()
