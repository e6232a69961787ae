"""The node's image store without a registry: references, layers and whiteouts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from testenv.node.image_store import PLAIN_LAYERS, PullError, Reference, unpack_layer
from testenv.node.images import ImageNotFound, user_of

LAYER = next(iter(PLAIN_LAYERS))


def layer(path: Path, *members: tuple[str, str | None, str], mode: int = 0o644) -> Path:
    """A tar layer of (name, content or None for a directory, symlink target or ""); ``hard:``/``dev:`` prefixes
    in the third field make a hard link or a character device instead."""
    with tarfile.open(path, "w") as archive:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link.startswith("hard:"):
                info.type, info.linkname = tarfile.LNKTYPE, link.removeprefix("hard:")
                archive.addfile(info)
            elif link.startswith("dev:"):
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 8, 0
                archive.addfile(info)
            elif link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            elif content is None:
                info.type, info.mode = tarfile.DIRTYPE, mode if mode != 0o644 else 0o755
                archive.addfile(info)
            else:
                data = content.encode()
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "text,expected",
    [
        ("ghcr.io/argo-bluegreen/steps:0.1.0", Reference("ghcr.io", "argo-bluegreen/steps", "0.1.0")),
        ("python:3.11-slim", Reference("docker.io", "library/python", "3.11-slim")),
        ("busybox", Reference("docker.io", "library/busybox", "latest")),
        ("10.243.0.1:5000/argo-bluegreen/demo-app:v2", Reference("10.243.0.1:5000", "argo-bluegreen/demo-app", "v2")),
        ("localhost/base", Reference("localhost", "base", "latest")),
        (
            "quay.io/argoproj/argoexec@sha256:" + "a" * 64,
            Reference("quay.io", "argoproj/argoexec", "", "sha256:" + "a" * 64),
        ),
        ("quay.io/x/y:v1@sha256:" + "b" * 64, Reference("quay.io", "x/y", "v1", "sha256:" + "b" * 64)),
    ],
)
def test_a_reference_splits_as_the_container_runtimes_split_it(text: str, expected: Reference) -> None:
    assert Reference.parse(text) == expected
    assert Reference.parse(text).wanted == (expected.digest or expected.tag)


def test_whiteouts_delete_and_opaque_directories_empty_what_the_layers_below_had(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack_layer(
        LAYER,
        layer(
            tmp_path / "1.tar",
            ("a", None, ""),
            ("a/x", "x", ""),
            ("a/y", "y", ""),
            ("b", "b", ""),
            (".bashrc", "rc", ""),
        ),
        root,
    )
    unpack_layer(
        LAYER, layer(tmp_path / "2.tar", ("./a/.wh..wh..opq", "", ""), ("./a/z", "z", ""), ("./.wh.b", "", "")), root
    )
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [".bashrc", "a", "a/z"]


def test_a_whiteout_through_a_planted_symlink_deletes_nothing_on_the_node(tmp_path: Path) -> None:
    outside = tmp_path / "node-etc"
    outside.mkdir()
    (outside / "passwd").write_text("the node's own")
    root = tmp_path / "root"
    unpack_layer(LAYER, layer(tmp_path / "1.tar", ("etc", None, str(outside))), root)
    with pytest.raises(PullError, match="symlink"):
        unpack_layer(LAYER, layer(tmp_path / "2.tar", ("etc/.wh.passwd", "", "")), root)
    assert (outside / "passwd").read_text() == "the node's own"


def test_a_layer_that_climbs_out_of_the_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PullError):
        unpack_layer(LAYER, layer(tmp_path / "1.tar", ("../escaped", "x", "")), tmp_path / "root")
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(PullError):
        unpack_layer(LAYER, layer(tmp_path / "2.tar", ("../.wh.victim", "", "")), tmp_path / "root")


def test_a_layer_of_an_unknown_media_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PullError, match="zstd"):
        unpack_layer("application/vnd.oci.image.layer.v1.tar+zstd", layer(tmp_path / "1.tar"), tmp_path / "root")


def test_an_images_user_by_name_is_looked_up_in_its_own_passwd_and_group(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nbluegreen:x:65532:65532::/nonexistent:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nbluegreen:x:65532:\nstaff:x:50:\n")
    assert user_of({"User": "65532:65532"}, tmp_path) == (65532, 65532)
    assert user_of({"User": "bluegreen"}, tmp_path) == (65532, 65532)  # the user's primary group
    assert user_of({"User": "bluegreen:staff"}, tmp_path) == (65532, 50)
    assert user_of({"User": "1000"}, tmp_path) == (1000, 0)  # a uid the image does not name: group 0
    assert user_of({}, tmp_path) is None
    with pytest.raises(ImageNotFound, match="nobody"):
        user_of({"User": "nobody"}, tmp_path)


def test_a_hard_link_to_a_path_of_the_node_is_refused_and_the_file_left_alone(tmp_path: Path) -> None:
    secret = tmp_path / "node-secret"
    secret.write_text("the node's own")
    root = tmp_path / "root"
    with pytest.raises(PullError, match="hard link"):
        unpack_layer(LAYER, layer(tmp_path / "1.tar", ("x", "", f"hard:{secret}"), ("x", "overwritten", "")), root)
    assert secret.read_text() == "the node's own"
    assert secret.stat().st_nlink == 1


def test_a_hard_link_inside_the_image_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack_layer(
        LAYER, layer(tmp_path / "1.tar", ("usr", None, ""), ("usr/a", "same", ""), ("usr/b", "", "hard:usr/a")), root
    )
    assert (root / "usr" / "b").read_text() == "same"
    assert (root / "usr" / "a").stat().st_ino == (root / "usr" / "b").stat().st_ino


def test_device_nodes_are_not_made(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack_layer(LAYER, layer(tmp_path / "1.tar", ("disk", "", "dev:")), root)
    assert not (root / "disk").exists()


def test_a_file_over_a_lower_symlink_replaces_the_link_and_not_its_target(tmp_path: Path) -> None:
    outside = tmp_path / "node-python"
    outside.write_text("the node's own")
    root = tmp_path / "root"
    unpack_layer(LAYER, layer(tmp_path / "1.tar", ("python3", None, str(outside)), ("lib", None, "")), root)
    unpack_layer(LAYER, layer(tmp_path / "2.tar", ("python3", "the image's", ""), ("lib", "now a file", "")), root)
    assert outside.read_text() == "the node's own"
    assert not (root / "python3").is_symlink() and (root / "python3").read_text() == "the image's"
    assert (root / "lib").read_text() == "now a file"


def test_modes_are_kept_as_the_image_has_them(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack_layer(LAYER, layer(tmp_path / "1.tar", ("tmp", None, ""), mode=0o1777), root)
    unpack_layer(LAYER, layer(tmp_path / "2.tar", ("shared", "", ""), mode=0o664), root)
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (root / "shared").stat().st_mode & 0o777 == 0o664


def test_a_numeric_user_the_images_passwd_names_takes_its_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1001:2002::/home/app:/bin/sh\n")
    assert user_of({"User": "1001"}, tmp_path) == (1001, 2002)
