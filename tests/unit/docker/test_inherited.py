"""DockerSpawner's traits on LockstepDockerSpawner: honoured ones in the golden body,
weakening ones stop the hub at start (and every spawn) naming the trait and the override.

Regenerate goldens with ``LOCKSTEP_UPDATE_GOLDEN=1`` (see test_render.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.docker.inherited import WEAKENINGS, WeakeningRefused, from_traits
from spawner.docker.render import DockerOptions, for_server, render_container
from spawner.docker.spawner import LockstepDockerSpawner, check_config
from spawner.docker.traits import check_site_config
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project
from tests.unit.hubfakes import User

GOLDEN = Path(__file__).parents[1] / "golden" / "docker"
IMAGE = ImageRef("127.0.0.1:5000/lockstep/iris@sha256:" + "ab" * 32, lock_hash="f" * 64)
IRIS = parse_project("name: iris\nmembers: {users: [alice]}\n"
                     "resources: {cpu: 1.5, memory: 2Gi, pids: 512}\n", source="project.yaml")
HONOURED = dict(
    mem_limit=1 * 2**30, cpu_limit=4.0, mem_guarantee=512 * 2**20,
    extra_host_config={"ulimits": [{"name": "nofile", "soft": 4096, "hard": 8192}],
                       "extra_hosts": {"proxy.local": "10.0.0.2"}, "dns": ["10.0.0.53"],
                       "security_opt": ["apparmor=lockstep-notebook"], "pids_limit": 100,
                       "shm_size": "256m", "cap_drop": ["ALL"]},
    extra_create_kwargs={"hostname": "notebook", "environment": {"TEAM": "ml", "HOME": "/x"},
                         "labels": {"com.example.cost": "ds", "org.lockstep.project": "evil"}},
    volumes={"shared-models": {"bind": "/models", "mode": "ro"}},
    read_only_volumes={"reference-data": "/ref"},
    mounts=[{"type": "volume", "source": "scratch-alice", "target": "/scratch"},
            {"type": "tmpfs", "target": "/cache", "tmpfs_size": 2**20}],
    links={"db": "database"},
)


def spec(server: str = ""):
    return for_server(build_launch_spec(
        project=IRIS, image=IMAGE, user="alice", stage="dev", data_sources={},
        env={"JUPYTERHUB_API_TOKEN": "tok"}, command=("/opt/env/bin/jupyterhub-singleuser",)),
        server)


def test_golden_body_with_every_honoured_trait():
    body = render_container(spec(), DockerOptions(inherited=from_traits(**HONOURED)))
    path = GOLDEN / "dockerspawner-traits.json"
    rendered = json.dumps(body, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text()
    host = body["HostConfig"]
    # limits: the smaller of project and site wins (memory from the site, CPU and pids split)
    assert host["Memory"] == host["MemorySwap"] == 2**30 and host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 100 and host["MemoryReservation"] == 512 * 2**20
    assert host["SecurityOpt"] == ["no-new-privileges:true", "apparmor=lockstep-notebook"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"]
    assert "HOME=/home/jovyan" in body["Env"] and "TEAM=ml" in body["Env"]
    assert body["Labels"]["org.lockstep.project"] == "iris"  # lockstep's labels win
    assert body["Labels"]["com.example.cost"] == "ds" and body["Hostname"] == "notebook"
    assert {m["Target"] for m in host["Mounts"]} >= {"/models", "/ref", "/scratch", "/cache"}


def test_cpu_quota_becomes_nano_cpus_and_never_raises_the_project():
    body = render_container(spec(), DockerOptions(inherited=from_traits(
        extra_host_config={"cpu_quota": 50_000, "cpu_period": 100_000, "mem_limit": "8g"})))
    host = body["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and "CpuQuota" not in host
    assert host["Memory"] == 2 * 2**30  # the project's 2Gi is smaller than the site's 8g


def test_a_mount_on_a_lockstep_target_is_refused():
    with pytest.raises(ValueError, match="two mounts on /home/jovyan"):
        render_container(spec(), DockerOptions(inherited=from_traits(
            volumes={"old-home": "/home/jovyan"})))


def test_named_servers_get_their_own_home_unnamed_keeps_its_name():
    homes = {s: next(m.source for m in spec(s).mounts if m.kind == "home")
             for s in ("", "gpu", "cpu")}
    assert homes[""] == "lockstep-home-iris_alice"
    assert len(set(homes.values())) == 3
    assert homes["gpu"] == "lockstep-home-iris_alice_gpu"


WEAKENING_CONFIGS = {
    "privileged": ("extra_host_config", {"privileged": True}),
    "cap_add": ("extra_host_config", {"cap_add": ["SYS_ADMIN"]}),
    "host_network": ("extra_host_config", {"network_mode": "host"}),
    "host_pid": ("extra_host_config", {"pid_mode": "host"}),
    "host_ipc": ("extra_host_config", {"ipc_mode": "host"}),
    "security_opt": ("extra_host_config", {"security_opt": ["seccomp=unconfined"]}),
    "devices": ("extra_host_config", {"devices": ["/dev/fuse:/dev/fuse:rwm"]}),
    "writable_root": ("extra_host_config", {"read_only": False}),
    "root": ("extra_create_kwargs", {"user": "root"}),
    "host_bind": ("volumes", {"/": "/host"}),
    "network": ("network_name", "jupyterhub-net"),
}


@pytest.mark.parametrize("name", sorted(WEAKENING_CONFIGS))
def test_each_weakening_stops_startup_with_its_name(name):
    trait, value = WEAKENING_CONFIGS[name]
    c = Config()
    setattr(c.DockerSpawner, trait, value)
    with pytest.raises(WeakeningRefused) as err:
        check_site_config(c)
    assert trait.split("_")[0] in str(err.value) and f"allow_weakening = [{name!r}]" in \
        str(err.value)
    with pytest.raises(WeakeningRefused):  # and no spawner of this hub can be made
        LockstepDockerSpawner(user=User("alice"), config=c)
    c.LockstepDockerSpawner.allow_weakening = [name]
    check_site_config(c)  # the explicit override lets it through


def test_every_weakening_name_is_tested_and_unknown_overrides_are_refused():
    assert set(WEAKENING_CONFIGS) | {"cap_drop", "runtime", "host_uts", "host_userns",
                                     "host_cgroupns"} == set(WEAKENINGS)
    c = Config()
    c.LockstepDockerSpawner.allow_weakening = ["everything"]
    with pytest.raises(Exception, match="unknown allow_weakening names"):
        LockstepDockerSpawner(user=User("alice"), config=c)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_hub(tmp_path: Path, body: str) -> tuple[int, str]:
    """Run ``jupyterhub -f`` on a config of ``body`` (after a preamble that keeps the hub on
    loopback, its files in ``tmp_path`` and starts no proxy, so a hub that wrongly starts
    leaves nothing behind); (exit status, log). A hub still running after 60 s is killed
    and the test fails."""
    (tmp_path / "jupyterhub_config.py").write_text(
        f'c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"\n'
        f'c.JupyterHub.bind_url = "http://127.0.0.1:{free_port()}"\n'
        f'c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"\n'
        f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"\n'
        "c.ConfigurableHTTPProxy.should_start = False\n" + body)
    try:
        done = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the hub did not stop at start:\n{exc.stderr}")
    return done.returncode, done.stderr + done.stdout


def test_a_real_jupyterhub_stops_at_start_naming_the_trait(tmp_path):
    """A site's own jupyterhub_config.py that ends with check_config(c): the hub exits 1
    while it loads its config (before the proxy or any spawner), naming trait and override."""
    status, log = run_hub(tmp_path,
                          'c.JupyterHub.spawner_class = "lockstep-docker"\n'
                          'c.DockerSpawner.extra_host_config = {"privileged": True}\n'
                          "from spawner.docker.spawner import check_config\n"
                          "check_config(c)\n")
    assert status == 1, log
    assert "WeakeningRefused" in log and "extra_host_config: Privileged=True" in log, log
    assert "c.LockstepDockerSpawner.allow_weakening = ['privileged']" in log, log
    assert "Starting proxy" not in log and "Initialized 0 spawners" not in log, log


def test_a_real_jupyterhub_from_hubconfig_stops_at_start(tmp_path):
    """``hubconfig.configure`` ends with the check, so a weakening set before it stops the
    hub; one set after it is caught by the check_config(c) line that ends the file."""
    before = ('c.DockerSpawner.extra_create_kwargs = {"user": "root"}\n'
              "from spawner.docker.hubconfig import configure\n"
              f"configure(c, environments_dir={str(tmp_path)!r}, data_roots=[], "
              f"state_dir={str(tmp_path)!r})\n")
    status, log = run_hub(tmp_path, before)
    assert status == 1 and "extra_create_kwargs: User='root'" in log, log
    assert "allow_weakening = ['root']" in log, log
    after = (before.replace('"user": "root"', '"hostname": "nb"') +
             'c.DockerSpawner.volumes = {"/var/run/docker.sock": "/var/run/docker.sock"}\n'
             "from spawner.docker.spawner import check_config\ncheck_config(c)\n")
    status, log = run_hub(tmp_path, after)
    assert status == 1 and "/var/run/docker.sock -> /var/run/docker.sock" in log, log
    assert "allow_weakening = ['host_bind']" in log, log


def test_check_config_refuses_unknown_override_names():
    c = Config()
    c.LockstepDockerSpawner.allow_weakening = ["privileged", "everything"]
    with pytest.raises(WeakeningRefused, match=r"unknown names \['everything'\]"):
        check_config(c)
