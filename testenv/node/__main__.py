"""Run the node agent as its own process: ``python -m testenv.node --kubeconfig K ...``.

The cluster orchestrator starts this like any other component and supervises it; the network
(``--network-index``) must already exist (``network.create_cluster_network``). SIGTERM or SIGINT
stop every Pod's processes and remove their namespaces and files; the Pod objects stay in the
API, as they would when a kubelet stops. Logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from testenv.node.agent import NodeAgent
from testenv.node.kubelet_server import KUBELET_PORT
from testenv.node.network import network_for_index

_STANDARD_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        entry: dict[str, object] = {
            # Milliseconds: a containerSet's steps start and end within the same second of each other.
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    """Send the agent's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("testenv.node")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m testenv.node", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the API server")
    parser.add_argument("--network-index", type=int, required=True, help="the cluster network's index n")
    parser.add_argument("--workdir", type=Path, required=True, help="directory for Pod files (created)")
    parser.add_argument("--argoexec", type=Path, default=None, help="the built argoexec binary")
    parser.add_argument(
        "--registry-mirror",
        default=None,
        metavar="HOST:PORT",
        help="the registry every public image name is pulled from (plain HTTP), as a containerd mirror",
    )
    parser.add_argument("--node-name", default=None, help="Node name (default bluegreen-node-<n>)")
    parser.add_argument(
        "--kubelet-serving-cert",
        type=Path,
        default=None,
        help="PEM certificate for the kubelet endpoint (logs), valid for the node address, signed by the cluster CA",
    )
    parser.add_argument("--kubelet-serving-key", type=Path, default=None, help="the serving certificate's key")
    parser.add_argument(
        "--kubelet-port", type=int, default=KUBELET_PORT, help=f"the endpoint's port (default {KUBELET_PORT})"
    )
    args = parser.parse_args(argv)
    if (args.kubelet_serving_cert is None) != (args.kubelet_serving_key is None):
        parser.error("--kubelet-serving-cert and --kubelet-serving-key go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the agent and run until SIGTERM/SIGINT."""
    args = parse_args(argv)
    configure_logging()
    args.workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent = NodeAgent(
        kubeconfig=args.kubeconfig,
        net=network_for_index(args.network_index),
        workdir=args.workdir,
        argoexec=args.argoexec,
        node_name=args.node_name,
        kubelet_serving=(args.kubelet_serving_cert, args.kubelet_serving_key) if args.kubelet_serving_cert else None,
        kubelet_port=args.kubelet_port,
        registry_mirror=args.registry_mirror,
    )
    agent.start()
    stop.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
