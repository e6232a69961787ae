"""Noticing the moment a container's main process exits, without reaping it.

A Pod worker reaps its processes itself, in its own thread, when it next syncs. Waiting for that
sync on a timer made every exit late by up to the resync period: Argo's ``init`` container
finishes at once, yet ``main`` started seconds later, and a finished step was reported late.
Here a thread per process blocks on a pidfd (https://man7.org/linux/man-pages/man2/pidfd_open.2.html),
which becomes readable when the process exits, and calls back; the worker then reaps at once.
A pidfd, unlike a second ``waitpid``, neither reaps the child nor competes with ``Popen`` for
its exit status, and it refers to that one process even if its pid is later reused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger("testenv.node")


def notify_on_exit(pid: int, on_exit: Callable[[], None], name: str = "") -> None:
    """Call ``on_exit`` (from another thread) as soon as child ``pid`` has exited.

    Must be called before the child is reaped; for a child that has already exited (a zombie
    still waiting to be reaped) ``on_exit`` is called at once.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:
        # Already reaped, or a kernel without pidfds (before 5.3): the worker's periodic resync
        # still notices the exit, only later.
        log.warning("cannot watch process exit", extra={"pid": pid, "error": str(exc)})
        on_exit()
        return

    def wait_for_exit() -> None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll():
                pass
        finally:
            with contextlib.suppress(OSError):
                os.close(pidfd)
        on_exit()

    threading.Thread(target=wait_for_exit, name=f"exit-{name or pid}", daemon=True).start()
