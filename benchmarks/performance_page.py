"""docs/performance.md, written from a benchmark run's results file and never by hand.

``make bench`` runs the benchmarks with ``BLUEGREEN_BENCH_RESULTS`` set, then calls this module, which keeps the
results beside the page (``docs/performance.json``) and writes the page from them. Every figure on the page is
computed here from the run's raw samples; the prose around the figures lives here too, so a change to it is a change
to this module and the page is written again. ``--check`` says whether the page on disk is the one its results give.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.results import load
from testenv.traffic_report import percentile

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "docs" / "performance.json"

_STEP_PARTS = ("queueing", "pod start", "own work", "noticing")
#: The pipeline's order, for tables keyed by step: a results file keeps its keys sorted.
_PIPELINE = (
    "release",
    "cosign-verify",
    "verify-image",
    "preflight",
    "deploy-green",
    "probe",
    "smoke",
    "switch",
    "verify",
    "retain",
    "cleanup",
    "rollback",
    "notify",
)


def in_pipeline_order(names: Sequence[str]) -> list[str]:
    """``names`` (a step, maybe followed by a note) in the pipeline's order; names it does not know come last."""

    def position(name: str) -> tuple[int, str]:
        step = name.split(" ", 1)[0]
        return (_PIPELINE.index(step) if step in _PIPELINE else len(_PIPELINE), name)

    return sorted(names, key=position)


def median(values: Sequence[float]) -> float:
    """The median of ``values``, refused clearly when a benchmark recorded none."""
    if not values:
        raise ValueError("a figure has no samples: the benchmark that records it did not complete")
    return statistics.median(values)


def seconds(value: float, digits: int = 1) -> str:
    """``value`` seconds as the page writes them."""
    return f"{value:.{digits}f} s"


def spread(values: Sequence[float], digits: int = 1) -> str:
    """Median, with min and max when there is more than one sample."""
    middle = seconds(median(values), digits)
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def paragraph(text: str) -> str:
    """``text`` with its figures in place, wrapped as the page's other prose is."""
    return textwrap.fill(" ".join(text.split()), width=118, break_on_hyphens=False)


def count(number: int, noun: str) -> str:
    """``number`` ``noun``s, in the singular for one."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _header(results: dict[str, Any]) -> str:
    measured = results["measured"]
    return f"""# Performance

How fast a deploy is, what the clients of a service see while it runs, and what the controller settings change.

This page is written by `make bench` from the figures of its own run, kept beside it in
[`performance.json`](performance.json); edit [`benchmarks/performance_page.py`](../benchmarks/performance_page.py)
and run `make bench` again rather than this file. The run below was measured on {measured["date"]} at revision
`{measured["revision"]}`, on the local cluster of real components ([testenv/README.md](../testenv/README.md)) on a
shared machine with {measured["cpus"]} cores. The machine is noisy: a figure is the median of its samples, with the
smallest and largest beside it where there are several, and another machine gives other numbers."""


def _end_to_end(section: dict[str, Any]) -> str:
    default, tuned = section["default"], section["tuned"]
    rows = [
        [
            label,
            spread(figures["deploy_s"]),
            spread(figures["failed_smoke_to_rollback_s"]),
            spread(figures["rollback_s"]),
        ]
        for label, figures in (
            (f"Argo's default (`DEFAULT_REQUEUE_TIME={default['requeue']}`)", default),
            (f"`DEFAULT_REQUEUE_TIME={tuned['requeue']}`", tuned),
        )
    ]
    overview = table(
        [
            "workflow-controller setting",
            "deploy, submit to `Succeeded`",
            "a failed smoke test to the exit handler's rollback done",
            "rollback template, submit to traffic restored",
        ],
        rows,
    )
    steps = []
    for label, figures in (("default", default), ("tuned", tuned)):
        for template in in_pipeline_order(list(figures["steps"])):
            parts = figures["steps"][template]
            steps.append([f"`{template}`", label, *(f"{median(parts[part]):.1f}" for part in _STEP_PARTS)])
    split = table(["step", "setting", *(f"{part} (s)" for part in _STEP_PARTS)], steps)
    return f"""## How fast a deploy is, and the controller settings that matter

Argo's workflow-controller looks at a running workflow again only `DEFAULT_REQUEUE_TIME` after one of its Pods
changed: {default["requeue"]} by default. Every Pod boundary on the way to the switch costs that long, so the deploy
template keeps them few:

- The run starts with **one release Pod**, an Argo
  [containerSet](https://argo-workflows.readthedocs.io/en/latest/container-set-template/): `preflight`,
  `deploy-green`, `probe`, `smoke` and `switch`, each a container node of its own. Inside it the controller is not
  involved, so for a service that promotes automatically nothing waits for the controller between the submit and the
  switch.
- The steps in that Pod keep their order themselves. Every step's program starts with the Pod, loads its libraries,
  and waits for the step before it to leave its exit code on the Pod's shared volume (`--set-state`, `--wait-for`),
  looking every 50 ms; it then logs `waited` with how long. Argo's executor, ordering them by `dependencies`, would
  look once a second for the step before to have exited and once a second for a program's own end before starting
  the next Python. A step whose predecessor failed does not run; one killed before it could write its exit code is
  known from the executor's own record of it (`/var/run/argo/ctr/<step>/exitcode`); and every wait is bounded by the
  deadlines of the steps before it.
- A slot Deployment replaces its pods all at once (`maxSurge: 100%`, `maxUnavailable: 0`), whatever rolling strategy
  the team's Deployment had: the idle slot takes no traffic while it changes, and `maxUnavailable: 0` keeps a
  `kubectl rollout restart` of the live slot from taking its pods down together.
- A step in a Pod reaches the API server with its mounted ServiceAccount token and CA and a plain HTTPS client
  (`steps/api_transport.py`), without loading the `kubernetes` package and its every generated model class.
- Argo fixes a container's arguments when it creates the Pod, before `preflight` has chosen anything, so the steps
  after it read the slot, the record, the pinned image and their deadlines from `preflight`'s output files on the
  Pod's shared volume (`--preflight-outputs`); each logs what it took (`from-preflight`).
- A service that verifies its images (`imagePolicy.signature`) or waits for a person (`promotion.mode: manual`) cannot
  release in that Pod: the image must be verified before any slot runs it, and the promotion gate (a suspend node) must
  sit between `smoke` and `switch`. Those runs run one Pod per step after the release Pod, and wait for cosign or for
  a person anyway.
- `verify`, `retain` and `cleanup` come after the switch, as Pods of their own.

Measured through the real controller (`benchmarks/test_bench_end_to_end.py`, {section["runs"]} runs per setting,
`argo submit` with a kubeconfig), with the demo app ready at once. A failed smoke test is timed from the smoke
program's end to the rollback program's end, as their containers report them, to the second:

{overview}

A failed check reaches the exit handler's rollback quickly because the steps retry their transient exit code (75) in
their own process, with a 5 s backoff doubling to a minute, and Argo retries only a Pod's errors, at once. Argo waits
out a `retryStrategy`'s backoff before it reads the expression that would decline a retry, so retries of exit codes
left to Argo would make every failed check wait the backoff and one more requeue before the exit handler started.

Where each step's time went, medians in seconds: the controller's queueing (the step before's end to this step's Pod
created), the Pod's start, the step's own work, and the controller noticing its end. Kubernetes stamps these to the
second. A step in the release Pod after the first has no queueing or Pod start of its own.

{split}

Set the requeue time on the workflow-controller's Deployment
(`env: [{{name: DEFAULT_REQUEUE_TIME, value: {tuned["requeue"]}}}]`). What it costs: the controller re-reads running
workflows as much more often as the requeue time is shorter, which is more API traffic and
controller CPU per running workflow; on a cluster with thousands of concurrent workflows, measure before lowering it
that far. The rollback template is one step whose own work is a single route update, so it is fast with either
setting."""


def _by_submitter(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {setting["submitter"]: setting for setting in section["settings"]}


def _submit_seconds(setting: dict[str, Any]) -> float:
    return median([deploy["submit"] for deploy in setting["ours"]["deploys"]])


def _submitting(section: dict[str, Any]) -> str:
    by = _by_submitter(section)
    return f"""## How a run is submitted

With only a kubeconfig, `argo submit` runs
Argo's validation in the CLI, and that reads the WorkflowTemplate once per template at client-go's default five
requests a second: {seconds(_submit_seconds(by["ARGO_KUBECONFIG"]), 2)} before the run exists (median, from the side by
side runs below). Two ways around it:

- `kubectl bluegreen deploy` (see [the CLI reference](reference/cli.md#kubectl-bluegreen)) needs only the kubeconfig
  too. It checks the parameters against the template and creates the same Workflow `argo submit --from` creates; the
  controller validates it as it validates every run: {seconds(_submit_seconds(by["PLUGIN"]), 2)}.
- Through the Argo Server (`ARGO_SERVER=<host:port>` and a token for `argo submit`, or its
  `/api/v1/workflows/<namespace>/submit` endpoint), which validates from its own cache:
  {seconds(_submit_seconds(by["ARGO_SERVER"]), 2)}. What it costs: an Argo Server to run and a token for CI."""


def _deploy_rows(setting: dict[str, Any], heading: str) -> list[list[str]]:
    def pick(tool: str, what: Callable[[dict[str, float]], float]) -> list[float]:
        return [what(deploy) for deploy in setting[tool]["deploys"]]

    def wall(deploy: dict[str, float]) -> float:
        return deploy["wall"]

    def readiness(deploy: dict[str, float]) -> float:
        return deploy["readiness"]

    def smoke(deploy: dict[str, float]) -> float:
        return deploy["smoke"]

    def overhead(deploy: dict[str, float]) -> float:
        return deploy["wall"] - deploy["readiness"] - deploy["smoke"]

    def overhead_with_checks(deploy: dict[str, float]) -> float:
        return deploy["wall"] - deploy["readiness"]

    def submit(deploy: dict[str, float]) -> float:
        return deploy["submit"]

    ours_wall, theirs_wall = pick("ours", wall), pick("theirs", wall)
    # Rollouts stamps its analysis to the second, so its smoke time is whole seconds: subtracting it could make its
    # overhead look smaller than it is, or negative. Its overhead is shown with its checks in, an upper bound.
    return [
        [f"**{heading}**", "", "", ""],
        [
            "deploy, image change to traffic switched",
            spread(ours_wall, 2),
            spread(theirs_wall, 2),
            f"{median(ours_wall) / median(theirs_wall):.2f}x",
        ],
        ["of which the app's readiness", spread(pick("ours", readiness), 2), spread(pick("theirs", readiness), 2), ""],
        [
            "of which the smoke checks",
            spread(pick("ours", smoke), 2),
            f"{spread(pick('theirs', smoke), 0)}, stamped to the second",
            "",
        ],
        [
            "control overhead (the rest)",
            spread(pick("ours", overhead), 2),
            f"{spread(pick('theirs', overhead_with_checks), 2)} with its smoke checks",
            "",
        ],
        [
            "of the overhead, the submit command returning (`kubectl patch` for Rollouts)",
            spread(pick("ours", submit), 2),
            spread(pick("theirs", submit), 2),
            "",
        ],
        [
            "rollback, to traffic restored on the warm previous version",
            spread(setting["ours"]["rollbacks"], 2),
            spread(setting["theirs"]["rollbacks"], 2),
            "",
        ],
    ]


def _vs_rollouts(section: dict[str, Any]) -> str:
    rows = [row for setting in section["settings"] for row in _deploy_rows(setting, setting["label"])]
    return f"""## Side by side with Argo Rollouts

`make bench` deploys the same service with argo-bluegreen and with Argo Rollouts v1.10.1 (its real controller, built
by `make rollouts` from the pinned Go module), deploy for deploy on one cluster
(`benchmarks/test_bench_vs_rollouts.py`): {section["replicas"]} replicas that turn Ready 10 s after they start, and the
two smoke endpoints checked on the new version before traffic moves (Rollouts runs them as a pre-promotion web
analysis through its preview Service). {section["runs"]} deploys each per setting, alternating between the tools:

{table(["", "argo-bluegreen", "Argo Rollouts", "ratio of medians"], rows)}

The wall times and the app's readiness (the first new Pod appearing to the last one Ready) are measured to the
millisecond, from the API server's watches; the smoke checks from the `smoke` step's own log lines. Rollouts stamps
its analysis measurements to the second, so its smoke checks read whole seconds and its overhead is shown with them
in. Rollouts rolls back to a ReplicaSet
that is still up without analysing it again ("fast rollback"); ours switches back to the slot it retained once every
replica of it is available, without running the smoke tests again.

Rollouts decides in its controller's memory, on an informer cache; a workflow of Pods starts a Pod and its Pythons
first. In exchange each step keeps its Argo node, log, deadline and retries (see
[the run in the Argo UI](concepts.md#the-run-in-the-argo-ui))."""


def _under_load(section: dict[str, Any]) -> str:
    runs = section["runs"]
    unexpected = [run for run in runs if run["expected"] != run["phase"]]
    failing = sum(1 for run in runs if run["expected"] == "Failed")
    sweeps = section["sweeps"]
    sent = sum(path["sent"] for path in section["paths"])
    failed = sum(path["failed"] for path in section["paths"])
    ended = (
        "all ended as expected"
        if not unexpected
        else "not all ended as expected: " + "; ".join(f"{r['what']} {r['phase']}" for r in unexpected)
    )
    paths = table(
        ["path", "sent", "failed", "skipped (client behind)", "retried once", "p50 ms", "p99 ms", "max ms"],
        [
            [
                path["target"],
                f"{path['sent']:,}",
                str(path["failed"]),
                str(path["skipped"]),
                str(path["retried"]),
                f"{path['p50_ms']:.1f}",
                f"{path['p99_ms']:.0f}",
                f"{path['max_ms']:.0f}",
            ]
            for path in section["paths"]
        ],
    )
    requeue = (
        f"Argo's requeue time at {section['requeue']}" if section["requeue"] else "the attached cluster's settings"
    )
    deploys = section["deploy_s"]
    intro = paragraph(
        f"""`benchmarks/test_bench_deploys_under_load.py` runs {count(section["deploys"], "deploy")} back to back
        over {count(section["services"], "service")} ({requeue}), every {section["failing_every"]}th one an image
        whose smoke test fails so that its exit handler rolls it back, a manual rollback after the first successful
        deploy, and the cleanup CronWorkflow submitted every minute besides its own schedule. Each service has a load
        harness of its own, sharing {section["rate_per_second"]:g} requests a second, straight to the ClusterIP and
        through HAProxy ([the data paths](#zero-downtime-how-it-is-measured)). `make bench DEPLOYS=50 SERVICES=5`
        runs a full day's worth."""
    )
    succeeded = sum(1 for phase in sweeps if phase == "Succeeded")
    rollbacks = sum(1 for run in runs if run["what"].endswith("manual rollback"))
    outcome = paragraph(
        f"""In this run {count(len(runs) - rollbacks, "deploy")} ({failing} of them smoke failures) and
        {count(rollbacks, "manual rollback")} {ended}; {count(len(sweeps), "cleanup sweep")} ran ({succeeded}
        succeeded). {failed} of {sent:,} requests failed. Deploy time: median {seconds(median(deploys))},
        p95 {seconds(percentile(deploys, 95))}; {seconds(section["total_s"], 0)} in all."""
    )
    return f"""## Deploys back to back under load

{intro}

{outcome}

{paths}"""


_ROUTERS = (
    (
        "`service`",
        "real: kube-proxy (nftables mode) picks the endpoint for each connection to the Service's ClusterIP, and "
        "HAProxy (Debian's package) in front of it keeps connections alive to the ClusterIP",
        "both are built or installed here (`make testenv`, `make host-deps`)",
    ),
    (
        "`gateway-api`",
        "an observer that routes each request from the API state at that moment (`tests/integration/dataplane.py`)",
        "no implementation can be built here: Traefik v3's module relies on `replace` directives, most other "
        "controllers are not served by the Go module proxy, and Contour and Envoy Gateway need an Envoy binary that "
        "no reachable registry ships",
    ),
    ("`istio`", "the same observer", "Istio's data plane is Envoy, which cannot be built here"),
)

_ZERO_DOWNTIME = """## Zero downtime: how it is measured

Which router is proven on which data path:

{routers}

The load harness (`testenv/load_harness.py`, `testenv/load_client.py`) runs in a network namespace of its own on the
node's bridge, as a client Pod would. It sends a steady, open-loop stream of requests, shared between kept-alive and
new connections, straight to the ClusterIP and through HAProxy, and records every request's time, status or
connection error, latency and the version that answered (the demo app's `X-Demo-Version` header). A client that
cannot keep the rate writes the requests it skipped. Like Go's net/http and HAProxy, the client closes a pooled
connection as soon as the server closes it; a request that meets a close on a reused connection is retried once on a
new one, as HTTP clients do for idempotent requests, and the figures count those retries apart.

`tests/e2e/test_zero_downtime.py` submits seven runs with `argo submit ... --wait` under that load (adoption, a
switch that retains the old slot, a smoke failure rolled back by the exit handler, a manual rollback, a rollback to a
slot scaled to zero, and the cleanup removing the old slot), asserts that no request failed in any of them, and prints
a table per run. A planted fault then deletes the live slot, and the test asserts that the harness counts the
failures. What the real data path shows that the observer cannot:

- A kept-alive connection stays on the Pod it was opened to. After a switch, clients that keep connections open go
  on talking to the old version for as long as its Pods serve them: while the old slot is retained warm, and until
  its Pods drain when a rollback or cleanup stops them (they close idle connections when they drain). The test's
  table shows, per run and path, when the old version last answered after the switch.
- kube-proxy leaves a TCP connection's conntrack entry on the node after its Pod is gone. A client that notices a
  closed pooled connection only when it next wants it sends its own close to a Pod that may have been removed
  meanwhile; the entry then stays in LAST_ACK, and for up to 30 s a new connection from the same source port follows
  it to the dead Pod. Clients that watch their idle connections, as Go's net/http, HAProxy and the harness's client
  do, close while the Pod is still draining and leave no such entry.
- The demo app listens with a backlog of 128 and sets `TCP_NODELAY`
  ([`images/demo-app/demo_app.py`](../images/demo-app/demo_app.py)): a backlog of 5 dropped SYNs under bursts of new
  connections, and Nagle's algorithm delayed every kept-alive answer by 40 ms.

## Supply-chain verification

A service that verifies its images (`imagePolicy.signature`) adds two steps on the deploy's path, the cosign loop
(its calls run in parallel) and `verify-image`. Each is a Pod of its own, after the release Pod, so each also waits
for the controller's requeue time ([above](#how-fast-a-deploy-is-and-the-controller-settings-that-matter)); the
benchmarks above deploy images that are not verified."""


def _steps(section: dict[str, Any]) -> str:
    per_deploy = section["per_deploy_s"]
    sweep = section["sweep"]
    rows = [
        [name, spread(per_deploy[name], 2)]
        for name in in_pipeline_order(list(per_deploy))
        if name != "overhead (all but probe/smoke)"
    ]
    rows += [
        [
            "**every step of a deploy but probe and smoke**",
            f"{spread(per_deploy['overhead (all but probe/smoke)'], 2)}, {median(section['requests_per_deploy']):.0f} "
            "API requests",
        ],
        ["one step's process start (`python -m steps.cli --help`)", spread(section["process_start_s"], 2)],
        [
            "rollback with the previous slot warm, start to route restored and read back",
            spread(section["rollback_s"], 2),
        ],
        [
            f"cleanup sweep over {sweep['services']:,} services removing {sweep['removed']} expired slots",
            f"{seconds(sweep['first_s'])}, {sweep['first_requests']} API requests",
        ],
        [
            "the same sweep with nothing to remove",
            f"{seconds(sweep['second_s'])}, {sweep['second_requests']} API requests",
        ],
    ]
    return f"""## The steps in process

`benchmarks/test_bench_steps.py` times each step in process against the same cluster's API server, as the workflow's
ServiceAccount, with real Pods ({section["runs"]} deploys after an adoption; deploy-green includes the slot's Pods
starting until Ready, probe and smoke check an app that answers at once):

{table(["what", "median (min to max)"], rows)}"""


def render(results: dict[str, Any]) -> str:
    """The whole page, from a complete run's results."""
    sections = results["sections"]
    parts = [
        _header(results),
        _end_to_end(sections["end_to_end"]),
        _submitting(sections["vs_rollouts"]),
        _vs_rollouts(sections["vs_rollouts"]),
        _under_load(sections["under_load"]),
        _ZERO_DOWNTIME.format(routers=table(["router", "data path in the tests", "why"], _ROUTERS)),
        _steps(sections["steps"]),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (and keep its results beside it), or ``--check`` that the page on disk is its results' page."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.performance_page", description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS, help="a benchmark run's results file")
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--kept", type=Path, default=RESULTS, help="where the page's results are kept")
    parser.add_argument("--check", action="store_true", help="fail when the page is not its kept results' page")
    args = parser.parse_args(argv)
    try:
        results = load(args.results)
        page = render(results)
    except (OSError, ValueError, KeyError) as error:
        print(f"performance page: {error}", file=sys.stderr)
        return 2
    if args.check:
        if not args.page.exists() or args.page.read_text() != page:
            print(
                f"performance page: {args.page} is not the page {args.results} gives; run make bench", file=sys.stderr
            )
            return 1
        return 0
    if args.results.resolve() != args.kept.resolve():
        shutil.copyfile(args.results, args.kept)
    args.page.write_text(page)
    print(f"wrote {args.page} from {args.kept} ({json.dumps(results['measured'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
