"""Every configurable trait of KubeSpawner and Spawner is honoured, refused by name at hub
start, or listed as not applicable with its reason (``spawner.kube.parentaudit``).

A KubeSpawner or JupyterHub release that adds a trait fails
``test_every_parent_trait_is_audited`` with the trait's name until the audit says what
lockstep does with it. The spawner-level checks (a spawner is not made, a profile cannot
switch a refused trait on) are in ``tests/k8s/test_kube_traits.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.spawner import Spawner
from kubespawner import KubeSpawner
from traitlets.config import Config

from spawner.kube.hardening import HardeningRefused
from spawner.kube.parentaudit import AUDIT, REFUSABLE
from spawner.kube.spawner import check_config
from spawner.traitaudit import NOT_APPLICABLE, VERDICTS, SettingRefused, markdown
from tests.support.auditcheck import docs_match, refused_hub_start
from tests.support.hubrun import ROOT

DOCS = ROOT / "docs" / "parent-traits.md"
# trait -> (a value lockstep refuses, a value it accepts)
REFUSED_VALUES = {
    "enable_user_namespaces": (True, False),
    "profile_form_template": ("<select name='profile'>{{ profile_list }}</select>", ""),
    "additional_profile_form_template_paths": (["/etc/jupyterhub/templates"], []),
}


def parent_traits() -> set[str]:
    return set(KubeSpawner.class_own_traits(config=True)) | set(
        Spawner.class_own_traits(config=True)
    )


def test_every_parent_trait_is_audited():
    missing = sorted(parent_traits() - set(AUDIT))
    assert missing == [], (
        f"KubeSpawner/Spawner traits in none of honoured, refused, not "
        f"applicable: {missing}; add each to spawner.kube.parentaudit"
    )
    for name, entry in AUDIT.items():
        assert entry.verdict in VERDICTS and entry.what.strip(), name
        assert entry.parent in ("KubeSpawner", "Spawner"), name
    own = parent_traits()
    # names a newer KubeSpawner has (7.1's slow_spawn_message*) may be missing from older ones
    assert {n for n in AUDIT if n not in own} <= {
        "slow_spawn_message",
        "slow_spawn_message_frequency",
        "slow_spawn_message_threshold",
    }


def test_every_refused_trait_is_tested_and_na_has_a_reason():
    assert set(REFUSABLE) == set(REFUSED_VALUES)
    assert all(len(e.what) > 20 for e in AUDIT.values() if e.verdict == NOT_APPLICABLE)
    for name, (_, fine) in REFUSED_VALUES.items():  # KubeSpawner's default is accepted
        assert AUDIT[name].allowed(fine), name
        assert AUDIT[name].allowed(KubeSpawner.class_traits()[name].default()), name


def test_a_z2jh_site_is_not_refused():
    """What Zero to JupyterHub's own config sets: its image, a 1G memory guarantee, cmd."""
    c = Config()
    c.KubeSpawner.image = "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0"
    c.KubeSpawner.mem_guarantee = "1G"
    c.KubeSpawner.cpu_limit, c.KubeSpawner.mem_limit = 2.0, "4G"
    c.Spawner.cmd = "jupyterhub-singleuser"
    c.KubeSpawner.enable_user_namespaces = False
    check_config(c)


@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_each_refused_trait_stops_startup_with_its_name(name):
    bad, fine = REFUSED_VALUES[name]
    for section in ("KubeSpawner", "Spawner", "LockstepKubeSpawner"):
        c = Config()
        setattr(c[section], name, bad)
        with pytest.raises(SettingRefused) as err:
            check_config(c)
        assert f"c.KubeSpawner.{name} = " in str(err.value), section
    c = Config()
    setattr(c.KubeSpawner, name, fine)
    check_config(c)


def test_both_kinds_are_reported_at_once():
    c = Config()
    c.KubeSpawner.enable_user_namespaces = True
    c.KubeSpawner.privileged = True
    with pytest.raises(SettingRefused) as err:
        check_config(c)
    assert "enable_user_namespaces" in str(err.value)
    assert "hardening_exceptions = ['privileged']" in str(err.value)
    c.KubeSpawner.enable_user_namespaces = False
    with pytest.raises(HardeningRefused) as err:  # a weakening alone keeps its own error
        check_config(c)
    assert not isinstance(err.value, SettingRefused)


def test_a_real_jupyterhub_stops_at_start_naming_each_refused_trait(tmp_path: Path):
    refused_hub_start(tmp_path, parent="KubeSpawner", spawner_class="lockstep-kube",
                      module="spawner.kube.spawner", refused_values=REFUSED_VALUES)


def test_the_docs_table_is_the_audit():
    docs_match(DOCS, "## Kubernetes: `LockstepKubeSpawner`\n", markdown(AUDIT))
