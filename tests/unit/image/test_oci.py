"""OCI config/manifest builders and references: golden values (no daemon)."""

from __future__ import annotations

import json

import pytest

from spawner.image import oci

DIFF = "sha256:" + "a" * 64
BLOB = "sha256:" + "b" * 64
BASE = "127.0.0.1:5000/lockstep/base@sha256:" + "c" * 64


def _config():
    runtime = oci.project_runtime(project="iris", lock_hash="sha256:" + "d" * 64, base=BASE)
    return oci.image_config(
        runtime=runtime, diff_ids=[DIFF], history=["conda package x"], created=oci.created_at(0)
    )


def test_project_config_golden():
    config = _config()
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert config["config"] == {
        "User": "1000:100",
        "WorkingDir": "/home/jovyan",
        "Env": [
            "CONDA_PREFIX=/opt/env",
            "HOME=/home/jovyan",
            "LANG=C.UTF-8",
            "PATH=/opt/env/bin:/usr/local/bin:/usr/bin:/bin",
            "SHELL=/bin/bash",
        ],
        "Entrypoint": ["/usr/bin/tini", "-g", "--"],
        "Cmd": ["jupyterhub-singleuser"],
        "Labels": {
            "org.lockstep.base": BASE,
            "org.lockstep.lock-hash": "sha256:" + "d" * 64,
            "org.lockstep.project": "iris",
        },
        "ExposedPorts": {"8888/tcp": {}},
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": [DIFF]}
    assert config["history"] == [
        {"created": "1970-01-01T00:00:00Z", "created_by": "conda package x"}
    ]
    assert oci.sha256_digest(oci.canonical_json(config)) == (
        "sha256:5340385fa87bb1f911fe71389d2a829d5a5a6ca7ae5bb050340d54bf7aea0666"
    )


def test_manifest_golden():
    config = oci.canonical_json(_config())
    desc = oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), len(config))
    manifest = oci.image_manifest(config=desc, layers=[oci.Descriptor(oci.MEDIA_LAYER, BLOB, 42)])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["layers"] == [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": BLOB, "size": 42}
    ]
    raw = oci.canonical_json(manifest)
    assert json.loads(raw) == manifest and b" " not in raw
    assert oci.sha256_digest(raw) == (
        "sha256:151f8b7450c06c10a50b2419d0285a16041d1b22f5cd6afded8807cbf9731c7d"
    )


def test_history_must_match_layers():
    with pytest.raises(ValueError, match="history"):
        oci.image_config(runtime=oci.RuntimeSpec(), diff_ids=[DIFF], history=[], created="x")


def test_created_from_epoch():
    assert oci.created_at(1700000000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:5000/lockstep/iris", ("127.0.0.1:5000", "lockstep/iris", "", "")),
        ("127.0.0.1:5000/lockstep/iris:dev", ("127.0.0.1:5000", "lockstep/iris", "dev", "")),
        (f"reg.example.com/a/b@{BLOB}", ("reg.example.com", "a/b", "", BLOB)),
        (f"localhost/x:1@{BLOB}", ("localhost", "x", "1", BLOB)),
    ],
)
def test_parse_reference(text, expected):
    ref = oci.parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == expected
    assert str(ref) == text


def test_reference_needs_a_host():
    with pytest.raises(ValueError, match="HOST"):
        oci.parse_reference("lockstep/iris")


def test_repository_for():
    assert (
        oci.repository_for("127.0.0.1:5000/lockstep/", "iris").name
        == "127.0.0.1:5000/lockstep/iris"
    )
    assert oci.repository_for("reg.example.com", "iris").repository == "iris"
    assert str(oci.repository_for("h:1/ns", "p").by_digest(BLOB)) == f"h:1/ns/p@{BLOB}"
