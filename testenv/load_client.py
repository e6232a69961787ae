"""The load harness's client: a steady, bounded rate of real HTTP requests, one line per request.

It runs as its own process inside a client network namespace (``testenv/load_harness.py`` starts it there), so its
traffic reaches a Service's ClusterIP as an in-cluster client's does: through the node's bridge and kube-proxy's
nftables rules. One asyncio loop drives every flow, which keeps it cheap enough for a small machine shared with the
cluster it measures.

Each target gets two flows with an equal share of the rate:

``keepalive``
    Requests reuse idle connections from a pool, as an HTTP client library or an ingress proxy does. While a
    connection sits in the pool a read waits on it, so a server that closes it (a draining Pod) has it closed on this
    side at once, as Go's net/http read loop and HAProxy do. A client that noticed only on reuse would send its own
    close to a Pod that may be gone by then, and leave a conntrack entry in LAST_ACK on the node that sends a later
    connection from the same source port to the dead Pod. A reused connection that the server closed before sending
    any byte of the answer is retried once on a new connection, the retry that Go's net/http and browsers make for
    idempotent requests; such a request counts as retried, not failed.
``new``
    Every request opens its own connection and closes it afterwards.

The schedule is open-loop: request ``k`` of a flow is due at ``start + k / rate`` whatever happened to the earlier
ones, so a slow answer never slows the offered load. When a flow already has :data:`MAX_IN_FLIGHT` requests waiting,
a due request is not sent and is written as ``skipped``: the client could not keep the rate, and says so.

Output, one tab-separated line per request (see :class:`RequestLine`)::

    <start, unix seconds> <target> <flow> <status or 0> <latency ms> <version> <error> <retried 0|1>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
import time
from dataclasses import dataclass
from typing import TextIO

VERSION_HEADER = b"x-demo-version"
REQUEST_PATH = "/version"
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_IN_FLIGHT = 200
FLUSH_SECONDS = 0.25
FLOWS = ("keepalive", "new")


@dataclass(frozen=True)
class Target:
    """Where requests go: ``name=host:port``."""

    name: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        """``direct=10.96.0.10:80`` -> Target; a clear error for anything else."""
        name, sep, address = text.partition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not name or not host or not port.isdecimal():
            raise argparse.ArgumentTypeError(f"target {text!r} is not NAME=HOST:PORT, e.g. direct=10.96.0.10:80")
        return cls(name, host, int(port))


@dataclass(frozen=True)
class RequestLine:
    """One request as written: when it started, where it went, and how it ended."""

    start: float
    target: str
    flow: str
    status: int
    latency_ms: float
    version: str
    error: str
    retried: bool

    def render(self) -> str:
        """The tab-separated line (no newline)."""
        fields = (
            f"{self.start:.6f}",
            self.target,
            self.flow,
            str(self.status),
            f"{self.latency_ms:.3f}",
            self.version or "-",
            self.error or "-",
            "1" if self.retried else "0",
        )
        return "\t".join(fields)

    @classmethod
    def parse(cls, line: str) -> RequestLine:
        """The inverse of :meth:`render`."""
        start, target, flow, status, latency, version, error, retried = line.rstrip("\n").split("\t")
        return cls(
            start=float(start),
            target=target,
            flow=flow,
            status=int(status),
            latency_ms=float(latency),
            version="" if version == "-" else version,
            error="" if error == "-" else error,
            retried=retried == "1",
        )


class ReusedConnectionClosed(Exception):
    """A pooled connection ended before any byte of the answer: the server had closed it while it sat idle."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _exchange(connection: Connection, request: bytes) -> tuple[int, str, bool]:
    """Send ``request`` and read one answer: (status, version header, whether the connection may be reused)."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ReusedConnectionClosed from exc
        raise
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        if key:
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    if length:
        await reader.readexactly(length)
    reusable = headers.get(b"connection", b"").lower() != b"close"
    return status, headers.get(VERSION_HEADER, b"").decode(), reusable


def _close(connection: Connection) -> None:
    connection[1].close()


@dataclass(eq=False)
class IdleConnection:
    """A pooled connection and the read that waits on it while it is idle (it ends when the server closes it)."""

    connection: Connection
    watcher: asyncio.Task[bytes]


class Flow:
    """One target's flow (keep-alive or new connections): its pool, its in-flight count and its lines."""

    def __init__(self, target: Target, flow: str, out: list[str]) -> None:
        self.target = target
        self.flow = flow
        self.out = out
        self.in_flight = 0
        self.idle: list[IdleConnection] = []
        self.request = (
            f"GET {REQUEST_PATH} HTTP/1.1\r\nHost: {target.host}\r\nUser-Agent: bluegreen-load\r\n"
            + ("Connection: close\r\n" if flow == "new" else "")
            + "\r\n"
        ).encode()

    async def _open(self) -> Connection:
        return await asyncio.open_connection(self.target.host, self.target.port)

    async def _once(self) -> tuple[int, str, bool]:
        """One request; returns (status, version, retried)."""
        if self.flow == "new":
            connection = await self._open()
            try:
                status, version, _ = await _exchange(connection, self.request)
            finally:
                _close(connection)
            return status, version, False
        retried = False
        while True:
            # The retry always opens a new connection: when a Pod shuts down, every pooled connection to it closes.
            pooled = None if retried else await self._take()
            reused = pooled is not None
            connection = pooled or await self._open()
            try:
                status, version, reusable = await _exchange(connection, self.request)
            except (ReusedConnectionClosed, ConnectionResetError, BrokenPipeError):
                _close(connection)
                if reused and not retried:
                    retried = True
                    continue
                raise
            except BaseException:
                _close(connection)
                raise
            if reusable:
                self._park(connection)
            else:
                _close(connection)
            return status, version, retried

    async def send(self, start: float) -> None:
        """Send one request and write its line."""
        self.in_flight += 1
        began = time.monotonic()
        status, version, error, retried = 0, "", "", False
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                status, version, retried = await self._once()
        except TimeoutError:
            error = "timeout"
        except ReusedConnectionClosed:
            error = "closed-before-answer"
        except OSError as exc:
            # The errno says where it broke: EHOSTUNREACH (an address nobody has), ECONNREFUSED, ECONNRESET, ...
            code = errno.errorcode.get(exc.errno or 0, "")
            error = f"{type(exc).__name__}:{code}" if code and type(exc) is OSError else type(exc).__name__
        except (asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            error = type(exc).__name__
        finally:
            self.in_flight -= 1
        latency = (time.monotonic() - began) * 1000.0
        self.out.append(
            RequestLine(start, self.target.name, self.flow, status, latency, version, error, retried).render()
        )

    def skip(self, start: float) -> None:
        """A due request that was not sent because too many were waiting."""
        self.out.append(RequestLine(start, self.target.name, self.flow, 0, 0.0, "", "skipped", False).render())

    def _park(self, connection: Connection) -> None:
        """Put ``connection`` in the pool, with a read that notices the server closing it."""
        idle = IdleConnection(connection, asyncio.create_task(connection[0].read(1)))
        self.idle.append(idle)
        idle.watcher.add_done_callback(lambda _: self._ended_while_idle(idle))

    def _ended_while_idle(self, idle: IdleConnection) -> None:
        # The read ended: the server closed the connection (or sent bytes nobody asked for). Either way it is not
        # reusable; closing it now completes the TCP close while the server is still there.
        if idle in self.idle:
            self.idle.remove(idle)
            _close(idle.connection)

    async def _take(self) -> Connection | None:
        """The most recently parked connection that the server has not closed, or None."""
        while self.idle:
            idle = self.idle.pop()
            idle.watcher.cancel()
            # Waiting (rather than awaiting the task) keeps the watcher's cancellation from looking like ours.
            await asyncio.wait([idle.watcher])
            if idle.watcher.cancelled():
                return idle.connection
            _close(idle.connection)
        return None

    def close(self) -> None:
        """Close the pool."""
        for idle in self.idle:
            idle.watcher.cancel()
            _close(idle.connection)
        self.idle.clear()


async def _drive(flow: Flow, rate: float, stop: asyncio.Event, tasks: set[asyncio.Task[None]]) -> None:
    """Open-loop schedule of ``flow`` at ``rate`` requests per second until ``stop``."""
    loop = asyncio.get_running_loop()
    wall_offset = time.time() - loop.time()
    origin = loop.time()
    index = 0
    while not stop.is_set():
        due = origin + index / rate
        delay = due - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            continue
        index += 1
        if flow.in_flight >= MAX_IN_FLIGHT:
            flow.skip(due + wall_offset)
            continue
        task = asyncio.create_task(flow.send(due + wall_offset))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _flush(lines: list[str], out: TextIO, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FLUSH_SECONDS)
        if lines:
            out.write("\n".join(lines) + "\n")
            lines.clear()
            out.flush()


async def run(targets: list[Target], rate: float, duration: float | None, out: TextIO) -> None:
    """Send ``rate`` requests per second in all, shared evenly by every target's flows, until stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    lines: list[str] = []
    flows = [Flow(target, kind, lines) for target in targets for kind in FLOWS]
    tasks: set[asyncio.Task[None]] = set()
    drivers = [asyncio.create_task(_drive(flow, rate / len(flows), stop, tasks)) for flow in flows]
    flusher = asyncio.create_task(_flush(lines, out, stop))
    await stop.wait()
    await asyncio.gather(*drivers)
    # Requests already sent finish (each is bounded by its timeout), so every sent request has a line.
    if tasks:
        await asyncio.wait(set(tasks))
    await flusher
    if lines:
        out.write("\n".join(lines) + "\n")
    out.flush()
    for flow in flows:
        flow.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m testenv.load_client --rate 200 --target direct=HOST:PORT [--target ...] [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", type=Target.parse, action="append", required=True, help="NAME=HOST:PORT")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second in all (default 200)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to run (default: until SIGTERM)")
    parser.add_argument("--out", default="-", help="file for the request lines (default stdout)")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error(f"--rate must be above 0, got {args.rate}")
    if args.out == "-":
        asyncio.run(run(args.target, args.rate, args.duration, sys.stdout))
    else:
        with open(args.out, "a", encoding="utf-8") as out:
            asyncio.run(run(args.target, args.rate, args.duration, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
