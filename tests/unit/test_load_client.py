"""The load client against a real demo app on loopback: a line for every request, failures when nothing listens."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.load_client import RequestLine, Target, main
from testenv.traffic_report import failed

DEMO_APP = Path(__file__).resolve().parents[2] / "images" / "demo-app" / "demo_app.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo_app_port() -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "DEMO_APP_VERSION": "v7", "PORT": str(port), "DEMO_APP_DRAIN_SECONDS": "0"}
    process = subprocess.Popen([sys.executable, str(DEMO_APP)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the demo app did not listen within 10s"
            time.sleep(0.05)  # bounded poll: the app binds shortly after start
    yield port
    process.terminate()
    process.wait(timeout=10)


def _run(tmp_path: Path, *args: str) -> list[RequestLine]:
    out = tmp_path / "lines.tsv"
    assert main([*args, "--out", str(out)]) == 0
    return [RequestLine.parse(line) for line in out.read_text().splitlines()]


def test_every_request_gets_a_line_with_the_answering_version(demo_app_port: int, tmp_path: Path) -> None:
    lines = _run(tmp_path, "--target", f"app=127.0.0.1:{demo_app_port}", "--rate", "100", "--duration", "1.5")

    flows = {flow: [line for line in lines if line.flow == flow] for flow in ("keepalive", "new")}
    # 50 per second per flow for 1.5 s, open-loop from the first instant: 75 or 76 due each.
    assert all(74 <= len(flow) <= 77 for flow in flows.values()), {k: len(v) for k, v in flows.items()}
    assert not [line for line in lines if failed(line) or line.error], lines
    assert {line.version for line in lines} == {"v7"}
    assert all(line.status == 200 and line.latency_ms > 0 for line in lines)


def test_a_refused_connection_is_a_failed_request(tmp_path: Path) -> None:
    lines = _run(tmp_path, "--target", f"gone=127.0.0.1:{_free_port()}", "--rate", "40", "--duration", "0.5")

    assert lines and all(failed(line) for line in lines), lines
    assert {line.error for line in lines} == {"ConnectionRefusedError"}


def test_a_line_reads_back_as_written() -> None:
    line = RequestLine(1700000000.25, "haproxy", "new", 0, 12.5, "", "timeout", True)
    assert RequestLine.parse(line.render()) == line


@pytest.mark.parametrize("text", ["direct", "direct=host", "=h:1", "d=h:x", "d=:80"])
def test_a_bad_target_is_refused_with_its_form(text: str) -> None:
    with pytest.raises(Exception, match="NAME=HOST:PORT"):
        Target.parse(text)


def test_stdout_is_the_default_output(demo_app_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", f"app=127.0.0.1:{demo_app_port}", "--rate", "20", "--duration", "0.3"]) == 0
    lines = [RequestLine.parse(line) for line in io.StringIO(capsys.readouterr().out).read().splitlines()]
    assert lines and {line.version for line in lines} == {"v7"}


class ClosingServer:
    """Answers each request keep-alive, then closes the connection at once, and notes whether the client closed too.

    It plays a draining Pod: the client must notice the close while the connection sits idle and close its side then,
    not when it next wants the connection.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.client_closed = threading.Event()
        self.requests_after_close = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer_and_close, args=(connection,), daemon=True).start()

    def _answer_and_close(self, connection: socket.socket) -> None:
        with connection:
            request = connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Demo-Version: v9\r\n\r\nok")
            if b"Connection: close" in request:
                return
            connection.shutdown(socket.SHUT_WR)
            connection.settimeout(30)
            try:
                after = connection.recv(65536)
            except OSError:
                return
            if after:
                self.requests_after_close += 1
            else:
                self.client_closed.set()

    def close(self) -> None:
        self.listener.close()


def test_a_pooled_connection_the_server_closes_is_closed_at_once_not_on_reuse(tmp_path: Path) -> None:
    server = ClosingServer()
    # 0.1 requests per second in all: each flow's second request is due 20 s after its first.
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testenv.load_client",
            "--target",
            f"app=127.0.0.1:{server.port}",
            "--rate",
            "0.1",
            "--duration",
            "30",
            "--out",
            str(tmp_path / "lines.tsv"),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        closed = server.client_closed.wait(10)
    finally:
        client.terminate()
        client.wait(timeout=10)
        server.close()

    assert closed, "the client kept the closed connection in its pool instead of closing its side"
    assert server.requests_after_close == 0
