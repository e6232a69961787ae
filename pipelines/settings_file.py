"""The render settings file: the settings a render used, kept beside its output so renders can be repeated.

A settings file is YAML with ``bluegreen-render``'s long flags as keys, without their ``--``::

    namespace: payments
    image: registry.example.com/platform/bluegreen-steps@sha256:...
    alert-deploy-minutes: 45

``bluegreen-render --settings FILE`` reads one, and every render writes the settings it used to
``<out>/bluegreen-render.yaml``, which the next render into that directory (``--check`` too) reads back when no
``--settings`` is given. A flag overrides a key. Only the keys that were chosen are written: the rest take the defaults
of the release that renders (listed in the file as comments), so upgrading argo-bluegreen and rendering again moves
the default steps image to the new release's tag instead of keeping the old one.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from bluegreen_version import __version__
from pipelines.settings import RenderSettings

#: The settings file a render writes into its output directory.
SETTINGS_FILE = "bluegreen-render.yaml"

#: Each key of a settings file (the flag without ``--``) and the :class:`RenderSettings` field it sets.
KEYS: dict[str, str] = {
    "namespace": "namespace",
    "image": "image",
    "cosign-image": "cosign_image",
    "argo-ui-url": "argo_ui_url",
    "pushgateway-url": "pushgateway_url",
    "cleanup-schedule": "cleanup_schedule",
    "alert-deploy-minutes": "deploy_alert_minutes",
    "alert-cleanup-hours": "cleanup_alert_hours",
    "notifications-secret": "notifications_secret",
    "image-pull-secrets": "image_pull_secrets",
    "prometheus-rule-labels": "prometheus_rule_labels",
    "step-cpu-request": "step_cpu_request",
    "step-cpu-limit": "step_cpu_limit",
    "step-memory-request": "step_memory_request",
    "step-memory-limit": "step_memory_limit",
}

#: A request and its limit are checked together; a key checked alone is paired with a partner that cannot conflict.
_UNCONFLICTING_PARTNER: dict[str, tuple[str, str]] = {
    "step-cpu-request": ("step_cpu_limit", "1000000"),
    "step-cpu-limit": ("step_cpu_request", "1m"),
    "step-memory-request": ("step_memory_limit", "1000000Ti"),
    "step-memory-limit": ("step_memory_request", "1"),
}

#: Settings a user chose, by key, in :data:`KEYS` order; what a settings file holds.
Chosen = dict[str, str | int]

_DEFAULTS = RenderSettings()


class SettingsFileError(ValueError):
    """A settings file that cannot be used; ``str(error)`` is one line naming the file, the key and what to do."""


def default(key: str) -> str | int:
    """The value ``key`` takes when no file or flag chooses it: this release's default."""
    value: str | int = getattr(_DEFAULTS, KEYS[key])
    return value


def check_value(key: str, value: object) -> str | int:
    """``value`` for ``key`` if it is of the key's type and a valid setting; ValueError saying what to write if not.

    Each key is checked alone, through :class:`RenderSettings` itself, so the file's messages are the flags' messages
    and name the one key at fault.
    """
    wanted = default(key)
    if value is None:
        raise ValueError(f"{key}: has no value; give one, or remove the line to use the default ({wanted!r})")
    checked: str | int
    if isinstance(wanted, int):
        # YAML's true and false are ints to Python; a boolean is never meant as a number of minutes.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"{key}: {value!r} is not a whole number; write one without quotes, such as {key}: {wanted}"
            )
        checked = value
    else:
        checked = _as_text(key, value)
    partner = dict([_UNCONFLICTING_PARTNER[key]]) if key in _UNCONFLICTING_PARTNER else {}
    try:
        RenderSettings(**{KEYS[key]: checked}, **partner)  # type: ignore[arg-type]
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None
    return checked


def _as_text(key: str, value: object) -> str:
    """A text setting's value; the two list-like settings may also be written as YAML's list and mapping."""
    if key == "image-pull-secrets" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if key == "prometheus-rule-labels" and isinstance(value, dict):
        if all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return ",".join(f"{k}={v}" for k, v in value.items())
        raise ValueError(f"{key}: every label key and value must be text; quote values YAML reads otherwise")
    if not isinstance(value, str):
        raise ValueError(f"{key}: {value!r} is not text; write text, in quotes if YAML reads it as something else")
    return value


def _unknown_key(key: object) -> str:
    """What to say about a key that sets nothing, with the nearest real key when it looks like a typo."""
    near = difflib.get_close_matches(str(key), list(KEYS), n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {str(key)!r}{hint}; the keys are bluegreen-render's flags without their --: {', '.join(KEYS)}"


def _not_yaml(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return (
        f"not YAML{where} ({problem}); write one `key: value` per line and quote a value that starts with * or "
        "holds ': ' or ' #', such as cleanup-schedule: '*/5 * * * *'"
    )


def parse(text: str) -> Chosen:
    """The chosen settings a settings file's text holds; SettingsFileError (without the file's name) if unusable."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SettingsFileError(_not_yaml(error)) from None
    if loaded is None:  # an empty file chooses nothing
        return {}
    if not isinstance(loaded, dict):
        shape = "a list" if isinstance(loaded, list) else f"the value {loaded!r}"
        raise SettingsFileError(
            f"holds {shape}, not a mapping; write one `key: value` per line, the keys being bluegreen-render's flags "
            "without their --"
        )
    unknown = [key for key in loaded if key not in KEYS]
    if unknown:
        raise SettingsFileError(_unknown_key(unknown[0]))
    try:
        return {key: check_value(key, loaded[key]) for key in KEYS if key in loaded}
    except ValueError as error:
        raise SettingsFileError(str(error)) from None


def read(path: Path) -> Chosen:
    """The chosen settings of the file at ``path``; SettingsFileError naming the file if it cannot be used."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SettingsFileError(f"{path}: cannot read: {reason}; name a readable settings file") from None
    try:
        return parse(text)
    except SettingsFileError as error:
        raise SettingsFileError(f"{path}: {error}") from None


def settings_of(chosen: Chosen) -> RenderSettings:
    """The render settings: the chosen keys over this release's defaults. ValueError when a value is not valid."""
    return RenderSettings(**{KEYS[key]: value for key, value in chosen.items()})  # type: ignore[arg-type]


def text(chosen: Chosen) -> str:
    """The settings file a render writes: the chosen keys, then this release's defaults for the rest, commented."""
    lines = [
        "# The settings bluegreen-render used for this directory. `bluegreen-render --out DIR` and",
        "# `bluegreen-render --check --out DIR` read them back; a flag overrides a key, and `--settings FILE` reads",
        "# another file instead. Keys left out take the defaults of the release that renders; argo-bluegreen",
        f"# {__version__} used:",
    ]
    left_out = [key for key in KEYS if key not in chosen]
    lines += [f"#   {yaml.safe_dump({key: default(key)}, width=4096).strip()}" for key in left_out] or ["#   (none)"]
    ordered = {key: chosen[key] for key in KEYS if key in chosen}
    body = yaml.safe_dump(ordered, sort_keys=False, width=4096, default_flow_style=False) if ordered else "{}\n"
    return "\n".join(lines) + "\n" + body


def from_flags(values: dict[str, str | int | None]) -> Chosen:
    """The settings given as flags (by key), leaving out those not given (None)."""
    return {key: value for key in KEYS if (value := values.get(key)) is not None}


__all__ = [
    "KEYS",
    "SETTINGS_FILE",
    "Chosen",
    "SettingsFileError",
    "check_value",
    "default",
    "from_flags",
    "parse",
    "read",
    "settings_of",
    "text",
]
