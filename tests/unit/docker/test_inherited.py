"""DockerSpawner's traits on LockstepDockerSpawner: honoured ones in the golden body,
weakening ones stop the hub at start (and every spawn) naming the trait and the override.

Regenerate goldens with ``LOCKSTEP_UPDATE_GOLDEN=1`` (see test_render.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.docker.inherited import WEAKENINGS, WeakeningRefused, from_traits
from spawner.docker.render import DockerOptions, for_server, render_container
from spawner.docker.spawner import LockstepDockerSpawner, check_config
from spawner.docker.traits import check_site_config
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project
from tests.support.hubrun import run_hub
from tests.unit.hubfakes import User

GOLDEN = Path(__file__).parents[1] / "golden" / "docker"
IMAGE = ImageRef("127.0.0.1:5000/lockstep/iris@sha256:" + "ab" * 32, lock_hash="f" * 64)
IRIS = parse_project("name: iris\nmembers: {users: [alice]}\n"
                     "resources: {cpu: 1.5, memory: 2Gi, pids: 512}\n", source="project.yaml")
HONOURED = dict(
    mem_limit=1 * 2**30, cpu_limit=4.0, mem_guarantee=512 * 2**20, cpu_guarantee=0.5,
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
    assert host["CpuShares"] == 512  # cpu_guarantee: Docker's weight, 1024 per CPU
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


@pytest.mark.parametrize("guarantee,limit,shares", [
    (0.5, None, 512),     # 1024 per guaranteed CPU
    (4.0, None, 1536),    # never above the limit: the project's 1.5 CPUs
    (2.0, 1.0, 1024),     # nor above the site's smaller cpu_limit
    (0.001, None, 2),     # Docker's smallest weight
])
def test_cpu_guarantee_becomes_cpu_shares_never_above_the_limit(guarantee, limit, shares):
    body = render_container(spec(), DockerOptions(inherited=from_traits(
        cpu_guarantee=guarantee, cpu_limit=limit)))
    assert body["HostConfig"]["CpuShares"] == shares


def test_no_guarantee_no_cpu_shares_and_extra_host_config_wins():
    assert "CpuShares" not in render_container(spec())["HostConfig"]
    body = render_container(spec(), DockerOptions(inherited=from_traits(
        cpu_guarantee=1.0, extra_host_config={"cpu_shares": 100})))
    assert body["HostConfig"]["CpuShares"] == 100


async def test_the_spawner_passes_its_guarantees_to_the_body():
    c = Config()
    c.Spawner.cpu_guarantee, c.Spawner.mem_guarantee = 0.25, "256M"
    spawner = LockstepDockerSpawner(user=User("alice"), config=c)
    inherited = await spawner._inherited()
    assert inherited.nano_cpu_guarantee == 250_000_000
    assert inherited.memory_reservation == 256 * 2**20


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


@pytest.mark.parametrize("site_memory, site_cpu", [(None, None), (2**40, 64.0), (2**28, 0.25)])
def test_the_limit_variables_name_the_limits_the_container_gets(site_memory, site_cpu):
    # JupyterHub sets MEM_LIMIT/CPU_LIMIT from the site's values; the body applies the
    # smaller of project and site, and the variables must say what the container really has
    hub_env = {"MEM_LIMIT": str(site_memory or 1), "CPU_LIMIT": str(site_cpu or 1.0)}
    launch = for_server(build_launch_spec(
        project=IRIS, image=IMAGE, user="alice", stage="dev", data_sources={},
        env={"JUPYTERHUB_API_TOKEN": "tok", **hub_env}, command=("x",)), "")
    body = render_container(launch, DockerOptions(inherited=from_traits(
        mem_limit=site_memory, cpu_limit=site_cpu)))
    env = dict(e.split("=", 1) for e in body["Env"])
    host = body["HostConfig"]
    assert int(env["MEM_LIMIT"]) == host["Memory"] <= launch.resources.memory_bytes
    assert float(env["CPU_LIMIT"]) == host["NanoCpus"] / 1e9 <= launch.resources.cpu
    if site_memory == 2**28:
        assert host["Memory"] == 2**28 and env["CPU_LIMIT"] == "0.25"
