"""Where ``hubconfig.configure`` binds the Hub API (issue 11: not on every interface)."""

from traitlets.config import Config

from spawner.docker.hubconfig import configure


def test_the_hub_api_binds_the_hub_address_and_everyone_calls_it_there(tmp_path):
    c = Config()
    configure(c, environments_dir=str(tmp_path), data_roots=[], hub_port=8081,
              hub_ip="192.168.240.1", service_port=1)
    assert c.JupyterHub.hub_bind_url == "http://192.168.240.1:8081"
    assert c.JupyterHub.hub_connect_ip == "192.168.240.1"  # the proxy and services
    assert c.LockstepDockerSpawner.hub_connect_url == "http://192.168.240.1:8081"  # servers
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"  # the public proxy: loopback
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"


def test_without_a_hub_address_the_old_wildcard_bind_stays(tmp_path):
    c = Config()
    configure(c, environments_dir=str(tmp_path), data_roots=[], service_port=1)
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8081"
    assert "hub_connect_url" not in c.LockstepDockerSpawner
