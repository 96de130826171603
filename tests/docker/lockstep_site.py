"""A throw-away lockstep site around the built forecast image, for job and service tests.

``ForecastSite`` puts the built image in its own registry namespace under a unique project
name (so volumes, networks and containers never meet a real ``forecast``), can push a
second digest of the same image (same layers, one extra config label: a different
manifest, so a different digest), promote through qa to prod, and clean up by label.
"""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from pathlib import Path

from traitlets.config import Config

from spawner import cli
from spawner.image import oci
from spawner.image.registry import RegistryClient, copy_image
from spawner.launch.stages import resolve_stage
from spawner.promote import promote, rollback
from spawner.settings import Lockstep

REPO = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "org.lockstep.project"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebook_code(path: Path) -> str:
    """The code cells of a notebook, as one script (what a headless run executes)."""
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


class ForecastSite:
    def __init__(self, *, root: Path, lock: Path, build, registry: str, tmp: Path,
                 name: str | None = None):
        self.name = name or f"fc{uuid.uuid4().hex[:8]}"
        self.build, self.tmp = build, tmp
        project_dir = root / self.name
        project_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(lock, project_dir / "conda-lock.yml")
        text = (REPO / "environments" / "forecast" / "project.yaml").read_text()
        text = text.replace("source: forecast/sales", f"source: {self.name}/sales")
        (project_dir / "project.yaml").write_text(text.replace("name: forecast",
                                                               f"name: {self.name}"))
        # the curator's grant: a link in this project's own data folder (issue 11)
        (tmp / "data" / self.name).mkdir(parents=True, exist_ok=True)
        (tmp / "data" / self.name / "sales").symlink_to(REPO / "data" / "sales")
        (tmp / "notebooks").mkdir(exist_ok=True)
        config = Config()
        config.Lockstep.registry = f"{registry}/t{uuid.uuid4().hex[:10]}"
        config.Lockstep.environments_dir = str(root)
        config.Lockstep.notebooks_dir = str(tmp / "notebooks")  # no gate notebooks here
        config.Lockstep.data_dir = str(tmp / "state")
        config.Lockstep.data_roots = [str(tmp / "data"), str(REPO / "data")]
        self.config = config
        self.host, self.source_repo = build.reference.split("@")[0].split("/", 1)

    @property
    def settings(self) -> Lockstep:
        return Lockstep(config=self.config)

    @property
    def repo(self) -> str:
        return self.settings.registry.split("/", 1)[1] + "/" + self.name

    def client(self) -> RegistryClient:
        return RegistryClient.for_host(self.host, insecure_registries=("127.0.0.1",))

    def config_file(self) -> str:
        path = self.tmp / "lockstep_config.py"
        lines = [f"c.{section}.{k} = {v!r}" for section, values in self.config.items()
                 for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def lockstep(self, *args: str) -> int:
        return cli.main(["--config", self.config_file(), *args])

    def push_build(self, tag: str = "dev") -> str:
        with self.client() as client:
            copy_image(client, self.source_repo, client, self.repo, self.build.digest,
                       tags=(tag,), workdir=self.tmp)
        return self.build.digest

    def push_variant(self, label: str, tag: str | None = "dev") -> str:
        """The built image with one more config label: same layers, another digest."""
        self.push_build(tag="base-copy")
        with self.client() as client:
            manifest_bytes, media_type, _ = client.get_manifest(self.repo, self.build.digest)
            manifest = json.loads(manifest_bytes)
            config = json.loads(client.get_blob(self.repo, manifest["config"]["digest"]))
            config["config"].setdefault("Labels", {})["org.lockstep.test-variant"] = label
            blob = oci.canonical_json(config)
            digest = oci.sha256_digest(blob)
            client.ensure_blob(self.repo, digest, blob)
            manifest["config"] = {**manifest["config"], "digest": digest, "size": len(blob)}
            data = oci.canonical_json(manifest)
            new = client.put_manifest(self.repo, oci.sha256_digest(data), data, media_type)
            if tag:
                client.put_manifest(self.repo, tag, data, media_type)
        return new

    def force_tag(self, digest: str, tag: str) -> None:
        """Point ``tag`` at ``digest`` directly (simulates a pointer moved outside the gates)."""
        with self.client() as client:
            data, media_type, _ = client.get_manifest(self.repo, digest)
            client.put_manifest(self.repo, tag, data, media_type)

    def to_prod(self) -> str:
        """Promote the dev digest to qa, then prod (bob approves)."""
        for stage, extra in (("qa", {}), ("prod", {"approved_by": "bob"})):
            record = promote(self.settings, self.name, stage, user="alice", **extra)
            assert record.outcome in ("promoted", "unchanged"), record.message
        return self.digest("prod")

    def rollback_prod(self) -> str:
        record = rollback(self.settings, self.name, "prod", user="alice")
        assert record.outcome == "rolled-back", record.message
        return self.digest("prod")

    def digest(self, stage: str) -> str | None:
        ref = resolve_stage(self.settings, self.name, stage)
        return ref.digest if ref else None

    def containers(self, docker_client, **extra):
        labels = [f"{PROJECT_LABEL}={self.name}", *(f"{k}={v}" for k, v in extra.items())]
        return docker_client.containers.list(all=True, filters={"label": labels})

    def cleanup(self, docker_client) -> None:
        for container in self.containers(docker_client):
            container.remove(force=True)
        for volume in docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.name}"}):
            volume.remove(force=True)
        for network in docker_client.networks.list(names=[f"lockstep-{self.name}"]):
            network.remove()
