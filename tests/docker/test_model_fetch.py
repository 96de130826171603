"""The Kubernetes model fetch against the real local registry: ``modelfetch``'s text, run
as the ``fetch-model`` init container runs it (``python -c SOURCE BASE REPO DIGEST DEST``,
here with the host's python), writes exactly the promoted model's files, read-only, and
refuses an unknown digest or a manifest that is not a model by name; ``lockstep deploy
--render k8s`` reads the stage's model tag and renders the init container for it. No
engine or cluster needed (what only a cluster proves: docs/production.md)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid

import pytest
import yaml
from traitlets.config import Config

from spawner import cli
from spawner.image import oci
from spawner.image.registry import RegistryClient
from spawner.services.kubemodel import FETCH_SOURCE

pytestmark = [pytest.mark.registry]
UNKNOWN = "sha256:" + "0" * 64
SERVICE = "service:\n  command: [python, serve.py]\n  port: 8080\n  health: /health\n"


@pytest.fixture
def site(registry, tmp_path):
    name = f"mf{uuid.uuid4().hex[:8]}"
    (tmp_path / "envs" / name).mkdir(parents=True)
    (tmp_path / "envs" / name / "project.yaml").write_text(
        f"name: {name}\nworkspace: {{enabled: false}}\n{SERVICE}"
    )
    config = Config()
    config.Lockstep.registry = f"{registry}/t{uuid.uuid4().hex[:10]}"
    config.Lockstep.environments_dir = str(tmp_path / "envs")
    config.Lockstep.data_dir = str(tmp_path / "state")
    path = tmp_path / "lockstep_config.py"
    path.write_text("".join(f"c.Lockstep.{k} = {v!r}\n" for k, v in config.Lockstep.items()))
    repo = config.Lockstep.registry.split("/", 1)[1] + "/" + name
    return {"name": name, "config": str(path), "host": registry, "repo": repo, "tmp": tmp_path}


def lockstep(site, *args: str) -> int:
    return cli.main(["--config", site["config"], *args])


def push_model(site, capsys) -> str:
    folder = site["tmp"] / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"slope": 2.5, "intercept": 1.0}))
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    assert lockstep(site, "model", "push", site["name"], str(folder), "--pin") == 0
    return capsys.readouterr().out.strip().split("@")[1]


def fetch(site, digest: str, dest) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            FETCH_SOURCE,
            f"http://{site['host']}",
            site["repo"],
            digest,
            str(dest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_fetch_writes_exactly_the_model_read_only(site, capsys, tmp_path):
    digest = push_model(site, capsys)
    dest = tmp_path / "opt-model"
    dest.mkdir()
    done = fetch(site, digest, dest)
    assert done.returncode == 0, done.stderr
    assert f"lockstep model {digest}: 2 files" in done.stdout
    names = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert names == ["model.json", "sub/weights.bin"]
    assert json.loads((dest / "model.json").read_text())["slope"] == 2.5
    assert (dest / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 4096
    for path in (dest / "model.json", dest / "sub" / "weights.bin"):
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not (dest / "sub").stat().st_mode & stat.S_IWUSR


def test_an_unknown_digest_or_an_image_is_refused_by_name(site, capsys, tmp_path):
    push_model(site, capsys)
    done = fetch(site, UNKNOWN, tmp_path / "a")
    assert done.returncode == 1 and UNKNOWN in done.stderr and "404" in done.stderr
    assert "Traceback" not in done.stderr
    config, layer = b'{"os": "linux"}', b"not a model file"
    manifest = oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_MANIFEST,
            "config": {
                "mediaType": oci.MEDIA_CONFIG,
                "digest": oci.sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": oci.MEDIA_LAYER,
                    "digest": oci.sha256_digest(layer),
                    "size": len(layer),
                }
            ],
        }
    )
    with RegistryClient.for_host(site["host"], insecure_registries=("127.0.0.1",)) as client:
        for blob in (config, layer):
            client.ensure_blob(site["repo"], oci.sha256_digest(blob), blob)
        client.put_manifest(site["repo"], "dev", manifest, oci.MEDIA_MANIFEST)
    (tmp_path / "b").mkdir()
    done = fetch(site, oci.sha256_digest(manifest), tmp_path / "b")
    assert done.returncode == 1 and "not a plain relative path" in done.stderr
    assert list((tmp_path / "b").iterdir()) == []


def test_deploy_render_k8s_carries_the_stage_model(site, capsys):
    digest = push_model(site, capsys)
    config = b'{"os": "linux", "architecture": "amd64", "config": {}, "rootfs": {}}'
    manifest = oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_MANIFEST,
            "config": {
                "mediaType": oci.MEDIA_CONFIG,
                "digest": oci.sha256_digest(config),
                "size": len(config),
            },
            "layers": [],
        }
    )
    with RegistryClient.for_host(site["host"], insecure_registries=("127.0.0.1",)) as client:
        client.ensure_blob(site["repo"], oci.sha256_digest(config), config)
        client.put_manifest(site["repo"], "dev", manifest, oci.MEDIA_MANIFEST)
    assert lockstep(site, "deploy", site["name"], "--stage", "dev", "--render", "k8s") == 0
    out = capsys.readouterr()
    deployment = next(d for d in yaml.safe_load_all(out.out) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][3:] == [f"http://{site['host']}", site["repo"], digest, "/opt/model"]
    assert init["image"] == pod["containers"][0]["image"]
    assert f"model {digest} of dev" in out.err
