"""The images users pull, built by ``make image`` from this tree and run as their own users.

What is proved here runs in a container of the image (tests/image/conftest.py): the console scripts it ships, the
command lines the rendered templates give it, its user and size, and the demo app's own command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.cli import COMMANDS
from steps.context import KUBECONFIG_NEEDS_CLIENT
from testenv import tools
from testenv.node.env import command_line
from testenv.node.image_store import ImageStore, PulledImage, PullError, Reference
from testenv.supply_chain import LocalRegistry
from tests.image.conftest import BuiltImage, ImageRunner

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
STEPS_TEMPLATES = sorted((REPO / "manifests" / "workflows").glob("*.yaml"))
#: The issue's target for the steps image, uncompressed.
STEPS_IMAGE_LIMIT_BYTES = 150 * 1000 * 1000
#: What a step never imports in the image (the render extra, the plugin's rich, the kubeconfig reader), nor pip.
LEFT_OUT = (
    "hera",
    "jsonschema",
    "grafana_foundation_sdk",
    "rich",
    "kubectl_bluegreen",
    "pipelines",
    "kubernetes",
    "pip",
)

#: The console scripts of every distribution in the image that are on its PATH (one removed is no command at all).
LIST_CONSOLE_SCRIPTS = (
    "import importlib.metadata as m, json, shutil; "
    "print(json.dumps(sorted(e.name for e in m.entry_points(group='console_scripts') if shutil.which(e.name))))"
)


def steps_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every container of the rendered templates that runs the steps image: (template, container, pod security)."""
    found = []
    for path in STEPS_TEMPLATES:
        for document in yaml.safe_load_all(path.read_text()):
            if not document or "templates" not in document.get("spec", {}):
                continue
            security = document["spec"].get("securityContext") or {}
            for template in document["spec"]["templates"]:
                containers = [template["container"]] if "container" in template else []
                containers += (template.get("containerSet") or {}).get("containers") or []
                for container in containers:
                    if str(container.get("image", "")).startswith("ghcr.io/argo-bluegreen/steps:"):
                        found.append((f"{path.name}/{template['name']}", container, security))
    return found


def test_every_console_script_in_the_steps_image_runs_as_its_user(
    steps_image: BuiltImage, in_steps_image: ImageRunner
) -> None:
    listed = in_steps_image.run(["python3", "-c", LIST_CONSOLE_SCRIPTS])
    assert listed.returncode == 0, listed.stderr
    scripts = json.loads(listed.stdout)
    assert "bluegreen-step" in scripts
    failed = {}
    for script in scripts:
        ran = in_steps_image.run([script, "--help"])
        if ran.returncode != 0:
            failed[script] = ran.stderr.strip().splitlines()[-1:] or [f"exit {ran.returncode}"]
    assert failed == {}, f"console scripts of {steps_image.reference} that fail: {failed}"
    helped = in_steps_image.run(["bluegreen-step", "--help"])
    assert [step for step in COMMANDS if step not in helped.stdout] == []


def test_the_steps_image_runs_unprivileged_and_carries_only_what_its_steps_import(
    steps_image: BuiltImage, in_steps_image: ImageRunner
) -> None:
    config = steps_image.config()
    assert config["Entrypoint"] == ["bluegreen-step"]
    assert config["User"] == "65532:65532"
    who = in_steps_image.run(["id", "-u"])
    assert who.stdout.strip() == "65532", who.stderr
    modules = list(LEFT_OUT)
    probe = f"import importlib.util as u, json; print(json.dumps([m for m in {modules!r} if u.find_spec(m)]))"
    present = in_steps_image.run(["python3", "-c", probe])
    assert present.returncode == 0, present.stderr
    assert json.loads(present.stdout) == []
    # Every module of every step imports, without anything left out.
    loaded = in_steps_image.run(
        [
            "python3",
            "-c",
            "import importlib, steps.cli; [importlib.import_module(m) for m in steps.cli.COMMANDS.values()]",
        ]
    )
    assert loaded.returncode == 0, loaded.stderr
    # As root: a few directories of the base are closed to the image user.
    measured = in_steps_image.run(["du", "--summarize", "--one-file-system", "--bytes", "/"], user="0:0")
    assert measured.returncode == 0, measured.stderr
    size = int(measured.stdout.split()[0])
    print(f"\n{steps_image.reference}: {size / 1e6:.0f} MB uncompressed")
    assert size < STEPS_IMAGE_LIMIT_BYTES, f"{size / 1e6:.0f} MB"


@pytest.mark.parametrize("where,container,security", steps_containers(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_template_command_line_is_one_the_steps_image_runs(
    steps_image: BuiltImage,
    in_steps_image: ImageRunner,
    where: str,
    container: dict[str, Any],
    security: dict[str, Any],
) -> None:
    # The templates run the image as their Pod's user, which must be the image's own: the files it needs are its.
    user = f"{security['runAsUser']}:{security['runAsGroup']}"
    assert user == steps_image.config()["User"], where
    command, args = container["command"], container.get("args") or []
    if not args:  # the release set's placeholder container: its command only has to exist and succeed
        ran = in_steps_image.run(command, user=user)
        assert ran.returncode == 0, f"{where}: {command} {ran.stderr}"
        return
    helped = in_steps_image.run([*command, args[0], "--help"], user=user)
    assert helped.returncode == 0, f"{where}: {command} {args[0]} --help: {helped.stderr}"
    flags = sorted({arg for arg in args if re.fullmatch(r"--[a-z][a-z-]*", arg)})
    # Whole flags: --name must not pass on the strength of --namespace.
    assert [flag for flag in flags if not re.search(rf"{flag}(?![a-z-])", helped.stdout)] == [], where


def test_outside_a_pod_a_step_in_the_image_says_it_reads_no_kubeconfig(in_steps_image: ImageRunner) -> None:
    ran = in_steps_image.run(["bluegreen-step", "status", "--namespace", "payments", "user-service"])
    assert ran.returncode == 2, ran.stderr
    assert KUBECONFIG_NEEDS_CLIENT in ran.stderr
    assert "Traceback" not in ran.stderr


def test_the_demo_app_image_runs_its_own_command_as_its_user(built_images: dict[str, BuiltImage]) -> None:
    image = built_images["demo-app"]
    config = image.config()
    assert config["User"] == "65532:65532"
    runner = ImageRunner(image)
    try:
        # An unknown mode makes the app stop at once with exit code 2 and say so: its command, its file and its
        # user are what ran.
        ran = runner.run(config["Cmd"], env={"DEMO_APP_MODE": "no-such-mode"})
        assert ran.returncode == 2, ran.stderr
        assert "no-such-mode" in ran.stdout + ran.stderr
        who = runner.run(["id", "-u"])
        assert who.stdout.strip() == "65532"
        version = runner.run(["printenv", "DEMO_APP_VERSION"])
        assert version.stdout.strip() == image.reference.rsplit(":", 1)[1]
    finally:
        runner.close()


@pytest.fixture(scope="module")
def mirror() -> Iterator[LocalRegistry]:
    """crane's registry on loopback, standing for every public registry the manifests name."""
    try:
        crane = tools.program("crane")
    except tools.ToolsNotBuilt as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    with LocalRegistry("127.0.0.1", crane) as registry:
        yield registry


def launched(image: PulledImage, container: dict[str, Any]) -> list[str]:
    """The argv the node runs for ``container`` of ``image``: Kubernetes' command and args rules over its config."""
    config = image.config
    return command_line(container, tuple(config.get("Entrypoint") or ()), tuple(config.get("Cmd") or ()), {})


def run_in_root(image: PulledImage, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` in the pulled root filesystem, with the image's user, environment and working directory."""
    environment = dict(item.split("=", 1) for item in image.config.get("Env") or [])
    user = image.config.get("User") or "0:0"
    return subprocess.run(
        [
            "chroot",
            f"--userspec={user}",
            str(image.rootfs),
            "sh",
            "-c",
            'cd "$0" && exec "$@"',
            image.config.get("WorkingDir") or "/",
            *argv,
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_steps_image_pushed_to_the_mirror_is_pulled_by_its_public_name_and_runs_as_kubernetes_says(
    steps_image: BuiltImage, mirror: LocalRegistry, tmp_path: Path
) -> None:
    if steps_image.engine != "buildah":
        pytest.skip("pushed here with buildah; a Docker engine's images are pushed by docker push")
    public = Reference.parse(steps_image.reference)
    digest_file = tmp_path / "digest"
    pushed = subprocess.run(
        [
            "buildah",
            "push",
            "--quiet",
            "--tls-verify=false",
            "--digestfile",
            str(digest_file),
            steps_image.reference,
            f"docker://{mirror.reference(public.repository, public.tag)}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    store = ImageStore(mirror.address, tmp_path / "store")
    try:
        pulled = store.pull(steps_image.reference)  # the public name; the mirror answers for ghcr.io
        published = (pulled.rootfs.parent / "READY").stat()
        again = store.pull(f"{steps_image.reference.rsplit(':', 1)[0]}@{pulled.digest}")
    finally:
        store.close()
    assert pulled.digest == digest_file.read_text().strip()
    assert pulled.image_id == f"ghcr.io/argo-bluegreen/steps@{pulled.digest}"
    # By digest the same image is the same root filesystem, not unpacked a second time (that would publish anew).
    assert again.rootfs == pulled.rootfs
    assert (again.rootfs.parent / "READY").stat().st_ino == published.st_ino

    # args replace the image's Cmd and keep its Entrypoint.
    version = run_in_root(pulled, launched(pulled, {"args": ["--version"]}))
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"bluegreen-step {public.tag}"
    # command replaces the Entrypoint; the process runs as the image's user, from its virtualenv.
    who = "import os, sys; print(os.getuid(), os.getcwd(), sys.executable)"
    overridden = run_in_root(pulled, launched(pulled, {"command": ["python3", "-c", who]}))
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stdout.split() == ["65532", "/", "/opt/bluegreen/bin/python3"]


def test_an_image_the_mirror_does_not_hold_is_not_pulled(mirror: LocalRegistry, tmp_path: Path) -> None:
    store = ImageStore(mirror.address, tmp_path / "store")
    try:
        with pytest.raises(PullError, match="not found"):
            store.pull("ghcr.io/argo-bluegreen/steps:no-such-tag")
    finally:
        store.close()
