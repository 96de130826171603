"""The verify memo: its key, its entries, and how it treats what it cannot trust."""

import json

import pytest
from traitlets.config import Config

from spawner.promote.gates import earlier_note
from spawner.settings import Lockstep
from spawner.verify.diff import Difference
from spawner.verify.memo import (
    VERIFIER_FORMAT,
    Remembered,
    entry_path,
    from_entry,
    memo_key,
    pinned_digest,
    recall,
    remember,
    to_entry,
)

DIGEST = "sha256:" + "a" * 64
LOCK = b"version: 1\npackage:\n- name: numpy\n  version: '1.26.4'\n"
BASE = dict(digest=DIGEST, lock_bytes=LOCK, platform="linux-64", files=True)
FOUND = Remembered(
    packages=3,
    installed=3,
    differences=(Difference("beta", "file", "share/beta/VERSION has sha256 ab.. not cd.."),),
    label="sha256:" + "b" * 64,
    lock_hashes=("sha256:" + "b" * 64,),
    checked_at="2026-12-06T12:00:00Z",
)


@pytest.fixture
def settings(tmp_path):
    config = Config()
    config.Lockstep.cache_dir = str(tmp_path / "cache")
    return Lockstep(config=config)


def test_the_key_is_stable_for_the_same_inputs():
    assert memo_key(**BASE) == memo_key(**dict(BASE))
    assert len(memo_key(**BASE)) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"digest": "sha256:" + "c" * 64},
        {"lock_bytes": LOCK + b"\n"},  # one byte more
        {"lock_bytes": LOCK.replace(b"1.26.4", b"1.26.5")},  # one byte other
        {"lock_bytes": b""},
        {"platform": "linux-aarch64"},
        {"files": False},
        {"version": VERIFIER_FORMAT + "-next"},
    ],
)
def test_any_input_that_decides_a_check_changes_the_key(change):
    assert memo_key(**{**BASE, **change}) != memo_key(**BASE)


@pytest.mark.parametrize(
    ("reference", "digest"),
    [
        (f"127.0.0.1:5000/lockstep/forecast@{DIGEST}", DIGEST),
        (f"127.0.0.1:5000/lockstep/forecast:qa@{DIGEST}", DIGEST),
        ("127.0.0.1:5000/lockstep/forecast:qa", None),  # a tag: always checked afresh
        ("127.0.0.1:5000/lockstep/forecast", None),
        ("forecast@sha256:short", None),  # not a reference: the real check says why
    ],
)
def test_only_a_reference_pinned_by_digest_has_a_digest(reference, digest):
    assert pinned_digest(reference) == digest


def test_an_entry_round_trips(settings):
    key = memo_key(**BASE)
    assert recall(settings, key) is None
    remember(settings, key, FOUND)
    assert recall(settings, key) == FOUND
    assert entry_path(settings, key) == settings.cache_path("verified", f"{key}.json")
    assert [p.name for p in entry_path(settings, key).parent.iterdir()] == [f"{key}.json"]


def test_remember_stamps_when_the_check_ran(settings):
    key = memo_key(**BASE)
    remember(settings, key, Remembered(1, 1, (), "", ()))
    stamped = recall(settings, key).checked_at
    assert stamped.endswith("Z") and stamped.startswith("20")


def _corrupt_entries(key: str) -> list:
    good = to_entry(key, FOUND)
    return [
        b"",
        b"{",
        b"\xff\xfe not json",
        b"[]",
        b"null",
        json.dumps({**good, "key": "0" * 64}).encode(),  # another key's entry
        json.dumps({**good, "format": "lockstep-verify/0"}).encode(),  # an older verifier
        json.dumps({k: v for k, v in good.items() if k != "differences"}).encode(),
        json.dumps({**good, "packages": "3"}).encode(),
        json.dumps({**good, "installed": True}).encode(),
        json.dumps({**good, "lock_hashes": "sha256:x"}).encode(),
        json.dumps({**good, "lock_hashes": [3]}).encode(),
        json.dumps(
            {**good, "differences": [{"package": "a", "kind": "odd", "detail": ""}]}
        ).encode(),
        json.dumps({**good, "differences": [{"package": "a", "kind": "file"}]}).encode(),
        json.dumps({**good, "differences": ["missing a"]}).encode(),
        json.dumps({**good, "differences": {"a": 1}}).encode(),
    ]


@pytest.mark.parametrize("index", range(len(_corrupt_entries("k"))))
def test_a_corrupt_or_foreign_entry_is_a_miss_never_an_error(settings, index):
    key = memo_key(**BASE)
    path = entry_path(settings, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(_corrupt_entries(key)[index])
    assert recall(settings, key) is None


def test_an_unreadable_entry_is_a_miss(settings):
    key = memo_key(**BASE)
    entry_path(settings, key).mkdir(parents=True)  # a folder where the file should be
    assert recall(settings, key) is None


def test_an_unwritable_cache_is_no_error_and_leaves_nothing(settings, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder should be\n")
    key = memo_key(**BASE)
    remember(settings, key, FOUND)
    assert recall(settings, key) is None
    assert (tmp_path / "cache").read_text().startswith("a file")


def test_a_failed_replace_leaves_no_temporary_file(settings):
    key = memo_key(**BASE)
    entry_path(settings, key).mkdir(parents=True)  # os.replace onto a folder fails
    remember(settings, key, FOUND)
    assert [p.name for p in entry_path(settings, key).parent.iterdir()] == [f"{key}.json"]


def test_from_entry_is_pure_and_checks_the_key():
    key = memo_key(**BASE)
    assert from_entry(key, to_entry(key, FOUND)) == FOUND
    assert from_entry(memo_key(**{**BASE, "files": False}), to_entry(key, FOUND)) is None


def test_the_gate_says_when_a_result_is_an_earlier_checks():
    assert earlier_note("") == ""
    assert earlier_note("2026-12-06T12:00:00Z") == (
        " (same digest and lock as an earlier check, 2026-12-06T12:00:00Z)"
    )
