"""Every configurable trait of DockerSpawner and Spawner is honoured, refused by name at hub
start, or listed as not applicable with its reason (``spawner.docker.parentaudit``).

A DockerSpawner or JupyterHub release that adds a trait fails
``test_every_parent_trait_is_audited`` with the trait's name until the audit says what
lockstep does with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dockerspawner import DockerSpawner
from jupyterhub.spawner import Spawner
from traitlets.config import Config

from spawner.docker.inherited import WeakeningRefused
from spawner.docker.parentaudit import AUDIT
from spawner.docker.spawner import LockstepDockerSpawner, check_config
from spawner.traitaudit import NOT_APPLICABLE, REFUSED, VERDICTS, SettingRefused, markdown
from tests.support.auditcheck import docs_match, refused_hub_start
from tests.support.hubrun import ROOT
from tests.unit.hubfakes import User

DOCS = ROOT / "docs" / "parent-traits.md"
# trait -> (a value lockstep refuses, a value it accepts or None when every value is refused)
REFUSED_VALUES = {
    "allowed_images": (["quay.io/jupyter/scipy-notebook"], {}),
    "image_whitelist": ({"scipy": "quay.io/jupyter/scipy-notebook"}, []),
    "image": ("quay.io/jupyter/scipy-notebook:latest", None),
    "container_image": ("quay.io/jupyter/scipy-notebook:latest", None),
    "name_template": ("jupyter-{username}", ""),
    "container_name_template": ("jupyter-{username}", ""),
    "remove": (False, True),
    "remove_containers": (False, True),
    "host_ip": ("0.0.0.0", None),
    "container_ip": ("0.0.0.0", None),
    "use_internal_ip": (False, True),
    "use_internal_hostname": (True, False),
}


def parent_traits() -> set[str]:
    return set(DockerSpawner.class_own_traits(config=True)) | set(
        Spawner.class_own_traits(config=True)
    )


def test_every_parent_trait_is_audited():
    missing = sorted(parent_traits() - set(AUDIT))
    assert missing == [], (
        f"DockerSpawner/Spawner traits in none of honoured, refused, not "
        f"applicable: {missing}; add each to spawner.docker.parentaudit"
    )
    for name, entry in AUDIT.items():
        assert entry.verdict in VERDICTS and entry.what.strip(), name
        assert entry.parent in ("DockerSpawner", "Spawner"), name
        owner = DockerSpawner if entry.parent == "DockerSpawner" else Spawner
        assert name in owner.class_own_traits(config=True), f"{name} is not {entry.parent}'s"


def test_every_refused_trait_is_tested_and_na_has_a_reason():
    assert {n for n, e in AUDIT.items() if e.verdict == REFUSED} == set(REFUSED_VALUES)
    assert all(len(e.what) > 20 for e in AUDIT.values() if e.verdict == NOT_APPLICABLE)


def test_what_the_site_did_not_set_is_never_refused():
    check_config(Config())
    spawner = LockstepDockerSpawner(user=User("alice"), config=Config())
    for name in (
        "allowed_images",
        "name_template",
        "remove",
        "use_internal_ip",
        "use_internal_hostname",
    ):  # lockstep's own defaults are accepted
        assert AUDIT[name].allowed(getattr(spawner, name)), name


@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_each_refused_trait_stops_startup_with_its_name(name):
    bad, fine = REFUSED_VALUES[name]
    for section in ("DockerSpawner", "Spawner", "LockstepDockerSpawner"):
        c = Config()
        setattr(c[section], name, bad)
        with pytest.raises(SettingRefused) as err:
            check_config(c)
        assert f"c.DockerSpawner.{name} = {bad!r}" in str(err.value), section
        with pytest.raises(SettingRefused):  # and no spawner of this hub can be made
            LockstepDockerSpawner(user=User("alice"), config=c)
    if fine is not None:
        c = Config()
        setattr(c.DockerSpawner, name, fine)
        check_config(c)


def test_a_lazy_value_and_a_callable_are_refused_too():
    c = Config()
    c.DockerSpawner.allowed_images.update({"scipy": "quay.io/jupyter/scipy-notebook"})
    with pytest.raises(SettingRefused, match=r"c\.DockerSpawner\.allowed_images = \{'scipy'"):
        check_config(c)
    c = Config()
    c.DockerSpawner.allowed_images = lambda spawner: ["x"]
    with pytest.raises(SettingRefused, match=r"allowed_images = <callable <lambda>>"):
        check_config(c)


def test_internal_ssl_is_refused_and_both_kinds_are_reported_at_once():
    c = Config()
    c.JupyterHub.internal_ssl = True
    c.DockerSpawner.extra_host_config = {"privileged": True}
    c.DockerSpawner.image = "x"
    with pytest.raises(SettingRefused) as err:
        check_config(c)
    text = str(err.value)
    assert "c.JupyterHub.internal_ssl = True" in text and "c.DockerSpawner.image = 'x'" in text
    assert "allow_weakening = ['privileged']" in text  # the weakening, in the same message
    c = Config()
    c.DockerSpawner.extra_host_config = {"privileged": True}
    with pytest.raises(WeakeningRefused):  # a weakening alone keeps its own error
        check_config(c)


def test_a_real_jupyterhub_stops_at_start_naming_each_refused_trait(tmp_path: Path):
    refused_hub_start(tmp_path, parent="DockerSpawner", spawner_class="lockstep-docker",
                      module="spawner.docker.spawner", refused_values=REFUSED_VALUES)


def test_the_docs_table_is_the_audit():
    docs_match(DOCS, "## Docker: `LockstepDockerSpawner`\n", markdown(AUDIT))
