import re

from hypothesis import given
from hypothesis import strategies as st

from steps.images import version_label

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$")
DIGEST = "sha256:" + "ab12" * 16


def test_the_tag_names_the_version_and_a_digest_only_image_its_digest() -> None:
    assert version_label("registry.example/shop/web:v1.4.2") == "v1.4.2"
    assert version_label(f"registry.example/shop/web:v1.4.2@{DIGEST}") == "v1.4.2"
    assert version_label(f"registry.example/shop/web@{DIGEST}") == "sha256-" + ("ab12" * 16)[:56]
    assert version_label("web") == "latest"
    assert version_label("web:_build.7-") == "build.7"


@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True), st.booleans())
def test_every_valid_tag_gives_a_valid_label_value(tag: str, pinned: bool) -> None:
    image = f"registry.example/web:{tag}" + (f"@{DIGEST}" if pinned else "")
    assert LABEL_VALUE.fullmatch(version_label(image))
