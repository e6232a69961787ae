"""A container's environment and its expanded command line, as the kubelet computes them.

Order and precedence follow the kubelet
(https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/):
the image's env, then service-link variables (``KUBERNETES_SERVICE_HOST`` and friends always,
other Services of the namespace when ``enableServiceLinks``), then ``envFrom`` sources in order,
then ``env`` entries in order, each later one winning. ``$(VAR)`` in an ``env`` value refers to
variables defined before it; ``$$`` escapes; an unknown reference stays as written.
Command and args are expanded against the final environment.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from testenv.node import downward
from testenv.node.kubeapi import KubeApi

JsonObj = dict[str, Any]
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvError(RuntimeError):
    """A required ConfigMap/Secret or key is missing: the container waits in CreateContainerConfigError."""


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` is a literal ``$``, unknown references stay verbatim."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(variables[name] if name in variables else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def service_link_env(services: list[JsonObj], kubernetes_service: JsonObj | None) -> dict[str, str]:
    """Docker-link style variables for ``services`` (and ``kubernetes`` from ``default``).

    See https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables.
    """
    env: dict[str, str] = {}
    entries = list(services)
    if kubernetes_service is not None:
        entries.append(kubernetes_service)
    for svc in entries:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        ports = spec.get("ports") or []
        if not ports:
            continue
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        first_proto = str(ports[0].get("protocol", "TCP")).lower()
        env[f"{prefix}_PORT"] = f"{first_proto}://{ip}:{ports[0]['port']}"
        for port in ports:
            proto = str(port.get("protocol", "TCP"))
            base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


class EnvResolver:
    """Resolves one container's environment against the API (Secrets, ConfigMaps, Services)."""

    def __init__(self, api: KubeApi, facts: downward.PodFacts) -> None:
        self.api = api
        self.facts = facts
        self.namespace = str(facts.pod["metadata"]["namespace"])
        self._objects: dict[tuple[str, str], JsonObj | None] = {}

    def _object(self, resource: str, name: str) -> JsonObj | None:
        key = (resource, name)
        if key not in self._objects:
            self._objects[key] = self.api.get_or_none(f"/api/v1/namespaces/{self.namespace}/{resource}/{name}")
        return self._objects[key]

    def _data(self, resource: str, name: str) -> dict[str, str] | None:
        obj = self._object(resource, name)
        if obj is None:
            return None
        raw = obj.get("data") or {}
        if resource == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
        return dict(raw)

    def _key_ref(self, resource: str, ref: JsonObj) -> str | None:
        kind = "secret" if resource == "secrets" else "configmap"
        data = self._data(resource, ref["name"])
        if data is None:
            if ref.get("optional"):
                return None
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            label = "Secret" if resource == "secrets" else "ConfigMap"
            raise EnvError(f"couldn't find key {ref['key']} in {label} {self.namespace}/{ref['name']}")
        return data[ref["key"]]

    def _value_from(self, container: JsonObj, source: JsonObj) -> str | None:
        if "fieldRef" in source:
            return downward.field_value(self.facts, source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            return downward.resource_value(
                self.facts, ref.get("containerName") or container["name"], ref["resource"], ref.get("divisor")
            )
        if "secretKeyRef" in source:
            return self._key_ref("secrets", source["secretKeyRef"])
        if "configMapKeyRef" in source:
            return self._key_ref("configmaps", source["configMapKeyRef"])
        raise EnvError(f"unsupported valueFrom {sorted(source)}")

    def _service_links(self) -> dict[str, str]:
        kubernetes = self.api.get_or_none("/api/v1/namespaces/default/services/kubernetes")
        services: list[JsonObj] = []
        if self.facts.pod["spec"].get("enableServiceLinks", True):
            listed = self.api.get(f"/api/v1/namespaces/{self.namespace}/services")
            services = [
                s
                for s in listed.get("items", [])
                if not (self.namespace == "default" and s["metadata"]["name"] == "kubernetes")
            ]
        return service_link_env(services, kubernetes)

    def environment(self, container: JsonObj, image_env: Mapping[str, str]) -> dict[str, str]:
        """The container's final environment, or :class:`EnvError` for a missing required source."""
        env: dict[str, str] = dict(image_env)
        env["HOSTNAME"] = str(self.facts.pod["metadata"]["name"])
        env.update(self._service_links())
        for source in container.get("envFrom", []) or []:
            resource: str
            ref: JsonObj
            resource, ref = (
                ("secrets", source["secretRef"]) if "secretRef" in source else ("configmaps", source["configMapRef"])
            )
            data = self._data(resource, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                kind = "secret" if resource == "secrets" else "configmap"
                raise EnvError(f'{kind} "{ref["name"]}" not found')
            prefix = source.get("prefix", "")
            for key, text in data.items():
                if _C_IDENTIFIER.match(prefix + key) or resource == "configmaps":
                    env[prefix + key] = text
        for entry in container.get("env", []) or []:
            if "valueFrom" in entry:
                value = self._value_from(container, entry["valueFrom"])
                if value is None:
                    continue
                env[entry["name"]] = value
            else:
                env[entry["name"]] = expand(str(entry.get("value", "")), env)
        env.setdefault("HOME", "/")
        return env


def command_line(
    container: JsonObj, entrypoint: tuple[str, ...], cmd: tuple[str, ...], env: Mapping[str, str]
) -> list[str]:
    """Argv from the image's entrypoint/cmd and the container's command/args, expanded.

    ``command`` replaces the entrypoint and drops the image's cmd; ``args`` replaces only cmd.
    """
    command = container.get("command")
    args = container.get("args")
    argv = [*command, *(args or [])] if command else [*entrypoint, *(args if args is not None else cmd)]
    return [expand(str(part), env) for part in argv]
