"""The model artifact builder: a golden digest, order independence, and refused paths."""

from __future__ import annotations

import json

import pytest

from spawner.image.oci import sha256_digest
from spawner.models.artifact import (
    ARTIFACT_TYPE,
    ModelError,
    ModelFile,
    build_model,
    check_path,
    read_manifest,
)

MODEL = b'{"slope": 2.0, "intercept": 1.0}'
VOCAB = b"a\nb\n"
GOLDEN = "sha256:51cac28260f14ab14aca17df363e19ce28251933e9d6f2df04847985d3699fc1"


def files() -> list[ModelFile]:
    return [ModelFile("model.json", sha256_digest(MODEL), len(MODEL)),
            ModelFile("sub/vocab.txt", sha256_digest(VOCAB), len(VOCAB))]


def test_same_files_give_the_golden_digest_in_any_order():
    assert build_model(files()).digest == GOLDEN
    assert build_model(reversed(files())).digest == GOLDEN
    other = [files()[0], ModelFile("sub/vocab.txt", sha256_digest(b"c\n"), 2)]
    assert build_model(other).digest != GOLDEN


def test_the_manifest_is_an_oci_1_1_artifact_with_one_titled_layer_per_file():
    manifest = json.loads(build_model(files()).manifest)
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["config"]["digest"] == sha256_digest(b"{}")
    assert [(layer["annotations"]["org.opencontainers.image.title"], layer["size"])
            for layer in manifest["layers"]] == [("model.json", len(MODEL)), ("sub/vocab.txt", 4)]


def test_read_manifest_round_trips():
    model = build_model(files())
    again = read_manifest(model.manifest)
    assert (again.digest, again.files, again.size) == (GOLDEN, model.files, len(MODEL) + 4)


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "", "a//b", "./a",
                                  "a\\b", "a\nb", "x" * 256])
def test_paths_that_could_escape_or_confuse_are_refused(path):
    with pytest.raises(ModelError, match="model path"):
        check_path(path)
    with pytest.raises(ModelError):
        build_model([ModelFile(path, sha256_digest(b""), 0)])


def test_a_manifest_from_a_registry_naming_a_bad_path_is_refused():
    manifest = json.loads(build_model(files()).manifest)
    manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] = "../../etc/cron.d/x"
    with pytest.raises(ModelError, match="'../../etc/cron.d/x' is not allowed"):
        read_manifest(json.dumps(manifest).encode())


def test_an_image_manifest_is_not_a_model():
    with pytest.raises(ModelError, match="is not a lockstep model"):
        read_manifest(b'{"schemaVersion": 2, "config": {}, "layers": []}', name="R@sha256:1")


def test_empty_and_duplicate_models_are_refused():
    with pytest.raises(ModelError, match="at least one file"):
        build_model([])
    with pytest.raises(ModelError, match="given twice"):
        build_model([files()[0], files()[0]])
