"""Container logs: written in the CRI logging format, read back as the kubelet serves them.

Each container instance's stdout and stderr arrive on pipes; one thread per stream writes every
line as a record ``<RFC 3339 time> <stream> <F|P> <content>`` to the instance's log file, the
format container runtimes write for the kubelet
(https://github.com/kubernetes/design-proposals-archive/blob/main/node/kubelet-cri-logging.md).
``P`` marks a partial record: a line longer than :data:`MAX_RECORD_BYTES`, or the unterminated
end of the output. The timestamps are what ``timestamps``, ``sinceSeconds`` and ``sinceTime``
need; the stream tag keeps stdout and stderr apart.

:func:`stream_log` reads a log back with the kubelet's options (``tailLines``, ``sinceSeconds``,
``limitBytes``, ``timestamps``, ``follow``): tail first, then the time filter, and a follower
stops once the container has exited and everything it wrote has been sent.
"""

from __future__ import annotations

import datetime
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_RECORD_BYTES = 16 * 1024  # containerd's default split size for long lines
FOLLOW_RECHECK_SECONDS = 1.0
_TAIL_BLOCK_BYTES = 64 * 1024


def format_timestamp(unix_ns: int) -> str:
    """``unix_ns`` as Go's ``time.RFC3339Nano`` writes it: UTC, trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    whole = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def parse_timestamp(text: str) -> int:
    """Unix nanoseconds of an RFC 3339 time with any number of fractional digits (ValueError if not one)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    zone_at = max(text.rfind("+"), text.rfind("-"))
    if zone_at < len("YYYY-MM-DD"):
        raise ValueError(f"no time zone in {text!r}")
    base, zone = text[:zone_at], text[zone_at:]
    fraction = ""
    if "." in base:
        base, fraction = base.split(".", 1)
        if not fraction.isdigit():
            raise ValueError(f"bad fractional seconds in {text!r}")
    moment = datetime.datetime.fromisoformat(base + zone)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(moment.timestamp()) * 1_000_000_000 + nanos


@dataclass(frozen=True)
class LogRecord:
    """One record of a CRI log file."""

    unix_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_record(line: bytes) -> LogRecord | None:
    """The record on one line of a log file (without its newline), or None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    try:
        unix_ns = parse_timestamp(parts[0].decode())
    except ValueError:
        return None
    return LogRecord(unix_ns, parts[1].decode(), parts[2] == b"P", parts[3] if len(parts) == 4 else b"")


class ContainerLog:
    """The log file of one container instance, and a signal for readers following it.

    :meth:`capture` starts the writers; :attr:`complete` turns true once both streams have ended
    (the container and everything it started are gone) and every record is on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._size = 0
        self._open_streams = 0
        self._file: IO[bytes] | None = None
        self.complete = False

    def capture(self, streams: Mapping[str, IO[bytes]]) -> None:
        """Write each of ``streams`` (name → pipe, e.g. ``stdout``) to the log until it ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab", buffering=0)
        self._open_streams = len(streams)
        if not streams:
            self._finish_stream()
        for name, pipe in streams.items():
            threading.Thread(target=self._pump, args=(name, pipe), name=f"log-{name}", daemon=True).start()

    def _pump(self, stream: str, pipe: IO[bytes]) -> None:
        try:
            while chunk := pipe.readline(MAX_RECORD_BYTES):
                whole_line = chunk.endswith(b"\n")
                tag = b"F" if whole_line else b"P"
                content = chunk[:-1] if whole_line else chunk
                record = b"%s %s %s %s\n" % (format_timestamp(time.time_ns()).encode(), stream.encode(), tag, content)
                with self._changed:
                    assert self._file is not None
                    self._file.write(record)
                    self._size += len(record)
                    self._changed.notify_all()
        except (OSError, ValueError):
            pass  # the pipe or the file was closed under us: the instance is being torn down
        finally:
            pipe.close()
            self._finish_stream()

    def _finish_stream(self) -> None:
        with self._changed:
            self._open_streams -= 1
            if self._open_streams <= 0:
                if self._file is not None:
                    self._file.close()
                self.complete = True
            self._changed.notify_all()

    def wait_until_complete(self, timeout: float) -> bool:
        """Block until both streams have ended (True), or ``timeout`` passes (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.complete, timeout)

    def wait_for_more(self, seen_bytes: int, timeout: float) -> None:
        """Block until the log grows past ``seen_bytes``, completes, or ``timeout`` passes."""
        with self._changed:
            if self._size <= seen_bytes and not self.complete:
                self._changed.wait(timeout)


@dataclass(frozen=True)
class LogOptions:
    """What to read: the kubelet's ``PodLogOptions`` less the container and ``previous``.

    Attributes:
        follow: Keep streaming until the container has exited.
        tail_lines: Start this many records from the end (None: from the start).
        limit_bytes: Stop after this many bytes of output (None: no limit).
        since_unix_ns: Skip records older than this (None: none skipped).
        timestamps: Prefix each line with its RFC 3339 time.
    """

    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_unix_ns: int | None = None
    timestamps: bool = False


def _tail_offset(handle: IO[bytes], lines: int) -> int:
    """The offset where the last ``lines`` records of ``handle`` begin (reading backwards in blocks)."""
    end = handle.seek(0, io.SEEK_END)
    if lines <= 0:
        return end
    position = end
    newlines = 0
    while position > 0:
        start = max(0, position - _TAIL_BLOCK_BYTES)
        handle.seek(start)
        block = handle.read(position - start)
        # The file ends with a newline; the one ending the last record does not start a record.
        for index in range(len(block) - 1, -1, -1):
            if block[index] == 0x0A and start + index != end - 1:
                newlines += 1
                if newlines == lines:
                    return start + index + 1
        position = start
    return 0


class _LimitReached(Exception):
    pass


def stream_log(
    log: ContainerLog,
    options: LogOptions,
    write: Callable[[bytes], object],
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Send ``log``'s content to ``write`` as ``options`` ask; with ``follow``, until the container ends.

    ``cancelled`` is asked while a follower waits for more output (the client went away, the
    agent stops); it ends the stream early.
    """
    remaining = options.limit_bytes
    at_line_start = True

    def emit(data: bytes) -> None:
        nonlocal remaining
        if remaining is not None:
            data = data[:remaining]
            remaining -= len(data)
        if data:
            write(data)
        if remaining is not None and remaining <= 0:
            raise _LimitReached

    if not log.path.exists():
        return
    with log.path.open("rb") as handle:
        position = _tail_offset(handle, options.tail_lines) if options.tail_lines is not None else 0
        handle.seek(position)
        pending = b""
        try:
            while True:
                was_complete = log.complete
                pending += handle.read()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    position += len(line) + 1
                    record = parse_record(line)
                    if record is None:
                        continue
                    if options.since_unix_ns is not None and record.unix_ns < options.since_unix_ns:
                        continue
                    if options.timestamps and at_line_start:
                        emit(format_timestamp(record.unix_ns).encode() + b" ")
                    emit(record.content if record.partial else record.content + b"\n")
                    at_line_start = not record.partial
                # Read to the end after the log completed: nothing more will come.
                if not options.follow or was_complete or cancelled():
                    return
                log.wait_for_more(position + len(pending), FOLLOW_RECHECK_SECONDS)
        except _LimitReached:
            return


def tail_text(path: Path, lines: int, limit_bytes: int) -> str:
    """The last ``lines`` lines of a finished container's log as text, at most ``limit_bytes`` from the end."""
    out = io.BytesIO()
    stream_log(ContainerLog(path), LogOptions(tail_lines=lines), out.write)
    return out.getvalue()[-limit_bytes:].decode(errors="replace")
