"""``spawner.hubcompat``: JupyterHub 6's SpawnException where it exists, a twin on 5.x.

The twin is what JupyterHub 5 hubs raise (tests/packaging runs the Kubernetes refusal tests
on JupyterHub 5.5); here both are checked against the same contract.
"""

from __future__ import annotations

import jupyterhub
import pytest
from tornado import web

from spawner import hubcompat


def test_jupyterhub6_uses_its_own_class():
    if not jupyterhub.__version__.startswith("6."):
        pytest.fail(f"this venv should run JupyterHub 6 (constraints.txt), has "
                    f"{jupyterhub.__version__}")
    from jupyterhub.spawner import SpawnException

    assert hubcompat.SpawnException is SpawnException


@pytest.mark.parametrize("cls", [hubcompat.SpawnException, hubcompat._SpawnException],
                         ids=["hub", "twin"])
def test_refusal_contract(cls):
    err = cls("Project 'iris' is 100% full", reason="capacity", status_code=503)
    assert isinstance(err, web.HTTPError)
    assert (err.status_code, err.reason, err.message) == (503, "capacity",
                                                          "Project 'iris' is 100% full")
    assert err.log_message == "Project 'iris' is 100% full"
    assert "100% full" in str(err)
    default = cls("bad options", reason="options")
    assert default.status_code == 400 and default.message_html == ""


def test_twin_shows_the_message_on_jupyterhub5():
    """JupyterHub 5's spawn page reads ``jupyterhub_message`` / ``jupyterhub_html_message``."""
    err = hubcompat._SpawnException("no GPUs", reason="options", log_message="carol: no GPUs",
                                    message_html="<b>no GPUs</b>", status_code=409)
    assert err.jupyterhub_message == "no GPUs"
    assert err.jupyterhub_html_message == "<b>no GPUs</b>"
    assert err.log_message == "carol: no GPUs"
    assert not hasattr(hubcompat._SpawnException("x", reason="r"), "jupyterhub_html_message")
