"""Promotion, rollback, history and verify against real registries (Debian's docker-registry).

The images are small lockstep-shaped images pushed straight to the registry
(``synthetic_image``): the verify and approval gates run for real; the notebooks gate
finds no notebooks for these projects (the notebook runs are in test_promote_notebooks).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.cli import main
from spawner.image import localregistry
from spawner.image.build import lock_hash
from spawner.image.registry import RegistryClient
from spawner.launch.stages import resolve_stage
from spawner.promote import AuditTrail, promote, rollback
from spawner.settings import Lockstep
from tests.docker.synthetic_image import PACKAGES, Pkg, env_files, push_image, write_lock
from tests.support.engine import missing

pytestmark = pytest.mark.registry
ADDRS = ("127.0.0.1:5741", "127.0.0.1:5742")
DOWN = "127.0.0.1:5999"


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    if not shutil.which("docker-registry"):
        missing("docker-registry is not installed (apt-get install docker-registry)")
    roots = []
    for addr in ADDRS:
        root = tmp_path_factory.mktemp("registry")
        localregistry.start(root, addr)
        roots.append((root, addr))
    yield ADDRS
    for root, addr in roots:
        localregistry.stop(root, addr)


@pytest.fixture
def site(tmp_path, registries):
    """A site: settings, one project 'demo' with a lock, and a writer for its images."""
    config = Config()
    config.Lockstep.environments_dir = str(tmp_path / "environments")
    config.Lockstep.notebooks_dir = str(tmp_path / "notebooks")
    config.Lockstep.data_dir = str(tmp_path / "state")
    config.Lockstep.registry = f"{registries[0]}/t{tmp_path.name[-12:]}"
    config.Lockstep.data_roots = [str(tmp_path / "data")]
    (tmp_path / "data").mkdir()
    project_dir = tmp_path / "environments" / "demo"
    project_dir.mkdir(parents=True)
    (project_dir / "project.yaml").write_text("name: demo\n")
    lock = write_lock(project_dir / "conda-lock.yml")
    return Site(tmp_path, config, lock)


class Site:
    def __init__(self, root: Path, config: Config, lock: Path):
        self.root, self.config, self.lock = root, config, lock

    @property
    def settings(self) -> Lockstep:
        return Lockstep(config=self.config)

    def client(self, host: str | None = None) -> RegistryClient:
        return RegistryClient.for_host(host or ADDRS[0], insecure_registries=("127.0.0.1",))

    @property
    def repo(self) -> str:
        return self.settings.registry.split("/", 1)[1] + "/demo"

    def build(self, *, salt: str = "", files=None, label: str | None = None) -> str:
        """Push an image of the lock to the dev tag, like `lockstep build`."""
        with self.client() as client:
            return push_image(
                client,
                self.repo,
                project="demo",
                lock_hash=label or lock_hash(self.lock),
                files=files or env_files(),
                salt=salt,
            )

    def pointer(self, stage: str) -> str | None:
        ref = resolve_stage(self.settings, "demo", stage)
        return ref.digest if ref else None

    def config_file(self) -> str:
        path = self.root / "lockstep_config.py"
        lines = [f"c.Lockstep.{k} = {v!r}" for k, v in self.config.Lockstep.items()]
        path.write_text("\n".join(lines) + "\n")
        return str(path)


def test_promotion_moves_the_dev_digest_through_every_stage(site):
    digest = site.build()
    record = promote(site.settings, "demo", "qa", user="alice")
    assert record.outcome == "promoted", record.message
    assert [(g.name, g.status) for g in record.gates] == [
        ("verify", "passed"),
        ("notebooks", "passed"),
    ]
    record = promote(site.settings, "demo", "prod", user="alice", approved_by="bob")
    assert record.outcome == "promoted", record.message
    assert site.pointer("dev") == site.pointer("qa") == site.pointer("prod") == digest
    assert record.previous_digest is None and record.bytes_moved < 4096  # only the manifest
    again = promote(site.settings, "demo", "prod", user="alice", approved_by="bob")
    assert again.outcome == "unchanged"


def test_cross_registry_promotion_copies_blobs_and_keeps_the_digest(site, registries):
    site.config.Lockstep.stage_registries = {"prod": f"{registries[1]}/crossns"}
    digest = site.build(salt="cross")
    assert promote(site.settings, "demo", "qa", user="alice").outcome == "promoted"
    record = promote(site.settings, "demo", "prod", user="alice", approved_by="bob")
    assert record.outcome == "promoted", record.message
    assert site.pointer("prod") == digest
    assert (
        resolve_stage(site.settings, "demo", "prod").repository == f"{registries[1]}/crossns/demo"
    )
    assert record.bytes_moved > 1000


def test_a_registry_that_is_down_changes_nothing(site):
    site.config.Lockstep.stage_registries = {"prod": f"{DOWN}/lockstep"}
    site.build()
    promote(site.settings, "demo", "qa", user="alice")
    before = site.pointer("qa")
    record = promote(site.settings, "demo", "prod", user="alice", approved_by="bob")
    assert record.outcome == "failed"
    assert record.message == (
        f"registry {DOWN} is unreachable (connection refused); no stage was changed"
    )
    assert site.pointer("qa") == before


def test_an_approver_who_is_not_allowed_changes_nothing(site):
    site.config.Lockstep.approvers = ["lead-alice", "ops-bob"]
    site.build()
    promote(site.settings, "demo", "qa", user="alice")
    record = promote(site.settings, "demo", "prod", user="dave", approved_by="carol")
    assert record.outcome == "refused"
    assert record.message == (
        "gate approval failed: carol may not approve promotion to prod; allowed approvers: "
        "lead-alice, ops-bob (c.Lockstep.approvers); no stage was changed"
    )
    assert [g.status for g in record.gates] == ["failed", "skipped", "skipped"]
    assert site.pointer("prod") is None


def test_self_approval_is_refused(site):
    site.build()
    promote(site.settings, "demo", "qa", user="alice")
    record = promote(site.settings, "demo", "prod", user="alice", approved_by="alice")
    assert record.outcome == "refused"
    assert "alice promoted this digest to qa and may not also approve it for prod" in record.message
    assert site.pointer("prod") is None


def test_an_image_of_another_lock_is_refused(site):
    site.build(label="sha256:" + "e" * 64)
    record = promote(site.settings, "demo", "qa", user="alice")
    assert record.outcome == "refused"
    assert record.message.startswith("gate verify failed: image was built from another lock")
    assert site.pointer("qa") is None


def test_a_tampered_package_file_is_named_and_refused(site):
    site.build(files=env_files(tamper={"beta": b"beta 2.1, patched\n"}))
    record = promote(site.settings, "demo", "qa", user="alice")
    assert record.outcome == "refused"
    assert "file     beta: share/beta/VERSION has sha256" in record.message
    assert site.pointer("qa") is None


def test_rollback_restores_the_previous_digest_and_history_shows_it(site, capsys):
    first = site.build(salt="one")
    promote(site.settings, "demo", "qa", user="alice")
    second = site.build(salt="two")
    promote(site.settings, "demo", "qa", user="alice")
    assert site.pointer("qa") == second
    record = rollback(site.settings, "demo", "qa", user="ops")
    assert record.outcome == "rolled-back", record.message
    assert (record.digest, record.previous_digest) == (first, second)
    assert site.pointer("qa") == first
    refused = rollback(site.settings, "demo", "qa", user="ops")
    assert refused.outcome == "refused" and site.pointer("qa") == first

    assert main(["--config", site.config_file(), "history", "demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "time",
        "action",
        "user",
        "stages",
        "digest",
        "previous",
        "outcome",
        "gates",
        "message",
    ]
    assert [line.split()[2] for line in lines[1:]] == ["promote", "promote", "rollback", "rollback"]
    assert "rolled-back" in lines[3] and first[7:19] in lines[3]


def test_every_attempt_is_audited(site):
    site.build()
    promote(site.settings, "demo", "prod", user="alice", approved_by="bob")  # qa is empty
    promote(site.settings, "demo", "qa", user="alice")
    promote(site.settings, "demo", "prod", user="alice")  # no approval
    outcomes = [
        (r.to_stage, r.outcome) for r in AuditTrail(site.settings.data_path("audit.jsonl")).read()
    ]
    assert outcomes == [("prod", "refused"), ("qa", "promoted"), ("prod", "refused")]


def test_concurrent_promotions_never_lose_or_tear_the_pointer(site):
    digests = [site.build(salt=f"c{i}") for i in range(2)]
    stop = threading.Event()

    def flip_dev():  # dev keeps moving between two builds while promotions run
        i = 0
        with site.client() as client:
            while not stop.is_set():
                data, media, _ = client.get_manifest(site.repo, digests[i % 2])
                client.put_manifest(site.repo, "dev", data, media)
                i += 1

    results = []

    def worker(n):
        for _ in range(4):
            results.append(promote(site.settings, "demo", "qa", user=f"w{n}", gates=[]))

    flipper = threading.Thread(target=flip_dev)
    flipper.start()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    flipper.join()
    trail = AuditTrail(site.settings.data_path("audit.jsonl")).read()
    moved = [r for r in trail if r.outcome == "promoted"]
    failed = [r.message for r in trail if r.outcome == "failed"]
    assert len(results) == 24 and moved
    # the chain of moves is unbroken: each move started from what the last one left
    for before, after in zip(moved, moved[1:], strict=False):
        assert after.previous_digest == before.digest, failed
    assert site.pointer("qa") == moved[-1].digest


def test_verify_command_passes_a_clean_image_and_names_a_tampered_package(site, capsys):
    clean = site.build(salt="clean")
    ref = f"{ADDRS[0]}/{site.repo}@{clean}"
    assert main(["--config", site.config_file(), "verify", ref]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {ref} holds exactly the 3 packages of")

    meta = {"beta": {"version": "2.2"}}
    bad = site.build(files=env_files(meta_overrides=meta), salt="bad")
    bad_ref = f"{ADDRS[0]}/{site.repo}@{bad}"
    assert main(["--config", site.config_file(), "verify", bad_ref, "--lock", str(site.lock)]) == 1
    out = capsys.readouterr().out
    assert "changed  beta: version 2.1 (lock) != 2.2 (image)" in out

    extra = site.build(files=env_files(packages=(*PACKAGES, Pkg("evil", "0.1"))), salt="x")
    assert (
        main(
            ["--config", site.config_file(), "verify", f"{ADDRS[0]}/{site.repo}@{extra}", "--json"]
        )
        == 1
    )
    assert '"kind": "extra", "package": "evil"' in capsys.readouterr().out
