"""The GPU path on a real NVIDIA machine: a lockstep-built CUDA image, started with the GPU.

    python scripts/gpucheck.py prepare            # here: build the image, write .gpu/
    python3 scripts/gpucheck.py run [--out DIR]   # on the GPU machine: start it, report

``prepare`` (this machine: dockerd not needed, the offline test channel, apt)
locks a project of ``python=3.11`` and ``cudatoy`` (the test channel's package that needs
``__cuda >=12.0``) with ``gpu: {cuda: ">=12.0"}``, builds it with lockstep's own builder
into a registry on loopback and reads the image, by digest, back out of it. What
goes to ``.gpu/`` must fit a carry (64 MiB): the manifest and config as they are, each
layer's tar xz-compressed (47 MB for 258 MB of tar; the gzip blobs are 81 MB), and
Debian's bubblewrap package. Add ``/.gpu/`` to ``.git/info/exclude`` and carry ``.gpu``.

``run`` (the GPU machine: python3 and root, nothing else of lockstep's) checks that the
carried files are the image: the manifest's sha256 is the digest lockstep built, the
config's is the one the manifest names, each tar's is the config's ``diff_id`` for it;
then unpacks the layers into a root filesystem in order, honouring whiteouts, and starts its
``/opt/env/bin/python`` in a container (bubblewrap: new mount, PID and IPC namespaces,
the image's root read-only) into which the GPU is injected the way the NVIDIA container
runtime does without CDI: the driver's device nodes (``/dev/nvidia*``) and its user-space
libraries and ``nvidia-smi``, bound read-only from the host. Inside, it runs
``nvidia-smi -L`` and asks the CUDA driver API, through ``ctypes`` from the image's
python, for the driver version, the device count and each device's name and memory. It
prints a report (and writes it to ``--out``) naming the image digest, its
``org.lockstep.cuda`` label and what was shown; exit 0 only when a device answered.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / ".gpu"
ADDR = "127.0.0.1:5747"

INSIDE = r"""
import ctypes, json, sys
report = {"python": sys.version.split()[0]}
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as exc:
    print(json.dumps({**report, "error": f"libcuda.so.1: {exc}"})); sys.exit(3)
def call(name, *args):
    code = getattr(cuda, name)(*args)
    if code:
        raise SystemExit(json.dumps({**report, "error": f"{name} returned {code}"}))
call("cuInit", 0)
version = ctypes.c_int(); call("cuDriverGetVersion", ctypes.byref(version))
count = ctypes.c_int(); call("cuDeviceGetCount", ctypes.byref(count))
report["driver_cuda"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
report["devices"] = []
for index in range(count.value):
    device = ctypes.c_int(); call("cuDeviceGet", ctypes.byref(device), index)
    name = ctypes.create_string_buffer(256); call("cuDeviceGetName", name, 256, device)
    memory = ctypes.c_size_t(); call("cuDeviceTotalMem_v2", ctypes.byref(memory), device)
    report["devices"].append({"name": name.value.decode(), "memory_mib": memory.value >> 20})
print(json.dumps(report))
"""


def prepare() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from channel.build import cached_channel
    from traitlets.config import Config

    from spawner.image import localregistry
    from spawner.image.build import build_image
    from spawner.lock.locking import LockInputs, lock_environment
    from spawner.settings import Lockstep

    channel = cached_channel(jupyter=True)
    work = Path(tempfile.mkdtemp(prefix="lockstep-gpucheck-"))
    project = work / "environments" / "gpucheck"
    project.mkdir(parents=True)
    (project / "environment.yml").write_text(
        "name: gpucheck\nchannels:\n  - conda-forge\n"
        "dependencies:\n  - python=3.11\n  - cudatoy\n"
    )
    (project / "project.yaml").write_text(
        'name: gpucheck\ngpu:\n  count: 1\n  vendor: nvidia\n  cuda: ">=12.0"\n'
    )
    config = Config()
    config.Lockstep.registry = f"{ADDR}/gpucheck"
    config.Lockstep.cache_dir = str(work / "cache")
    config.Lockstep.data_dir = str(work / "state")
    config.Lockstep.channel_urls = {"conda-forge": channel.as_uri()}
    config.Lockstep.server_packages = ["jupyterhub-singleuser"]  # small enough to carry
    settings = Lockstep(config=config)
    (work / "cache").mkdir()
    (work / "cache" / "pkgs").symlink_to(Lockstep().cache_path("pkgs"))
    lock_environment(project, LockInputs.from_settings(settings), progress=None)
    localregistry.start(work / "registry", ADDR)
    try:
        result = build_image(project, settings, progress=print)
        if GPU.exists():
            shutil.rmtree(GPU)
        GPU.mkdir()
        carried(result.reference, GPU)
    finally:
        localregistry.stop(work / "registry", ADDR)
        shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["apt-get", "download", "bubblewrap"], cwd=GPU, check=True)
    (GPU / "image.json").write_text(json.dumps({"digest": result.digest, "cuda": result.cuda}))
    size = sum(p.stat().st_size for p in GPU.rglob("*") if p.is_file())
    print(f"{GPU}: {result.digest} (cuda {result.cuda or 'none'}), {size / 1e6:.1f} MB")
    return 0


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def carried(reference: str, dest: Path) -> None:
    """The image ``HOST/REPO@DIGEST`` as ``dest``: manifest.json, config.json and
    layer-N.tar.xz, read from its registry (each blob checked against its digest)."""
    from spawner.image.registry import RegistryClient

    name, digest = reference.split("@")
    host, repo = name.split("/", 1)
    with RegistryClient.for_host(host, insecure_registries=(host,)) as client:
        manifest = client.get_manifest(repo, digest)[0]
        (dest / "manifest.json").write_bytes(manifest)
        config = client.get_blob(repo, json.loads(manifest)["config"]["digest"])
        (dest / "config.json").write_bytes(config)
        for number, layer in enumerate(json.loads(manifest)["layers"]):
            raw = gzip.decompress(client.get_blob(repo, layer["digest"]))  # every member
            (dest / f"layer-{number:03d}.tar.xz").write_bytes(lzma.compress(raw, preset=6))


def unpack(carry: Path, digest: str, rootfs: Path) -> dict:
    """The carried image, checked against ``digest``, into ``rootfs``; returns its config."""
    manifest_bytes = (carry / "manifest.json").read_bytes()
    if _sha256(manifest_bytes) != digest:
        raise SystemExit(f"manifest.json is not the image {digest}")
    manifest = json.loads(manifest_bytes)
    config_bytes = (carry / "config.json").read_bytes()
    if _sha256(config_bytes) != manifest["config"]["digest"]:
        raise SystemExit("config.json is not the config the manifest names")
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    for number, diff_id in enumerate(diff_ids):
        raw = lzma.decompress((carry / f"layer-{number:03d}.tar.xz").read_bytes())
        if _sha256(raw) != diff_id:
            raise SystemExit(f"layer {number} is not the image's diff_id {diff_id}")
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                head, _, name = member.name.rpartition("/")
                if name.startswith(".wh."):
                    gone = rootfs / head / name[4:]
                    if gone.is_dir() and not gone.is_symlink():
                        shutil.rmtree(gone)
                    elif gone.exists() or gone.is_symlink():
                        gone.unlink()
                    continue
                tar.extract(member, rootfs, filter="fully_trusted")  # built by prepare
    return config


def _driver() -> tuple[list[str], list[str], str]:
    """(device nodes, driver library folders, nvidia-smi) on this host."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia*") if not p.is_dir())
    nodes += sorted(str(p) for p in Path("/dev/nvidia-caps").glob("*"))
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    folders = {line.split("=> ")[-1].rsplit("/", 1)[0] for line in found.splitlines()
               if "libcuda.so" in line or "libnvidia-ml.so" in line}  # fmt: skip
    for extra in ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"):
        if Path(extra, "libcuda.so.1").exists():
            folders.add(extra)
    smi = shutil.which("nvidia-smi") or "/usr/local/nvidia/bin/nvidia-smi"
    return nodes, sorted(folders), smi


def _bwrap() -> str:
    found = shutil.which("bwrap")
    if found:
        return found
    debs = sorted(GPU.glob("bubblewrap_*.deb"))
    if not debs:
        raise SystemExit("no bwrap and no .gpu/bubblewrap_*.deb: run 'prepare' here first")
    target = Path(tempfile.mkdtemp(prefix="bwrap-"))
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(target)], check=True)
    return str(target / "usr" / "bin" / "bwrap")


def run(out: Path | None) -> int:
    meta = json.loads((GPU / "image.json").read_text())
    rootfs = Path(tempfile.mkdtemp(prefix="gpucheck-rootfs-"))
    config = unpack(GPU, meta["digest"], rootfs)
    labels = config.get("config", {}).get("Labels", {})
    nodes, folders, smi = _driver()
    argv = [_bwrap(), "--ro-bind", str(rootfs), "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc", "--die-with-parent"]  # fmt: skip
    for node in nodes:
        argv += ["--dev-bind", node, node]
    # mount points made in the unpacked root first: the container's root is read-only
    for index, folder in enumerate(folders):
        (rootfs / f"run/nvidia/lib{index}").mkdir(parents=True, exist_ok=True)
        argv += ["--ro-bind", folder, f"/run/nvidia/lib{index}"]
    if Path(smi).is_file():
        (rootfs / "run/nvidia").mkdir(parents=True, exist_ok=True)
        (rootfs / "run/nvidia/nvidia-smi").touch()
        argv += ["--ro-bind", smi, "/run/nvidia/nvidia-smi"]
    env = {"PATH": "/opt/env/bin:/usr/bin:/bin", "HOME": "/tmp",
           "LD_LIBRARY_PATH": ":".join(f"/run/nvidia/lib{i}" for i in range(len(folders)))}
    listed = subprocess.run([*argv, "/run/nvidia/nvidia-smi", "-L"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    asked = subprocess.run([*argv, "/opt/env/bin/python", "-I", "-c", INSIDE], env=env,
                           capture_output=True, text=True)  # fmt: skip
    report = {
        "image": meta["digest"],
        "org.lockstep.cuda": labels.get("org.lockstep.cuda", ""),
        "host": os.uname().release,
        "device_nodes": nodes,
        "driver_libraries": folders,
        "nvidia_smi_L": (listed.stdout + listed.stderr).strip(),
        "cuda_from_image_python": (asked.stdout + asked.stderr).strip(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpucheck.json").write_text(text + "\n")
    answered = asked.returncode == 0 and '"devices": [{' in asked.stdout
    return 0 if answered and listed.returncode == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("prepare", "run"))
    parser.add_argument("--out", type=Path, help="run: also write gpucheck.json here")
    args = parser.parse_args(argv)
    return prepare() if args.step == "prepare" else run(args.out)


if __name__ == "__main__":
    sys.exit(main())
