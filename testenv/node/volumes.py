"""A Pod's volumes as host directories under the agent's work dir, kept current while it runs.

Supported sources (https://kubernetes.io/docs/concepts/storage/volumes/): ``emptyDir`` (one
directory per Pod, world-writable as the kubelet makes it, shared by its containers),
``configMap``, ``secret``, ``downwardAPI`` and ``projected`` (``serviceAccountToken`` via the
TokenRequest API, bound to the Pod and refreshed after 80% of its lifetime like the kubelet does;
``configMap``, including ``kube-root-ca.crt``; ``secret``; ``downwardAPI``).

``hostPath`` is accepted only for paths inside the agent's work dir: anything else would let a
Pod write to the machine running the tests, which no test needs. Other paths keep the Pod in
``ContainerCreating`` with a message saying so.

Content volumes are written the kubelet's way (an ``..data`` symlink switched atomically to a new
timestamped directory), so a reader never sees half a refresh.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testenv.node import downward
from testenv.node.kubeapi import ApiError, KubeApi

JsonObj = dict[str, Any]
DEFAULT_FILE_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
TOKEN_REFRESH_FRACTION = 0.8
DATA_LINK = "..data"


class VolumeError(RuntimeError):
    """A volume cannot be set up yet (a missing object, a refused path); the kubelet would retry."""


@dataclass
class _Token:
    token: str
    issued: float
    lifetime: float


def write_atomically(directory: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Publish ``files`` (relative path -> content, mode) under ``directory``; True if anything changed."""
    directory.mkdir(parents=True, exist_ok=True)
    current = directory / DATA_LINK
    if current.is_symlink() and _same_content(directory / os.readlink(current), files):
        return False
    stamp = f"..{datetime.datetime.now(datetime.UTC).strftime('%Y_%m_%d_%H_%M_%S.%f')}"
    fresh = directory / stamp
    fresh.mkdir(mode=0o755)
    for rel, (content, mode) in files.items():
        target = fresh / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    old = os.readlink(current) if current.is_symlink() else None
    staging = directory / "..data_tmp"
    staging.unlink(missing_ok=True)
    staging.symlink_to(stamp)
    staging.rename(current)
    for top in {rel.split("/", 1)[0] for rel in files}:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA_LINK}/{top}")
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and not entry.exists():
            entry.unlink()  # a key that is no longer in the payload
    if old is not None:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True


def _same_content(directory: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    try:
        present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
        return present == set(files) and all((directory / rel).read_bytes() == c for rel, (c, _) in files.items())
    except OSError:
        return False


class PodVolumes:
    """Creates and refreshes one Pod's volumes; :meth:`host_path` maps a volume name to its directory."""

    def __init__(self, api: KubeApi, pod: JsonObj, pod_dir: Path, agent_workdir: Path) -> None:
        self.api = api
        self.pod = pod
        self.root = pod_dir / "volumes"
        self.agent_workdir = agent_workdir.resolve()
        self._tokens: dict[tuple[str, str, int], _Token] = {}
        self._paths: dict[str, Path] = {}

    @property
    def namespace(self) -> str:
        """The Pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    def host_path(self, name: str) -> Path:
        """The directory (or hostPath) volume ``name`` is served from; set up by :meth:`sync`."""
        return self._paths[name]

    def sync(self, facts: downward.PodFacts) -> None:
        """Create every volume, or bring its content up to date; raises :class:`VolumeError`."""
        self.pod = facts.pod
        for volume in self.pod.get("spec", {}).get("volumes", []) or []:
            self._paths[volume["name"]] = self._sync_one(volume, facts)

    def tear_down(self) -> None:
        """Remove every volume this node made for the Pod; a hostPath's directory is not the Pod's and stays.

        The kubelet does this as soon as a Pod is terminal, not when it is deleted: a finished
        Pod's emptyDirs would otherwise hold node disk for as long as its object lives.
        """
        shutil.rmtree(self.root, ignore_errors=True)
        self._paths.clear()

    def _sync_one(self, volume: JsonObj, facts: downward.PodFacts) -> Path:
        name = str(volume["name"])
        target: Path = self.root / name
        if "emptyDir" in volume:
            if not target.is_dir():
                target.mkdir(parents=True)
                # The kubelet creates emptyDirs 0777 so any runAsUser can write to them.
                target.chmod(0o777)
            return target
        if "hostPath" in volume:
            path = Path(str(volume["hostPath"]["path"])).resolve()
            if not path.is_relative_to(self.agent_workdir):
                raise VolumeError(
                    f'hostPath volume "{name}" refused: {path} is outside the node agent\'s work dir '
                    f"{self.agent_workdir} (this node never exposes the host's own files)"
                )
            return path
        files: dict[str, tuple[bytes, int]] | None
        if "configMap" in volume:
            files = self._object_files("configmaps", volume["configMap"], volume["configMap"].get("defaultMode"))
        elif "secret" in volume:
            source = dict(volume["secret"], name=volume["secret"].get("secretName"))
            files = self._object_files("secrets", source, volume["secret"].get("defaultMode"))
        elif "downwardAPI" in volume:
            files = self._downward_files(volume["downwardAPI"], facts, volume["downwardAPI"].get("defaultMode"))
        elif "projected" in volume:
            files = self._projected_files(volume["projected"], facts)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise VolumeError(f'volume "{name}": unsupported volume source {kinds} on this node')
        write_atomically(target, files or {})
        return target

    def _object_files(
        self, resource: str, source: JsonObj, default_mode: int | None
    ) -> dict[str, tuple[bytes, int]] | None:
        kind = "configmap" if resource == "configmaps" else "secret"
        obj = self.api.get_or_none(f"/api/v1/namespaces/{self.namespace}/{resource}/{source['name']}")
        if obj is None:
            if source.get("optional"):
                return {}
            raise VolumeError(f'{kind} "{source["name"]}" not found')
        data: dict[str, bytes] = {}
        if resource == "configmaps":
            data.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        mode = DEFAULT_FILE_MODE if default_mode is None else int(default_mode)
        items = source.get("items")
        if not items:
            return {key: (value, mode) for key, value in data.items()}
        files: dict[str, tuple[bytes, int]] = {}
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise VolumeError(f'configmap references non-existent key "{item["key"]}" in {source["name"]}')
            files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
        return files

    def _downward_files(
        self, source: JsonObj, facts: downward.PodFacts, default_mode: int | None
    ) -> dict[str, tuple[bytes, int]]:
        mode = DEFAULT_FILE_MODE if default_mode is None else int(default_mode)
        files: dict[str, tuple[bytes, int]] = {}
        for item in source.get("items", []) or []:
            if "fieldRef" in item:
                value = downward.field_value(facts, item["fieldRef"]["fieldPath"])
            else:
                ref = item["resourceFieldRef"]
                value = downward.resource_value(
                    facts, ref.get("containerName", ""), ref["resource"], ref.get("divisor")
                )
            files[item["path"]] = (value.encode(), int(item.get("mode", mode)))
        return files

    def _projected_files(self, projected: JsonObj, facts: downward.PodFacts) -> dict[str, tuple[bytes, int]]:
        default_mode = projected.get("defaultMode")
        files: dict[str, tuple[bytes, int]] = {}
        for source in projected.get("sources", []) or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                mode = DEFAULT_FILE_MODE if default_mode is None else int(default_mode)
                files[token["path"]] = (self._token(token).encode(), mode)
            elif "configMap" in source:
                files.update(self._object_files("configmaps", source["configMap"], default_mode) or {})
            elif "secret" in source:
                files.update(self._object_files("secrets", source["secret"], default_mode) or {})
            elif "downwardAPI" in source:
                files.update(self._downward_files(source["downwardAPI"], facts, default_mode))
            else:
                raise VolumeError(f"unsupported projected source {sorted(source)}")
        return files

    def _token(self, source: JsonObj) -> str:
        audience = str(source.get("audience") or "")
        seconds = int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        key = (self.pod["spec"].get("serviceAccountName") or "default", audience, seconds)
        cached = self._tokens.get(key)
        if cached and time.time() < cached.issued + TOKEN_REFRESH_FRACTION * cached.lifetime:
            return cached.token
        meta = self.pod["metadata"]
        spec: JsonObj = {
            "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if audience:
            spec["audiences"] = [audience]
        try:
            answer = self.api.create(
                f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{key[0]}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiError as exc:
            raise VolumeError(f"failed to fetch token: {exc.message}") from exc
        expires = datetime.datetime.fromisoformat(answer["status"]["expirationTimestamp"].replace("Z", "+00:00"))
        issued = time.time()
        self._tokens[key] = _Token(answer["status"]["token"], issued, max(expires.timestamp() - issued, 1.0))
        return self._tokens[key].token
