"""Server-side apply bodies are JSON that a YAML decoder reads back to the same object, whatever the text."""

from __future__ import annotations

import json

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from steps.kube import apply_patch

# Lone surrogates cannot be sent as UTF-8 at all; every other code point can appear in a team's object.
text = st.text(st.characters(exclude_categories=["Cs"]))


@given(st.dictionaries(text, text | st.lists(text, max_size=3), max_size=4))
# YAML reads these two printable characters as line breaks; hypothesis found the first one.
@example({"\u2028": "", "line": "a\u2029b"})
def test_any_text_survives_json_and_yaml(body: dict[str, object]) -> None:
    encoded = apply_patch({"metadata": {"annotations": body}})
    assert json.loads(encoded) == {"metadata": {"annotations": body}}
    assert yaml.safe_load(encoded.decode()) == {"metadata": {"annotations": body}}


def test_characters_beyond_the_bmp_are_sent_as_themselves() -> None:
    encoded = apply_patch({"owner": "checkout 🚀 squad"})
    assert "🚀".encode() in encoded and b"\\ud83d" not in encoded
