"""A pip package locked as an sdist (the site allows it), built in the build sandbox.

Real uv against the local index (``tests/channel/pypi_index``: ``sdistdemo`` has only a
pure-Python sdist with a flit_core backend; ``flit_core`` is a real pinned wheel), real
rattler, real bubblewrap. The backend comes from the locked environment itself: the
sandbox has no network.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from spawner import cli
from spawner.errors import LockstepError
from spawner.image import buildrecords, oci
from spawner.image.assemble import lock_hash
from spawner.image.registry import RegistryClient
from spawner.labels import LOCK_HASH
from spawner.lock import condalock
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pipinstall import BUILT
from spawner.lock.pypi import PipInputs
from spawner.settings import Lockstep
from tests.channel.pypi_index import SDIST_SPEC

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SITE = Path("lib/python3.11/site-packages")
needs_bwrap = pytest.mark.skipif(
    not shutil.which("bwrap"), reason="bwrap is not installed (apt-get install bubblewrap)"
)


def lock(root: Path, text: str, channel: Path, index: str) -> Path:
    folder = root / "environments" / "withsdist"
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text(text)
    pip = PipInputs(
        index_url=index, insecure_hosts=("127.0.0.1",), cache_dir=root / "pkgs", allow_sdists=True
    )
    lock_environment(
        folder,
        LockInputs(
            channel_urls={"conda-forge": channel.as_uri()},
            virtual_packages={"linux-64": LINUX},
            pip=pip,
        ),
        progress=None,
    )
    return folder / "conda-lock.yml"


@pytest.fixture
def locked(tmp_path, jupyter_channel, pypi_index) -> Path:
    return lock(tmp_path, SDIST_SPEC, jupyter_channel, pypi_index)


@needs_bwrap
def install_sandboxed(lockfile: Path, tmp_path: Path) -> Path:
    """``lockfile`` installed for /opt/env into ``tmp_path/prefix``, sdists built in bwrap."""
    prefix = tmp_path / "prefix"
    install_lock(lockfile, prefix, platform="linux-64", target_prefix="/opt/env",
                 cache_dir=tmp_path / "pkgs", sdist_sandbox="bwrap")  # fmt: skip
    return prefix


def test_sdist_is_locked_built_in_the_sandbox_recorded_and_reproducible(locked, tmp_path):
    entries = {p.name: p for p in condalock.read_lockfile(locked).package if p.manager == "pip"}
    assert entries["sdistdemo"].url.endswith("/sdistdemo-1.0.tar.gz")
    assert entries["flit-core"].url.endswith(".whl")
    built = []
    for n in (1, 2):
        prefix = tmp_path / f"prefix{n}"
        result = install_lock(
            locked,
            prefix,
            platform="linux-64",
            target_prefix="/opt/env",
            cache_dir=tmp_path / "pkgs",
            sdist_sandbox="bwrap",
        )
        assert "pypi:sdistdemo==1.0" in result.packages
        info = prefix / SITE / "sdistdemo-1.0.dist-info"
        assert (info / "INSTALLER").read_text() == "lockstep\n"
        record = json.loads((info / BUILT).read_text())
        assert record["sdist"] == {
            "url": entries["sdistdemo"].url,
            "sha256": entries["sdistdemo"].hash.sha256,
        }
        assert f"{BUILT},sha256=" in (info / "RECORD").read_text()
        assert str(tmp_path) not in (info / "RECORD").read_text()
        built.append(
            (record["wheel"], _tree(prefix / SITE / "sdistdemo"), (info / "RECORD").read_text())
        )
        done = subprocess.run(
            [str(prefix / "bin/python3.11"), "-c", "import sdistdemo; print(sdistdemo.ANSWER)"],
            capture_output=True,
            text=True,
            timeout=60,
            env={},
        )
        assert done.stdout.strip() == "42", done.stderr
    assert built[0] == built[1]  # two builds: one wheel sha256, the same files
    assert not list((tmp_path / "pkgs" / "sdist-builds").iterdir())


@needs_bwrap
def test_the_build_record_and_the_sbom_carry_the_built_wheel(locked, tmp_path):
    prefix = install_sandboxed(locked, tmp_path)
    made = json.loads((prefix / SITE / "sdistdemo-1.0.dist-info" / BUILT).read_text())
    built = buildrecords.built_wheels(prefix, "linux-64")
    assert built == [
        {
            "platform": "linux-64",
            "name": "sdistdemo",
            "version": "1.0",
            "sdist_url": made["sdist"]["url"],
            "sdist_sha256": made["sdist"]["sha256"],
            "wheel": made["wheel"]["file"],
            "wheel_sha256": made["wheel"]["sha256"],
            "backend": "flit_core.buildapi",
        }
    ]  # flit_core came as a wheel: not listed
    settings = Lockstep(config=_config(tmp_path / "cache"))
    record = locked.parent / "build-record.json"
    result = {"digest": "sha256:" + "1" * 64, "lock_hash": lock_hash(locked), "noop": False}
    buildrecords.write(settings, record, "k1", result, built=built)
    assert json.loads(record.read_text())["built_wheels"] == built
    buildrecords.write(settings, record, "k1", {**result, "noop": True}, built=[])
    assert json.loads(record.read_text())["built_wheels"] == built  # a no-op keeps them
    out = tmp_path / "sbom.json"
    assert cli.main(["sbom", str(locked), "-o", str(out)]) == 0
    (item,) = [c for c in json.loads(out.read_text())["components"] if c["name"] == "sdistdemo"]
    assert item["hashes"] == [{"alg": "SHA-256", "content": made["sdist"]["sha256"]}]
    assert {"name": "org.lockstep:built-wheel-sha256", "value": made["wheel"]["sha256"]} in (
        item["properties"]
    )
    assert {"name": "org.lockstep:build-backend", "value": "flit_core.buildapi"} in (
        item["properties"]
    )
    buildrecords.write(
        settings, record, "k2", {**result, "lock_hash": "sha256:" + "2" * 64}, built=built
    )  # a record of another lock is not believed
    assert cli.main(["sbom", str(locked), "-o", str(out)]) == 0
    (item,) = [c for c in json.loads(out.read_text())["components"] if c["name"] == "sdistdemo"]
    assert "properties" not in item


def _config(cache: Path):
    from traitlets.config import Config

    config = Config()
    config.Lockstep.cache_dir = str(cache)
    return config


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@needs_bwrap
def test_sdist_without_its_backend_in_the_env_is_refused_and_nothing_is_unpacked(
    tmp_path, jupyter_channel, pypi_index
):
    text = SDIST_SPEC.replace("    - sdistdemo\n", "    - sdistsetup\n")
    lockfile = lock(tmp_path, text, jupyter_channel, pypi_index)
    prefix = tmp_path / "prefix"
    with pytest.raises(LockstepError) as err:
        install_lock(
            lockfile,
            prefix,
            platform="linux-64",
            target_prefix="/opt/env",
            cache_dir=tmp_path / "pkgs",
            sdist_sandbox="bwrap",
        )
    message = str(err.value)
    assert "sdistsetup 1.0" in message and "setuptools.build_meta" in message
    assert "Add setuptools>=61 to the spec" in message
    assert not list((prefix / SITE).glob("flit_core*"))  # no pip package half-installed


def test_a_site_that_does_not_allow_sdists_refuses_to_install_one(locked, tmp_path):
    with pytest.raises(LockstepError, match="sdistdemo==1.0.*pip_allow_sdists = True"):
        install_lock(locked, tmp_path / "prefix", platform="linux-64", cache_dir=tmp_path / "pkgs")
    assert not (tmp_path / "prefix").exists()


def push_image(registry: str, repo: str, labels: dict, layers: list[dict[str, bytes]]) -> str:
    """A minimal OCI image (gzip tar layers, a config with ``labels``) pushed to the test
    registry; ``REPO@sha256:...``. A layer member named ``.wh.X`` is an OCI whiteout."""
    blobs, described = [], []
    for members in layers:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in sorted(members.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        blobs.append(layer)
        described.append(
            {"mediaType": oci.MEDIA_LAYER, "digest": oci.sha256_digest(layer), "size": len(layer)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in described]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_MANIFEST,
            "layers": described,
            "config": {
                "mediaType": oci.MEDIA_CONFIG,
                "digest": oci.sha256_digest(config),
                "size": len(config),
            },
        }
    ).encode()
    with RegistryClient.for_host(registry, insecure_registries=["127.0.0.1"]) as client:
        for blob in [*blobs, config]:
            client.push_blob(repo, oci.sha256_digest(blob), blob)
        digest = client.put_manifest(repo, "latest", manifest, oci.MEDIA_MANIFEST)
    return f"{registry}/{repo}@{digest}"


@needs_bwrap
def test_the_sbom_of_an_image_whose_lock_is_elsewhere_reads_the_built_wheel_from_the_image(
    locked, tmp_path, registry, capsys
):
    prefix = install_sandboxed(locked, tmp_path)
    info = f"{SITE}/sdistdemo-1.0.dist-info"
    made = (prefix / info / BUILT).read_bytes()
    elsewhere = tmp_path / "elsewhere" / "conda-lock.yml"  # no build record beside it
    elsewhere.parent.mkdir()
    shutil.copy(locked, elsewhere)
    labels = {LOCK_HASH: lock_hash(elsewhere)}
    repo = f"sbomtest/elsewhere-{os.getpid()}"
    image = push_image(registry, repo, labels, [{f"opt/env/{info}/{BUILT}": made}])
    config = tmp_path / "lockstep_config.py"
    config.write_text(
        f"c.Lockstep.cache_dir = {str(tmp_path / 'cache')!r}\n"
        f"c.Lockstep.environments_dir = {str(tmp_path / 'no-environments')!r}\n"
    )
    sbom = ["--config", str(config), "sbom", image, "--lock", str(elsewhere), "-o"]
    out = tmp_path / "image.cdx.json"
    assert cli.main([*sbom, str(out)]) == 0
    bom = json.loads(out.read_text())
    subject = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert subject["org.lockstep:lockfile"] == str(elsewhere)
    (item,) = [c for c in bom["components"] if c["name"] == "sdistdemo"]
    record = json.loads(made)
    assert item["hashes"] == [{"alg": "SHA-256", "content": record["sdist"]["sha256"]}]
    assert sorted((p["name"], p["value"]) for p in item["properties"]) == [
        ("org.lockstep:build-backend", "flit_core.buildapi"),
        ("org.lockstep:built-wheel", record["wheel"]["file"]),
        ("org.lockstep:built-wheel-sha256", record["wheel"]["sha256"]),
    ]
    # control: a top layer that deletes the dist-info leaves the image without the record
    gone = {f"opt/env/{SITE}/.wh.sdistdemo-1.0.dist-info": b""}
    hidden = push_image(registry, repo, labels, [{f"opt/env/{info}/{BUILT}": made}, gone])
    sbom[3] = hidden
    assert cli.main([*sbom, str(out)]) == 0
    (item,) = [c for c in json.loads(out.read_text())["components"] if c["name"] == "sdistdemo"]
    assert "properties" not in item
    other = tmp_path / "other" / "conda-lock.yml"  # a lock the image was not built from
    other.parent.mkdir()
    other.write_text(elsewhere.read_text() + "# another lock\n")
    capsys.readouterr()
    assert cli.main([*sbom[:5], str(other), "-o", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--lock {other} is not the lock {hidden} was built from" in err
    assert lock_hash(other) in err and labels[LOCK_HASH] in err
    assert "Pass the conda-lock.yml that built this image" in err and "Traceback" not in err
    assert cli.main(["--config", str(config), "sbom", str(elsewhere), "--lock", str(other)]) == 2
    assert "--lock goes with an image" in capsys.readouterr().err
