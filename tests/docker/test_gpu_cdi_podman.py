"""GPU injection through a test CDI spec on a real Podman: what each API honours, measured.

No GPU exists here, so a CDI spec stands in for one: kind ``lockstep.test/gpu``, one device
whose node is a char device made on the spot (1:3, what ``/dev/null`` is) and whose
``containerEdits`` set ``LOCKSTEP_CDI_TEST``. A static probe reports, from inside the
container, whether the node and the variable arrived. The module starts its own rootful
``podman system service`` on its own socket and stops it at the end.

Observed with Podman 4.3.1 (Debian 12) and asserted below, so that a Podman that behaves
differently fails here and ``spawner.docker.gpu`` gets revisited:

=========================================  =============================================
request                                    result
=========================================  =============================================
libpod API ``devices: [{"path": NAME}]``   node and variable injected (the control: the
                                           spec, the node and the engine all work)
compat API, spawner body, mode ``cdi``     created and started; request dropped (no node,
                                           no variable, not in ``inspect``)
compat API, spawner body, mode ``nvidia``  same: accepted and dropped
compat API, spawner body, ``cdi-devices``  created; start fails, "unresolvable CDI devices
                                           NAME::rwm" (fields joined as host:ctr:perms)
=========================================  =============================================

lockstep drives the Docker-compatible API only, so ``LockstepDockerSpawner`` refuses GPU
projects on this Podman before creating anything; the last test shows that with the
engine's real ``/info``.

The spawner's create body is used as rendered (image by digest, hardening, volumes, tmpfs,
limits, and init when a static tini is installed), with two substitutions stated where
they are made: the network (``none``; networking is not under test) and the CDI name (this
spec's device instead of ``nvidia.com/gpu=0``, which a real NVIDIA spec would also claim).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

from spawner.docker.gpu import cdi_names
from spawner.docker.render import DockerOptions, render_container
from spawner.docker.spawner import LockstepDockerSpawner
from spawner.launch.spec import GpuRequest, ImageRef, build_launch_spec
from spawner.project import parse_project

docker = pytest.importorskip("docker")
httpx = pytest.importorskip("httpx")

TOKEN = uuid.uuid4().hex[:10]
KIND = "lockstep.test/gpu"
DEVICE = f"{KIND}=gpu0-{TOKEN}"
NODE = f"/dev/lockstep-test-gpu0-{TOKEN}"
CDI_DIR = Path("/var/run/cdi")  # Podman 4.3 reads /etc/cdi and /var/run/cdi; no setting moves it
LABEL = ("org.lockstep.test", f"cdi-{TOKEN}")
PROBE_IMAGE = f"localhost/lockstep-cdi-probe:{TOKEN}"
PROJECT = f"cdi{TOKEN}"
STAND_IN = cdi_names(GpuRequest(1, "nvidia"))[0]  # "nvidia.com/gpu=0"

PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
int main(int argc, char **argv) {
    const char *env = getenv("LOCKSTEP_CDI_TEST");
    printf("env=%s\n", env ? env : "-");
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (lstat(argv[i], &st) != 0) printf("node=missing\n");
        else if (S_ISCHR(st.st_mode))
            printf("node=char:%u:%u\n", major(st.st_rdev), minor(st.st_rdev));
        else printf("node=other\n");
    }
    return 0;
}
"""

SPEC = f"""cdiVersion: "0.5.0"
kind: {KIND}
devices:
  - name: gpu0-{TOKEN}
    containerEdits:
      deviceNodes:
        - path: {NODE}
containerEdits:
  env:
    - LOCKSTEP_CDI_TEST={TOKEN}
"""

# Podman as root raises RLIMIT_NOFILE/NPROC in the container to values this host's runc
# may not set (observed: "error setting rlimit type 7/6: operation not permitted");
# Docker leaves them alone, and the probe needs neither. The body asks for an init: Podman
# looks for catatonit (not installed), so point it at Docker's static tini; Podman 4.3's
# compat API reads init_path from [engine] only.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
{init}"""

INJECTED = {"env": TOKEN, "node": "char:1:3"}
ABSENT = {"env": "-", "node": "missing"}


def _prerequisites() -> str:
    if not shutil.which("podman"):
        return "podman is not installed (scripts/setup.sh installs it with apt)"
    if os.geteuid() != 0:
        return "needs root: rootful Podman, and mknod for the stand-in device node"
    if not shutil.which("gcc"):
        return "gcc is needed to build the static probe binary"
    return ""


def _probe_tar(workdir: Path) -> bytes:
    (workdir / "probe.c").write_text(PROBE)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(workdir / "probe"),
                    str(workdir / "probe.c")], check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(workdir / "probe", arcname="probe")
    return buf.getvalue()


@dataclass(frozen=True)
class Podman:
    client: object  # docker.APIClient on the service's socket
    socket: Path
    version: str
    image: str  # the probe, REPOSITORY@sha256:... as lockstep references images
    init: bool  # whether an init binary is configured (the body asks for Init)


def _wait_for(client, proc, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"podman system service exited: {log.read_text()[-2000:]}")
        try:
            client.ping()
            return
        except Exception:  # not listening yet
            time.sleep(0.2)
    raise RuntimeError(f"podman system service did not answer in 60s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """A Podman service of our own, with the probe image and the test CDI spec in place."""
    reason = _prerequisites()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("podman-cdi")
    init = shutil.which("tini-static") or shutil.which("docker-init") or ""
    conf = work / "containers.conf"
    conf.write_text(CONTAINERS_CONF.format(init=f'init_path = "{init}"\n' if init else ""))
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    made_dir = not CDI_DIR.exists()
    spec_file = CDI_DIR / f"lockstep-test-{TOKEN}.yaml"
    sock = work / "podman.sock"
    proc = client = None
    try:
        os.mknod(NODE, 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR
        CDI_DIR.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(SPEC)
        subprocess.run(["podman", "import", "-", PROBE_IMAGE], input=_probe_tar(work),
                       env=env, check=True, capture_output=True)
        log = work / "service.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        client = docker.APIClient(base_url=f"unix://{sock}", version="1.41", timeout=60)
        _wait_for(client, proc, log)
        image = client.inspect_image(PROBE_IMAGE)["RepoDigests"][0]
        yield Podman(client, sock, client.version()["Version"], image, bool(init))
    finally:
        if client is not None:
            for found in client.containers(all=True, filters={"label": "=".join(LABEL)}):
                client.remove_container(found["Id"], force=True)
            for volume in client.volumes().get("Volumes") or []:
                if PROJECT in volume["Name"]:  # Podman 4.3 drops VolumeOptions.Labels
                    client.remove_volume(volume["Name"], force=True)
            client.close()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["podman", "rmi", "--force", PROBE_IMAGE], env=env, capture_output=True)
        spec_file.unlink(missing_ok=True)
        Path(NODE).unlink(missing_ok=True)
        if made_dir and not any(CDI_DIR.iterdir()):
            CDI_DIR.rmdir()


def _parse(output: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.decode().split())


def spawner_body(podman: Podman, mode: str) -> dict:
    """``render_container`` for a 1-GPU project in ``mode``, with the stated substitutions."""
    project = parse_project(f"name: {PROJECT}\nmembers: {{users: [alice]}}\ngpu: {{count: 1}}\n"
                            "resources: {cpu: 1, memory: 256Mi, pids: 64}\n",
                            source="project.yaml")
    spec = build_launch_spec(project=project, image=ImageRef(podman.image, lock_hash="0" * 64),
                             user="alice", stage="dev", data_sources={},
                             command=("/probe", NODE))
    body = render_container(spec, DockerOptions(gpu_mode=mode, init=podman.init,
                                                extra_labels=(LABEL,)))
    host = body["HostConfig"]
    gpu_keys = {k: host[k] for k in ("Devices", "DeviceRequests") if k in host}
    assert STAND_IN in json.dumps(gpu_keys) or mode == "nvidia", gpu_keys
    body = json.loads(json.dumps(body).replace(STAND_IN, DEVICE))  # substitution: CDI name
    body["HostConfig"]["NetworkMode"] = "none"  # substitution: the network is not under test
    del body["NetworkingConfig"]
    return body


def run_compat(client, body: dict, name: str) -> tuple[dict, dict[str, str]]:
    """Create and start through docker-py (what the spawner uses); (inspect, probe output)."""
    created = client.create_container_from_config(body, f"lockstep-cdi-{TOKEN}-{name}")
    info = client.inspect_container(created["Id"])
    client.start(created["Id"])
    assert client.wait(created["Id"], timeout=60)["StatusCode"] == 0
    return info, _parse(client.logs(created["Id"], stdout=True, stderr=False))


def test_libpod_api_injects_the_test_cdi_device(podman):
    """The control: Podman's own API resolves the spec, so the setup is sound."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(podman.socket)),
                      base_url="http://podman/v4.0.0/libpod", timeout=60) as api:
        outputs = {}
        for case, devices in (("with", [{"path": DEVICE}]), ("without", [])):
            created = api.post("/containers/create", json={
                "name": f"lockstep-cdi-{TOKEN}-libpod-{case}", "image": podman.image,
                "command": ["/probe", NODE], "netns": {"nsmode": "none"},
                "devices": devices, "labels": dict([LABEL])})
            assert created.status_code == 201, created.text
            cid = created.json()["Id"]
            assert api.post(f"/containers/{cid}/start").status_code == 204
            assert api.post(f"/containers/{cid}/wait").text.strip() == "0"
            logs = api.get(f"/containers/{cid}/logs", params={"stdout": True}).content
            outputs[case] = _parse(_demux(logs))
    assert outputs == {"with": INJECTED, "without": ABSENT}


def _demux(stream: bytes) -> bytes:
    """The payload of a multiplexed log stream (an 8-byte header before each frame)."""
    out, i = b"", 0
    while i + 8 <= len(stream):
        size = int.from_bytes(stream[i + 4:i + 8], "big")
        out, i = out + stream[i + 8:i + 8 + size], i + 8 + size
    return out


@pytest.mark.parametrize("mode", ["cdi", "nvidia"])
def test_compat_api_drops_device_requests(podman, mode):
    body = spawner_body(podman, mode)
    assert body["HostConfig"]["DeviceRequests"]  # the spawner asked
    info, seen = run_compat(podman.client, body, mode)
    assert seen == ABSENT, (
        f"Podman {podman.version} now honours DeviceRequests in mode {mode!r} ({seen}): "
        "let spawner.docker.gpu trust this Podman and flip this test")
    assert not info["HostConfig"].get("DeviceRequests")  # dropped, not even recorded


def test_compat_api_cannot_resolve_cdi_names_in_devices(podman):
    client = podman.client
    body = spawner_body(podman, "cdi-devices")
    assert body["HostConfig"]["Devices"] == [
        {"CgroupPermissions": "rwm", "PathInContainer": "", "PathOnHost": DEVICE}]
    created = client.create_container_from_config(body, f"lockstep-cdi-{TOKEN}-devices")
    with pytest.raises(docker.errors.APIError) as err:
        client.start(created["Id"])
    assert f"unresolvable CDI devices {DEVICE}::rwm" in str(err.value), (
        f"Podman {podman.version} changed how it treats CDI names in Devices: {err.value}")


async def test_spawner_refuses_gpu_projects_on_this_podman(podman, tmp_path):
    """The host check the spawner runs before creating anything, on the engine's real
    ``/info``: a 400 that names Podman and what to do."""
    version = podman.version

    class PodmanSpawner(LockstepDockerSpawner):
        _client = None  # DockerSpawner keeps one client per class; this one is Podman's

    class Who:
        name, admin, groups, url, escaped_name = "alice", False, [], "/user/alice/", "alice"

    config = Config()
    config.Lockstep.environments_dir = str(tmp_path)
    config.Lockstep.data_dir = str(tmp_path / "state")
    project = parse_project(f"name: {PROJECT}\nmembers: {{users: [alice]}}\ngpu: {{count: 1}}\n",
                            source="project.yaml")
    saved = LockstepDockerSpawner._info_cache
    LockstepDockerSpawner._info_cache = (0.0, {})  # the class-wide cache must hold Podman's
    spawner = PodmanSpawner(user=Who(), config=config, client_kwargs={
        "base_url": f"unix://{podman.socket}", "version": "1.41"})
    # Podman 4 refuses every mode; a later Podman only 'auto' (an explicit mode is trusted)
    modes = ("auto", "cdi", "cdi-devices", "nvidia") if version.startswith("4.") else ("auto",)
    try:
        assert (await spawner.engine_info())["ServerVersion"] == version
        for mode in modes:
            spawner.gpu_mode = mode
            with pytest.raises(SpawnException) as err:
                await spawner._check_host(project, None)
            assert err.value.status_code == 400
            message = str(err.value)
            assert f"this engine is Podman {version}" in message, message
            assert "Docker-compatible API" in message and "nvidia-ctk cdi generate" in message
        spawner.gpu_mode = "auto"
        want_gpu, gpu_mode, _, _ = await spawner._check_host(project, False)
        assert (want_gpu, gpu_mode) == (False, "none")  # without a GPU it may start
    finally:
        LockstepDockerSpawner._info_cache = saved
        if PodmanSpawner._client is not None:
            PodmanSpawner._client.close()
