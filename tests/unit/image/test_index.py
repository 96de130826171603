"""``spawner.image.index``: which platforms get images, the OCI index, bytecode per platform."""

from __future__ import annotations

import json

import pytest

from spawner.errors import LockstepError
from spawner.image import oci
from spawner.image.index import PlatformManifest, compile_plan, image_index, image_platforms

AMD = PlatformManifest("linux-64", "sha256:" + "a" * 64, 1234)
ARM = PlatformManifest("linux-aarch64", "sha256:" + "b" * 64, 1300)


def test_only_linux_platforms_get_images_in_a_fixed_order():
    assert image_platforms(["win-64", "linux-aarch64", "osx-arm64", "linux-64"]) == (
        "linux-64", "linux-aarch64")
    with pytest.raises(LockstepError, match="add linux-64 or linux-aarch64 to platforms:"):
        image_platforms(["osx-arm64", "win-64"])


def test_index_names_both_manifests_with_their_platforms_and_is_stable():
    data = image_index([ARM, AMD])
    assert data == image_index([AMD, ARM])  # one digest whatever the build order
    index = json.loads(data)
    assert index["mediaType"] == oci.MEDIA_INDEX and index["schemaVersion"] == 2
    assert [(m["digest"], m["size"], m["platform"]) for m in index["manifests"]] == [
        (AMD.digest, 1234, {"architecture": "amd64", "os": "linux"}),
        (ARM.digest, 1300, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]
    assert all(m["mediaType"] == oci.MEDIA_MANIFEST for m in index["manifests"])
    with pytest.raises(ValueError):
        image_index([AMD, AMD])


@pytest.mark.parametrize(("platform", "env", "expected"), [
    ("linux-64", "3.11", "env"), ("linux-aarch64", "3.11", "host"),
    ("linux-aarch64", "3.12", "skip"), ("linux-aarch64", None, "skip"),
])
def test_bytecode_for_a_foreign_platform_only_with_the_same_python(platform, env, expected):
    assert compile_plan(platform, host_platform="linux-64", env_python=env,
                        host_python="3.11") == expected
