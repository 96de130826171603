"""The cold-build speed-ups keep their guarantees: bytecode scheduling and test suites,
the .pyc cache (bytes in, the same bytes out, never a file in staging), layers compressed
once, and blobs uploaded while the others are still written (against the real local
registry)."""

from __future__ import annotations

import os
import time

import pytest

from spawner.errors import LockstepError
from spawner.image import oci, push, pyccache
from spawner.image.pycompile import largest_first
from spawner.image.registry import RegistryClient
from spawner.image.staging import REMOVING, new_staging_dir, remove_later
from spawner.image.tarlayer import BlobCache, Entry, diff_id, shape, with_parents


def test_sources_go_biggest_first(tmp_path):
    for name, size in (("a.py", 10), ("b.py", 300), ("c.py", 20), ("d.py", 300)):
        (tmp_path / name).write_text("x" * size)
    assert largest_first(["a.py", "b.py", "c.py", "d.py", "gone.py"], str(tmp_path)) == [
        "b.py",
        "d.py",
        "c.py",
        "a.py",
        "gone.py",
    ]


def test_test_suites_are_site_packages_tests_folders_only():
    site = "lib/python3.11/site-packages/"
    assert pyccache.is_test_source(f"{site}numpy/_core/tests/test_a.py", "3.11")
    assert pyccache.is_test_source(f"{site}tornado/test/web_test.py", "3.11")
    assert pyccache.is_test_source(f"{site}tests/__init__.py", "3.11")
    assert not pyccache.is_test_source(f"{site}numpy/testing/__init__.py", "3.11")
    assert not pyccache.is_test_source(f"{site}pkg/tests.py", "3.11")
    assert not pyccache.is_test_source("lib/python3.11/test/test_os.py", "3.11")


def _staging(tmp_path):
    staging = tmp_path / "staging"
    site = staging / "lib/python3.11/site-packages/pkg"
    (site / "tests").mkdir(parents=True)
    (site / "__init__.py").write_text("A = 1\n")
    (site / "tests" / "test_pkg.py").write_text("def test(): pass\n")
    return staging


def _store(tmp_path):
    return pyccache.store_for(tmp_path / "cache", "0" * 32)


def test_serve_hits_leaves_test_suites_out_when_asked(tmp_path):
    staging, store = _staging(tmp_path), _store(tmp_path)
    total, hits, missing = pyccache.serve_hits(staging, "3.11", store=store, prefix="/opt/env")
    assert (total, hits, len(missing)) == (2, {}, 2)
    total, hits, missing = pyccache.serve_hits(
        staging, "3.11", store=store, prefix="/opt/env", tests=False
    )
    assert total == 1
    assert [m.relative for m in missing] == ["lib/python3.11/site-packages/pkg/__init__.py"]


def test_a_filed_pyc_is_served_back_as_bytes_and_nothing_is_written_to_staging(tmp_path):
    staging, store = _staging(tmp_path), _store(tmp_path)
    _, _, missing = pyccache.serve_hits(
        staging, "3.11", store=store, prefix="/opt/env", tests=False
    )
    store.put([(missing[0].key, b"compiled"), ("", b"never filed")])
    store.put([(missing[0].key, b"other bytes")])  # a key already there keeps its bytes
    before = sorted(p for p in staging.rglob("*"))
    total, hits, again = pyccache.serve_hits(
        staging, "3.11", store=store, prefix="/opt/env", tests=False
    )
    assert (total, again) == (1, [])
    assert hits == {missing[0].relative: b"compiled"}
    assert sorted(p for p in staging.rglob("*")) == before  # no .pyc file appears
    # a changed source is another key: a miss
    (staging / missing[0].relative).write_text("A = 2\n")
    _, hits, again = pyccache.serve_hits(
        staging, "3.11", store=store, prefix="/opt/env", tests=False
    )
    assert hits == {} and [m.relative for m in again] == [missing[0].relative]


def test_a_cache_file_that_is_not_a_database_is_named_with_the_fix(tmp_path):
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LockstepError) as err:
        store.get(["ab" * 32])
    assert str(store.path) in str(err.value) and f"rm {store.path}" in str(err.value)


def test_a_linked_lib_folder_is_checked_file_by_file(tmp_path):
    """lib/python3.11 reached through a link out of the env: nothing is cached."""
    outside = tmp_path / "outside"
    (outside / "site-packages").mkdir(parents=True)
    (outside / "site-packages" / "m.py").write_text("M = 1\n")
    staging = tmp_path / "staging"
    (staging / "lib").mkdir(parents=True)
    os.symlink(outside, staging / "lib" / "python3.11")
    _, _, missing = pyccache.serve_hits(staging, "3.11", store=_store(tmp_path), prefix="/opt/env")
    assert missing == [pyccache.Source("lib/python3.11/site-packages/m.py", "")]


def _entries(tmp_path, text="hello\n"):
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "f").write_text(text)
    return with_parents(
        [
            Entry("opt/env/f", "file", 0o644, source=str(tmp_path / "src" / "f"), size=len(text)),
            Entry("opt/env/d", "file", data=b"inline"),
        ]
    )


def test_a_new_layer_is_read_once_and_a_known_one_is_reused(tmp_path, monkeypatch):
    cache = BlobCache(tmp_path / "layers")
    entries = _entries(tmp_path)
    passes = []
    import spawner.image.tarlayer as tarlayer

    real = tarlayer._write_tar
    monkeypatch.setattr(tarlayer, "_write_tar", lambda *a: passes.append(1) or real(*a))
    first = cache.layer(entries)
    assert len(passes) == 1  # compressed straight away, hashed as it went
    assert first.diff_id == diff_id(entries)[0] and len(passes) == 2
    passes.clear()
    again = cache.layer(entries)
    assert again == first and len(passes) == 1  # hashed, then reused: not compressed
    assert (cache.root / "hints" / shape(entries)).read_text() == first.diff_id


def test_same_size_other_content_is_a_new_layer(tmp_path):
    cache = BlobCache(tmp_path / "layers")
    a = cache.layer(_entries(tmp_path, "hello\n"))
    b = cache.layer(_entries(tmp_path, "HELLO\n"))  # same shape, other bytes
    assert a.diff_id != b.diff_id and a.digest != b.digest


def test_cached_bytes_win_over_a_recompression(tmp_path):
    cache = BlobCache(tmp_path / "layers")
    entries = _entries(tmp_path)
    first = cache.layer(entries)
    for hint in (cache.root / "hints").iterdir():
        hint.unlink()  # e.g. a cache from before hints: compressed again, the old blob kept
    stamp = os.stat(first.path).st_mtime_ns
    assert cache.layer(entries) == first and os.stat(first.path).st_mtime_ns == stamp
    assert sorted(p.name for p in (cache.root).glob("*.tar.gz")) == [
        os.path.basename(first.path)
    ]


def test_layers_keep_their_order_and_report_each(tmp_path):
    cache = BlobCache(tmp_path / "layers")
    lists = [with_parents([Entry(f"l{i}/f", "file", data=b"x" * (i * 1000))]) for i in range(5)]
    seen = []
    blobs = cache.layers(lists, workers=2, done=seen.append)
    assert [b.diff_id for b in blobs] == [diff_id(e)[0] for e in lists]
    assert sorted(b.digest for b in seen) == sorted(b.digest for b in blobs)


@pytest.fixture
def client(registry):
    with RegistryClient.for_host(registry, insecure_registries=["127.0.0.1"]) as c:
        yield c


def test_early_uploads_are_waited_for_not_repeated(tmp_path, registry, client):
    cache = BlobCache(tmp_path / "layers")
    repo = oci.parse_reference(f"{registry}/fastbuild/early-{os.getpid()}")
    early = push.EarlyPush(client, repo, {})
    blob = cache.layer(_entries(tmp_path, f"early {tmp_path}\n"))
    early.add(blob)
    early.add(blob)  # once only
    assert early.sent(blob.digest) == blob.size
    assert client.blob_exists(repo.repository, blob.digest)
    assert early.sent("sha256:" + "0" * 64) is None
    early.close()


def _gone(path, seconds=10.0):
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def test_a_staging_folder_is_set_aside_at_once_and_removed_without_waiting(tmp_path):
    staging = new_staging_dir(tmp_path)
    (staging / "lib").mkdir()
    (staging / "lib" / "f").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    (staging / "link").symlink_to(outside)  # removed, never followed
    remove_later(staging)
    assert not staging.exists()  # renamed aside before remove_later returned
    assert _gone(staging.with_name(REMOVING + staging.name))
    assert (outside / "keep").read_text() == "kept"


def test_an_interrupted_removal_is_finished_by_the_next_build(tmp_path):
    left = tmp_path / "staging" / f"{REMOVING}env-old"
    (left / "lib").mkdir(parents=True)
    recent = tmp_path / "staging" / f"{REMOVING}env-recent"  # its rm may still be running
    recent.mkdir()
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    fresh = new_staging_dir(tmp_path)
    assert fresh.is_dir() and _gone(left) and recent.exists()
