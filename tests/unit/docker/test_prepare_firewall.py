"""When a spawn may skip listing every lockstep bridge (``prepare._firewall_covers``): only
while rules this process wrote recently guard its bridge and admit exactly its ports and
destinations. Pure logic over the process's record of its last write."""

from __future__ import annotations

import time

import pytest

from spawner.docker import prepare


@pytest.fixture
def written(monkeypatch):
    record = {
        "rules": "r",
        "at": time.monotonic(),
        "gateways": frozenset({"10.1.0.1"}),
        "admits": repr(([8081], ())),
    }
    monkeypatch.setattr(prepare, "_FIREWALL_WRITTEN", record)
    return record


def test_a_bridge_the_last_write_guarded_needs_no_listing(written):
    assert prepare._firewall_covers("10.1.0.1", [8081], ())


def test_a_new_bridge_other_ports_or_destinations_need_the_full_path(written):
    assert not prepare._firewall_covers("10.2.0.1", [8081], ())  # not in the written rules
    assert not prepare._firewall_covers("", [8081], ())  # no gateway known
    assert not prepare._firewall_covers("10.1.0.1", [8081, 9000], ())  # another port
    assert not prepare._firewall_covers("10.1.0.1", [8081], ("1.2.3.4",))  # other egress


def test_rules_older_than_the_resync_are_rewritten(written):
    written["at"] = time.monotonic() - prepare.FIREWALL_RESYNC - 1
    assert not prepare._firewall_covers("10.1.0.1", [8081], ())


def test_nothing_written_yet_covers_nothing(monkeypatch):
    monkeypatch.setattr(
        prepare,
        "_FIREWALL_WRITTEN",
        {"rules": "", "at": 0.0, "gateways": frozenset(), "admits": ""},
    )
    assert not prepare._firewall_covers("10.1.0.1", [], ())
