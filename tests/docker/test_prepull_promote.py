"""Pre-pulling what the stages hold, against the real registry and the real engine.

* ``lockstep prepull`` renders z2jh ``prePuller.extraImages`` values (and the standalone
  DaemonSet) from the stage pointers in the registry; a (gate-less) promotion changes them.
* ``c.Lockstep.prepull_on_promote``: the ``prepull`` gate pulls the promoted digest onto
  this Docker host before the pointer moves; when the pull fails, nothing moves.
"""

from __future__ import annotations

import uuid

import pytest
import yaml
from traitlets.config import Config

from spawner.cli import main
from spawner.image.build import lock_hash
from spawner.image.registry import RegistryClient
from spawner.launch.stages import resolve_stage
from spawner.promote import promote
from spawner.promote.core import default_gates
from spawner.promote.prepull import prepull_gate
from spawner.settings import Lockstep
from tests.docker.synthetic_image import env_files, push_image, write_lock

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class Site:
    def __init__(self, root, registry: str):
        self.root, self.name = root, f"pp{uuid.uuid4().hex[:8]}"
        project_dir = root / "environments" / self.name
        project_dir.mkdir(parents=True)
        (project_dir / "project.yaml").write_text(f"name: {self.name}\n")
        self.lock = write_lock(project_dir / "conda-lock.yml")
        self.config = Config()
        self.config.Lockstep.environments_dir = str(root / "environments")
        self.config.Lockstep.notebooks_dir = str(root / "notebooks")
        self.config.Lockstep.data_dir = str(root / "state")
        self.config.Lockstep.registry = f"{registry}/t{uuid.uuid4().hex[:10]}"
        self.host = registry

    @property
    def settings(self) -> Lockstep:
        return Lockstep(config=self.config)

    def push(self, salt: str) -> str:
        repo = self.settings.registry.split("/", 1)[1] + "/" + self.name
        with RegistryClient.for_host(self.host, insecure_registries=("127.0.0.1",)) as client:
            return push_image(client, repo, project=self.name, lock_hash=lock_hash(self.lock),
                              files=env_files(), salt=salt)

    def reference(self, digest: str) -> str:
        return f"{self.settings.registry}/{self.name}@{digest}"

    def prepull(self, *extra: str) -> dict:
        config = self.root / "lockstep_config.py"
        config.write_text("".join(f"c.Lockstep.{k} = {v!r}\n"
                                  for k, v in self.config.Lockstep.items()))
        out = self.root / "prepull.yaml"
        assert main(["--config", str(config), "prepull", "-o", str(out), *extra]) == 0
        return yaml.safe_load(out.read_text())


@pytest.fixture
def site(tmp_path, registry):
    return Site(tmp_path, registry)


def entry(values: dict, key: str) -> str:
    image = values["prePuller"]["extraImages"][key]
    return f"{image['name']}:{image['tag']}"  # z2jh renders name:tag


def test_prepull_values_follow_a_promotion(site):
    first = site.push("one")
    values = site.prepull()
    dev, qa = f"lockstep-{site.name}-dev", f"lockstep-{site.name}-qa"
    assert entry(values, dev) == site.reference(first)
    assert qa not in values["prePuller"]["extraImages"]

    assert promote(site.settings, site.name, "qa", user="alice", gates=[]).outcome == "promoted"
    assert entry(site.prepull(), qa) == site.reference(first)

    second = site.push("two")  # a new build on dev, then promoted
    assert promote(site.settings, site.name, "qa", user="alice", gates=[]).outcome == "promoted"
    values = site.prepull()
    assert entry(values, qa) == entry(values, dev) == site.reference(second)

    daemonset = site.prepull("--format", "daemonset", "--namespace", "jhub")
    pod = daemonset["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in pod["initContainers"]}
    assert images == {f"image-pull-{dev}": site.reference(second),
                      f"image-pull-{qa}": site.reference(second)}
    assert site.prepull("--stage", "prod")["prePuller"]["extraImages"] == {}


def test_prepull_gate_pulls_before_the_pointer_moves(site, docker_client):
    site.config.Lockstep.prepull_on_promote = True
    assert [g.name for g in default_gates(site.settings, site.name, last=False)][-1] == "prepull"
    digest = site.push("gate")
    reference = site.reference(digest)
    try:
        def no_engine(**kwargs):
            from spawner.docker import engine

            raise engine.EngineUnreachable("no Docker engine reachable (test)")

        failed = promote(site.settings, site.name, "qa", user="alice",
                         gates=[prepull_gate(site.settings, connect=no_engine)])
        assert failed.outcome != "promoted"
        assert "could not pull" in failed.gates[-1].message
        assert resolve_stage(site.settings, site.name, "qa") is None  # nothing announced

        record = promote(site.settings, site.name, "qa", user="alice",
                         gates=[prepull_gate(site.settings)])
        assert record.outcome == "promoted", record.message
        assert record.gates[-1].name == "prepull" and record.gates[-1].status == "passed"
        assert record.gates[-1].message.startswith(f"pulled {reference}")
        assert docker_client.images.get(reference).id  # on this host now
        assert resolve_stage(site.settings, site.name, "qa").digest == digest
    finally:
        for image in docker_client.images.list(name=f"{site.settings.registry}/{site.name}"):
            docker_client.images.remove(image.id, force=True)


def test_a_promotion_and_a_rollback_rewrite_the_sites_prepuller_values(site):
    values_file = site.root / "prepull-values.yaml"
    site.config.Lockstep.prepull_values_file = str(values_file)
    qa = f"lockstep-{site.name}-qa"
    first = site.push("one")
    said: list[str] = []
    record = promote(site.settings, site.name, "qa", user="alice", gates=[],
                     progress=said.append)
    assert record.outcome == "promoted", record.message
    assert f"pre-puller values updated: {values_file}" in said
    assert entry(yaml.safe_load(values_file.read_text()), qa) == site.reference(first)

    second = site.push("two")
    assert promote(site.settings, site.name, "qa", user="alice", gates=[]).outcome == "promoted"
    assert entry(yaml.safe_load(values_file.read_text()), qa) == site.reference(second)

    from spawner.promote import rollback

    assert rollback(site.settings, site.name, "qa", user="alice").outcome == "rolled-back"
    assert entry(yaml.safe_load(values_file.read_text()), qa) == site.reference(first)
    assert not list(site.root.glob(".prepull-values.yaml.tmp"))  # written atomically

    values_file.write_text("stale\n")
    refused = promote(site.settings, site.name, "qa", user="alice", digest="sha256:" + "0" * 64,
                      gates=[])
    assert refused.outcome == "refused"  # nothing moved: the file is left as it was
    assert values_file.read_text() == "stale\n"
