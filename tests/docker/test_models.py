"""``lockstep model`` against the real local registry: push by digest (deterministic),
list, pin, refuse unknown digests by name, and promotion/rollback moving the (image,
model) pair together under the trail. No engine needed: the stage images are tiny
manifests pushed here, and the promotions run without gates."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
from traitlets.config import Config

from spawner import cli
from spawner.image import oci
from spawner.image.registry import RegistryClient
from spawner.models import store
from spawner.models.pairs import model_tag
from spawner.promote import promote, rollback
from spawner.settings import Lockstep

pytestmark = [pytest.mark.registry]
UNKNOWN = "sha256:" + "0" * 64


class Site:
    def __init__(self, registry: str, tmp):
        self.name = f"md{uuid.uuid4().hex[:8]}"
        (tmp / "envs" / self.name).mkdir(parents=True)
        (tmp / "envs" / self.name / "project.yaml").write_text(f"name: {self.name}\n")
        self.config = Config()
        self.config.Lockstep.registry = f"{registry}/t{uuid.uuid4().hex[:10]}"
        self.config.Lockstep.environments_dir = str(tmp / "envs")
        self.config.Lockstep.data_dir = str(tmp / "state")
        self.host = registry
        self.tmp = tmp
        self.config_path = tmp / "lockstep_config.py"
        self.config_path.write_text("".join(
            f"c.Lockstep.{k} = {v!r}\n" for k, v in self.config.Lockstep.items()))

    @property
    def settings(self) -> Lockstep:
        return Lockstep(config=self.config)

    @property
    def repo(self) -> str:
        return self.settings.registry.split("/", 1)[1] + "/" + self.name

    def client(self) -> RegistryClient:
        return RegistryClient.for_host(self.host, insecure_registries=("127.0.0.1",))

    def lockstep(self, *args: str) -> int:
        return cli.main(["--config", str(self.config_path), *args])

    def push_image(self, label: str, tag: str = "dev") -> str:
        """A tiny image (a config, one layer) tagged ``tag``; its digest."""
        config = oci.canonical_json({"architecture": "amd64", "os": "linux",
                                     "config": {"Labels": {"v": label}}, "rootfs": {}})
        layer = label.encode()
        manifest = oci.canonical_json({
            "schemaVersion": 2, "mediaType": oci.MEDIA_MANIFEST,
            "config": {"mediaType": oci.MEDIA_CONFIG, "digest": oci.sha256_digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": oci.MEDIA_LAYER, "digest": oci.sha256_digest(layer),
                        "size": len(layer)}]})
        with self.client() as client:
            for blob in (config, layer):
                client.ensure_blob(self.repo, oci.sha256_digest(blob), blob)
            client.put_manifest(self.repo, tag, manifest, oci.MEDIA_MANIFEST)
        return oci.sha256_digest(manifest)

    def tag(self, tag: str) -> str | None:
        with self.client() as client:
            return client.head_manifest(self.repo, tag)

    def model_files(self, slope: float):
        folder = self.tmp / f"model-{slope}"
        folder.mkdir(exist_ok=True)
        (folder / "model.json").write_text(json.dumps({"slope": slope, "intercept": 1.0}))
        return str(folder / "model.json")


@pytest.fixture
def site(registry, tmp_path):
    return Site(registry, tmp_path)


def push(site, capsys, slope: float, *extra: str) -> str:
    assert site.lockstep("model", "push", site.name, site.model_files(slope), *extra) == 0
    reference = capsys.readouterr().out.strip()
    assert reference.startswith(f"{site.host}/{site.repo}@sha256:")
    return reference.split("@")[1]


def test_push_is_by_digest_deterministic_and_listed(site, capsys):
    first = push(site, capsys, 2.0)
    assert push(site, capsys, 2.0) == first  # same files, same digest
    second = push(site, capsys, 3.0, "--pin")
    assert second != first and site.tag(model_tag("dev")) == second
    assert site.lockstep("model", "list", site.name, "--json") == 0
    rows = {r["digest"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {first, second}
    assert rows[second]["stages"] == ["dev"] and rows[first]["stages"] == []
    assert rows[first]["files"] == 1


def test_unknown_or_malformed_digests_and_bad_paths_are_refused_by_name(site, capsys):
    assert site.lockstep("model", "pin", site.name, UNKNOWN) == 2
    err = capsys.readouterr().err
    assert f"model {UNKNOWN} is not in {site.host}/{site.repo}" in err
    assert "Traceback" not in err
    assert site.lockstep("model", "pin", site.name, "latest") == 2
    assert "'latest' is not a model digest" in capsys.readouterr().err
    image = site.push_image("a")
    assert site.lockstep("model", "pin", site.name, image) == 2
    assert "is not a lockstep model" in capsys.readouterr().err
    assert site.tag(model_tag("dev")) is None  # nothing moved on any refusal
    link = site.tmp / "link.json"
    link.symlink_to(site.model_files(1.0))
    assert site.lockstep("model", "push", site.name, str(link)) == 2
    assert "symbolic link" in capsys.readouterr().err


def test_promotion_moves_the_pair_and_rollback_restores_the_old_one(site, capsys):
    image = site.push_image("a")
    m1 = push(site, capsys, 1.0, "--pin")
    record = promote(site.settings, site.name, "qa", user="alice", gates=[])
    assert (record.outcome, record.digest, record.model_digest) == ("promoted", image, m1)
    assert (site.tag("qa"), site.tag(model_tag("qa"))) == (image, m1)
    m2 = push(site, capsys, 2.0, "--pin")  # a new model on the same image
    record = promote(site.settings, site.name, "qa", user="alice", gates=[])
    assert (record.outcome, record.model_digest, record.previous_model_digest) == (
        "promoted", m2, m1)
    assert (site.tag("qa"), site.tag(model_tag("qa"))) == (image, m2)
    image2 = site.push_image("b")
    record = promote(site.settings, site.name, "qa", user="alice", gates=[])
    assert (site.tag("qa"), site.tag(model_tag("qa"))) == (image2, m2)
    assert promote(site.settings, site.name, "qa", user="alice", gates=[]).outcome == "unchanged"
    record = rollback(site.settings, site.name, "qa", user="alice")
    assert (record.outcome, record.digest, record.model_digest) == ("rolled-back", image, m2)
    record = rollback(site.settings, site.name, "qa", user="alice")
    assert (record.outcome, site.tag("qa"), site.tag(model_tag("qa"))) == (
        "rolled-back", image, m1)
    lines = (site.tmp / "state" / "audit.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["model_digest"] == m1


def test_a_stage_model_is_pulled_checked_and_read_only(site, capsys):
    site.push_image("a")
    m1 = push(site, capsys, 1.5, "--pin")
    digest, folder = store.serve(site.settings, site.name, "dev")
    assert digest == m1 and folder == site.tmp / "state" / "models" / m1.replace(":", "-")
    assert json.loads((folder / "model.json").read_text())["slope"] == 1.5
    assert not (folder / "model.json").stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP)
    assert store.serve(site.settings, site.name, "qa") is None


def test_promote_with_model_refuses_another_model_and_moves_nothing(site, capsys):
    image = site.push_image("a")
    m1 = push(site, capsys, 1.0, "--pin")
    record = promote(site.settings, site.name, "qa", user="alice", model=UNKNOWN, gates=[])
    assert record.outcome == "refused"
    assert f"--model {UNKNOWN} is not the model dev holds ({m1})" in record.message
    assert (site.tag("qa"), site.tag(model_tag("qa"))) == (None, None)
    record = promote(site.settings, site.name, "qa", user="alice", model=m1, gates=[])
    assert (record.outcome, site.tag("qa"), site.tag(model_tag("qa"))) == ("promoted", image, m1)
