"""The notebooks gate's container body (pure) and result parsing."""

import pytest

from spawner.launch.spec import ImageRef
from spawner.project import parse_project
from spawner.promote.notebooks import (
    MARKER,
    NotebookGateError,
    notebook_container,
    parse_results,
)

IMAGE = ImageRef("127.0.0.1:5000/lockstep/forecast@sha256:" + "a" * 64)
PROJECT = parse_project(
    "name: forecast\ndata:\n  - {name: sales, source: sales, target: /data/sales}\n"
    "gpu: {count: 1}\nresources: {cpu: 1, memory: 1G, pids: 512}\n",
    source="project.yaml",
)


def body():
    return notebook_container(
        project=PROJECT,
        image=IMAGE,
        data_sources={"sales": "/srv/data/sales"},
        notebooks_dir="/srv/notebooks/forecast",
        notebooks=["a.ipynb", "b.ipynb"],
    )


def test_gate_container_is_hardened_and_offline():
    b = body()
    host = b["HostConfig"]
    assert b["Image"] == IMAGE.reference
    assert b["User"] == "1000:100"
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert b["NetworkingConfig"] == {"EndpointsConfig": {}}
    assert "DeviceRequests" not in host or not host["DeviceRequests"]  # no GPU for gates
    assert host["Memory"] == 1_000_000_000 and host["PidsLimit"] == 512
    assert b["Labels"]["org.lockstep.gate"] == "notebooks"
    assert b["Cmd"][:2] == ["python", "-c"] and b["Cmd"][-2:] == ["a.ipynb", "b.ipynb"]


def test_gate_container_mounts_only_data_notebooks_and_tmpfs():
    mounts = {m["Target"]: m for m in body()["HostConfig"]["Mounts"]}
    assert sorted(mounts) == ["/data/sales", "/home/jovyan", "/notebooks", "/tmp"]
    assert mounts["/data/sales"]["Type"] == "bind" and mounts["/data/sales"]["ReadOnly"] is True
    assert mounts["/notebooks"] == {
        "Type": "bind",
        "Source": "/srv/notebooks/forecast",
        "Target": "/notebooks",
        "ReadOnly": True,
        "BindOptions": {"Propagation": "rprivate"},
    }
    assert mounts["/tmp"]["Type"] == mounts["/home/jovyan"]["Type"] == "tmpfs"


def test_results_are_parsed_and_missing_ones_fail():
    output = "noise\n" + MARKER + '{"notebook": "a.ipynb", "ok": true, "seconds": 1.5}\n'
    a, b = parse_results(output, ["a.ipynb", "b.ipynb"])
    assert a.ok and a.seconds == 1.5
    assert not b.ok and b.message.startswith("did not finish: ")


def test_an_image_without_nbclient_says_so():
    output = MARKER + '{"error": "nbclient", "detail": "No module named \'nbclient\'"}\n'
    with pytest.raises(NotebookGateError, match="the image has no nbclient"):
        parse_results(output, ["a.ipynb"])
