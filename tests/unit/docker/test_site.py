"""One site-options object for Docker: the hub's traits and the CLI's config file give the
same ``DockerSite``, and the preparation's pure host check uses it."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.docker.engine import EngineError, EngineTimeout, engine_text, translated
from spawner.docker.prepare import STATUS, PrepareError, check_host, volume_init_body
from spawner.docker.runtimes import RuntimeUnavailable
from spawner.docker.site import DockerSite, load_docker_site, site_from_config
from spawner.docker.traits import LockstepDockerTraits
from spawner.errors import LockstepError
from spawner.launch.spec import GpuRequest
from spawner.project import parse_project
from spawner.settings import load_settings

PROJECT = parse_project("name: forecast\nisolation: kata\n", source="project.yaml")
RUNC = parse_project("name: plain\n", source="project.yaml")
INFO = {"Runtimes": {"runc": {}, "kata-qemu": {}}, "ServerVersion": "26.1.0"}


def test_defaults_match_the_traits_defaults():
    site = site_from_config(Config())
    assert site == DockerSite.from_traits(LockstepDockerTraits()) == DockerSite()
    assert site.runtimes == {"gvisor": "runsc", "kata": "kata-runtime", "runc": ""}
    assert (site.gpu_mode, site.network_internal, site.firewall) == ("auto", False, True)
    assert site.chown_volumes and site.allowed_host_ports == ()


def test_the_cli_reads_the_same_section_the_hub_does(tmp_path: Path):
    config = tmp_path / "lockstep_config.py"
    config.write_text(
        'c.LockstepDockerSpawner.runtime_names = {"kata": "kata-qemu"}\n'
        'c.LockstepDockerSpawner.gpu_mode = "cdi"\n'
        "c.LockstepDockerSpawner.network_internal = True\n"
        "c.LockstepDockerSpawner.firewall = False\n"
        "c.LockstepDockerSpawner.allowed_host_ports = [3128, 3128, 80]\n"
        'c.LockstepDockerSpawner.volume_ownership = "image"\n'
        'c.LockstepDockerSpawner.image = "ignored: a DockerSpawner option"\n'
    )
    site = load_docker_site(load_settings(str(config)))
    hub = LockstepDockerTraits(runtime_names={"kata": "kata-qemu"}, gpu_mode="cdi",
                               network_internal=True, firewall=False,
                               allowed_host_ports=[3128, 3128, 80], volume_ownership="image")
    assert site == DockerSite.from_traits(hub)
    assert site.runtimes["kata"] == "kata-qemu" and site.runtimes["gvisor"] == "runsc"
    assert site.allowed_host_ports == (80, 3128)
    assert not site.chown_volumes


def test_lazy_config_values_are_applied_over_the_default():
    config = Config()
    config.LockstepDockerSpawner.runtime_names.update({"gvisor": "runsc-debug"})
    config.LockstepDockerSpawner.allowed_host_ports.append(8081)
    site = site_from_config(config)
    assert site.runtimes["gvisor"] == "runsc-debug"
    assert site.allowed_host_ports == (8081,)


def test_a_bad_value_names_the_option():
    config = Config()
    config.LockstepDockerSpawner.gpu_mode = "cuda"
    with pytest.raises(LockstepError, match=r"c\.LockstepDockerSpawner\.gpu_mode in the "
                       r"config is not valid: .*'cuda'"):
        site_from_config(config)


def test_the_host_check_uses_the_sites_runtime_names():
    renamed = site_from_config(Config({"LockstepDockerSpawner": {
        "runtime_names": {"kata": "kata-qemu"}}}))
    assert check_host(None, project=PROJECT, site=renamed, info=INFO) == ("kata-qemu", "none")
    with pytest.raises(RuntimeUnavailable, match="needs the 'kata-runtime' runtime"):
        check_host(None, project=PROJECT, site=DockerSite(), info=INFO)
    aliased = site_from_config(Config({"LockstepDockerSpawner": {
        "runtime_names": {"runc": "lockstep-runc-alias"}}}))
    with pytest.raises(RuntimeUnavailable, match="lockstep-runc-alias"):
        check_host(None, project=RUNC, site=aliased, info=INFO)


def test_the_host_check_uses_the_sites_gpu_mode():
    gpu = GpuRequest(1, "nvidia", "")
    explicit = DockerSite(gpu_mode="nvidia")
    assert check_host(gpu, project=RUNC, site=explicit, info=INFO) == ("", "nvidia")
    with pytest.raises(LockstepError, match="cannot give containers GPUs"):
        check_host(gpu, project=RUNC, site=DockerSite(), info=INFO)


def test_prepare_errors_carry_their_step_and_status():
    assert PrepareError("x", step="host").status == 400 == STATUS["host"]
    assert PrepareError("x", step="network").status == 500
    assert PrepareError("x", step="pull").step == "pull"


def test_the_volume_helper_is_narrow():
    body = volume_init_body("img@sha256:" + "a" * 64, "vol", "/home/jovyan", {"k": "v"})
    host = body["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["CHOWN", "FOWNER"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert body["Labels"] == {"k": "v", "org.lockstep.role": "volume-init"}


def test_one_volume_helper_hands_every_new_volume_to_the_notebook_user():
    from spawner.docker.prepare import volumes_init_body

    body = volumes_init_body("img@sha256:" + "a" * 64,
                             {"home-v": "/home/jovyan", "ws-v": "/workspace"}, {"k": "v"})
    mounts = body["HostConfig"]["Mounts"]
    assert [(m["Type"], m.get("Source"), m["Target"]) for m in mounts] == [
        ("volume", "home-v", "/home/jovyan"), ("volume", "ws-v", "/workspace"),
        ("tmpfs", None, "/tmp")]
    code = body["Entrypoint"][-1]
    assert "['/home/jovyan', '/workspace']" in code and "os.chown(t, 1000, 100)" in code
    assert body["HostConfig"]["CapAdd"] == ["CHOWN", "FOWNER"]
    assert body == volumes_init_body("img@sha256:" + "a" * 64,
                                     {"ws-v": "/workspace", "home-v": "/home/jovyan"},
                                     {"k": "v"})  # the same body whatever the order


class _Explained(Exception):
    explanation = "  conflict:   name in use  "


def test_engine_text_is_one_line():
    assert engine_text(_Explained()) == "conflict: name in use"


def test_translated_keeps_engine_errors_and_maps_timeouts():
    import requests

    with pytest.raises(EngineTimeout, match="did not finish in time while trying to wait"):
        with translated("wait for the gate"):
            raise requests.exceptions.ReadTimeout("read timed out")
    with pytest.raises(EngineError, match="^mine$"):
        with translated("anything"):
            raise EngineError("mine")


def test_deploy_refuses_an_internal_site_before_touching_the_engine(tmp_path: Path, capsys,
                                                                     monkeypatch):
    from spawner.cli import main

    root = Path(__file__).resolve().parents[3]
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.environments_dir = {str(root / 'environments')!r}\n"
                      f"c.Lockstep.data_dir = {str(tmp_path / 'state')!r}\n"
                      "c.LockstepDockerSpawner.network_internal = True\n")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # would fail loudly
    assert main(["--config", str(config), "deploy", "forecast", "--port", "18080"]) == 2
    err = capsys.readouterr().err
    assert "c.LockstepDockerSpawner.network_internal = True" in err
    assert "could not be reached on port 18080" in err and "--render k8s" in err


def test_the_volume_helper_runs_under_the_projects_runtime():
    image = "img@sha256:" + "a" * 64
    body = volume_init_body(image, "vol", "/home/jovyan", {}, runtime="runsc")
    assert body["HostConfig"]["Runtime"] == "runsc"
    assert "Runtime" not in volume_init_body(image, "vol", "/home/jovyan", {})["HostConfig"]
    assert volume_init_body(image, "v", "/h", {}, runtime="runsc")["HostConfig"]["PidsLimit"] == 128
