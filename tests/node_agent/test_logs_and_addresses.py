"""Units of the node agent that need no cluster: Pod address allocation, container logs, log queries."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from testenv.node import network
from testenv.node.container_logs import (
    ContainerLog,
    LogOptions,
    format_timestamp,
    parse_record,
    parse_timestamp,
    stream_log,
    tail_text,
)
from testenv.node.kubelet_server import QueryError, certificate_identity, parse_log_query

NET = network.network_for_index(3)


def test_addresses_go_round_robin_and_a_released_one_comes_back_last() -> None:
    addresses = network.PodAddresses(NET)
    first = addresses.allocate("a")
    assert first == "10.244.3.2"
    addresses.release("a")
    second = addresses.allocate("b")
    assert second == "10.244.3.3", "a just-released address must not be handed out again at once"
    assert addresses.allocate("b") == second, "an owner keeps its address"


def test_addresses_wrap_around_and_skip_those_in_use() -> None:
    addresses = network.PodAddresses(NET)
    owners = [f"pod-{i}" for i in range(network.LAST_POD_HOST - network.FIRST_POD_HOST + 1)]
    for owner in owners:
        addresses.allocate(owner)
    with pytest.raises(network.NetworkError):
        addresses.allocate("one-too-many")
    addresses.release("pod-5")
    addresses.release("pod-1")
    # The cursor is at .254: the search wraps and takes the lowest free address after it.
    assert addresses.allocate("next") == "10.244.3.3"
    assert addresses.allocate("after") == "10.244.3.7"


def test_bridge_mac_is_fixed_and_locally_administered() -> None:
    assert NET.bridge_mac == "0a:58:0a:f4:03:01"
    assert int(NET.bridge_mac.split(":")[0], 16) & 0b10, "the locally administered bit"


def test_timestamps_round_trip_with_nanoseconds_as_go_writes_them() -> None:
    assert format_timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_timestamp(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert parse_timestamp("2023-11-14T22:13:20.123456789Z") == 1_700_000_000_123_456_789
    assert parse_timestamp("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def _capture(path: Path, stdout: bytes, stderr: bytes = b"") -> ContainerLog:
    """A log captured from real pipes carrying ``stdout`` and ``stderr``; returns once both ended."""
    log = ContainerLog(path)
    pipes = {}
    for name, data in (("stdout", stdout), ("stderr", stderr)):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, data)
        os.close(write_fd)
        pipes[name] = os.fdopen(read_fd, "rb")
    log.capture(pipes)
    assert log.wait_until_complete(5)
    return log


def _read(log: ContainerLog, **options: object) -> bytes:
    out = io.BytesIO()
    stream_log(log, LogOptions(**options), out.write)  # type: ignore[arg-type]
    return out.getvalue()


def test_records_keep_streams_apart_and_mark_partial_lines(tmp_path: Path) -> None:
    log = _capture(tmp_path / "0.log", b"one\ntwo\nno newline", b"oops\n")
    records = [parse_record(line) for line in (tmp_path / "0.log").read_bytes().splitlines()]
    assert all(r is not None for r in records)
    by_stream = {(r.stream, r.content, r.partial) for r in records if r is not None}
    assert by_stream == {
        ("stdout", b"one", False),
        ("stdout", b"two", False),
        ("stdout", b"no newline", True),
        ("stderr", b"oops", False),
    }
    assert _read(log).count(b"\n") == 3


def test_tail_limit_and_timestamps(tmp_path: Path) -> None:
    log = _capture(tmp_path / "0.log", b"".join(b"line %d\n" % i for i in range(1, 101)))
    assert _read(log, tail_lines=2) == b"line 99\nline 100\n"
    assert _read(log, tail_lines=0) == b""
    assert _read(log, tail_lines=1000).count(b"\n") == 100
    assert _read(log, limit_bytes=10) == b"line 1\nlin"
    stamped = _read(log, tail_lines=1, timestamps=True).decode()
    stamp, text = stamped.split(" ", 1)
    assert text == "line 100\n"
    assert abs(parse_timestamp(stamp) - time.time_ns()) < 60 * 1_000_000_000


def test_since_skips_older_records(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(
        b"2023-11-14T22:13:20Z stdout F old\n"
        b"2023-11-14T22:13:21.5Z stdout F newer\n"
        b"2023-11-14T22:13:22Z stderr F newest\n"
    )
    log = ContainerLog(path)
    since = parse_timestamp("2023-11-14T22:13:21Z")
    assert _read(log, since_unix_ns=since) == b"newer\nnewest\n"
    assert _read(log, since_unix_ns=since, tail_lines=1) == b"newest\n"
    assert tail_text(path, lines=2, limit_bytes=9) == "r\nnewest\n"


def test_follow_streams_new_output_and_ends_when_the_container_does(tmp_path: Path) -> None:
    log = ContainerLog(tmp_path / "0.log")
    read_fd, write_fd = os.pipe()
    log.capture({"stdout": os.fdopen(read_fd, "rb")})
    received: list[tuple[float, bytes]] = []
    follower = threading.Thread(
        target=stream_log, args=(log, LogOptions(follow=True), lambda d: received.append((time.monotonic(), d)))
    )
    follower.start()
    written_at = time.monotonic()
    os.write(write_fd, b"hello\n")
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)  # bounded poll of another thread's progress
    assert received and received[0][1] == b"hello\n"
    assert received[0][0] - written_at < 0.5, "a follower gets a line as it is written"
    assert follower.is_alive(), "following goes on while the container runs"
    os.write(write_fd, b"bye\n")
    os.close(write_fd)
    follower.join(5)
    assert not follower.is_alive(), "following ends once the container's output has ended"
    assert b"".join(d for _, d in received) == b"hello\nbye\n"


def test_log_query_decoding_and_validation() -> None:
    now = 1_700_000_000 * 1_000_000_000
    query = parse_log_query(
        {"follow": ["true"], "tailLines": ["5"], "timestamps": ["1"], "limitBytes": ["100"], "sinceSeconds": ["10"]},
        now,
    )
    assert not query.previous
    assert query.options == LogOptions(
        follow=True, tail_lines=5, limit_bytes=100, since_unix_ns=now - 10 * 1_000_000_000, timestamps=True
    )
    assert parse_log_query({"tail": ["all"], "previous": ["True"]}, now).options.tail_lines is None
    assert parse_log_query({"tail": ["3"]}, now).options.tail_lines == 3
    since = parse_log_query({"sinceTime": ["2023-11-14T22:13:20Z"]}, now).options.since_unix_ns
    assert since == now
    for bad, status in (
        ({"follow": ["maybe"]}, 400),
        ({"tailLines": ["x"]}, 400),
        ({"tailLines": ["-1"]}, 422),
        ({"limitBytes": ["0"]}, 422),
        ({"sinceSeconds": ["0"]}, 422),
        ({"sinceSeconds": ["5"], "sinceTime": ["2023-11-14T22:13:20Z"]}, 422),
    ):
        with pytest.raises(QueryError) as caught:
            parse_log_query(bad, now)
        assert caught.value.status == status, bad


def test_certificate_identity_is_cn_and_organisations() -> None:
    peer = {"subject": ((("commonName", "testenv-admin"),), (("organizationName", "system:masters"),))}
    assert certificate_identity(peer) == ("testenv-admin", ("system:masters",))
    assert certificate_identity({}) is None
