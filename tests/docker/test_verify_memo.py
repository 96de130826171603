"""The verify gate reads an image once per (digest, lock): a built forecast image promoted
dev -> qa -> prod on the real registry is read at qa and remembered at prod; a changed lock,
a tag reference and ``lockstep verify`` are checked afresh.

Reads are counted by wrapping the real ``read_image`` (it still reads the registry);
each test has its own cache folder, so the memo starts empty.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spawner.promote import promote
from spawner.verify import check
from spawner.verify.check import check_image
from tests.docker.lockstep_site import ForecastSite

pytestmark = pytest.mark.registry
EARLIER = "(same digest and lock as an earlier check, "


@pytest.fixture(scope="module")
def built(locked_project, built_image, tmp_path_factory):
    lock = locked_project(
        "forecast", ["python=3.11", "numpy"], root=tmp_path_factory.mktemp("memo-lock")
    )
    return lock / "conda-lock.yml", built_image(lock)


@pytest.fixture
def site(built, registry, tmp_path):
    """A fresh project (own namespace) holding the built image at dev, with its own cache."""
    lock, build = built
    site = ForecastSite(
        root=tmp_path / "envs", lock=lock, build=build, registry=registry, tmp=tmp_path
    )
    site.config.Lockstep.cache_dir = str(tmp_path / "cache")
    site.push_build()
    return site


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The references ``check_image`` read from the registry, in order."""
    seen: list[str] = []
    real = check.read_image

    def counted(settings, reference, **kwargs):
        seen.append(reference)
        return real(settings, reference, **kwargs)

    monkeypatch.setattr(check, "read_image", counted)
    return seen


def verify_result(record):
    return next(g for g in record.gates if g.name == "verify")


def test_prod_promotion_reuses_the_qa_check_of_the_same_digest(site, reads):
    qa = promote(site.settings, site.name, "qa", user="alice")
    assert qa.outcome == "promoted", qa.message
    assert len(reads) == 1 and reads[0].endswith(f"@{site.build.digest}")
    first = verify_result(qa)
    assert first.status == "passed" and EARLIER not in first.message

    started = time.monotonic()
    prod = promote(site.settings, site.name, "prod", user="alice", approved_by="bob")
    seconds = time.monotonic() - started
    assert prod.outcome == "promoted", prod.message
    assert len(reads) == 1  # not read again
    again = verify_result(prod)
    assert again.status == "passed"
    assert again.message.startswith(first.message + f" {EARLIER}20"), again.message
    assert again.seconds < first.seconds
    print(f"verify at qa {first.seconds}s, at prod {again.seconds}s; prod promotion {seconds:.2f}s")
    assert site.digest("prod") == site.build.digest


def test_a_changed_lock_is_checked_afresh(site, reads):
    assert promote(site.settings, site.name, "qa", user="alice").outcome == "promoted"
    lock = Path(site.settings.environments_dir) / site.name / "conda-lock.yml"
    lock.write_bytes(lock.read_bytes() + b"# touched\n")
    prod = promote(site.settings, site.name, "prod", user="alice", approved_by="bob")
    assert len(reads) == 2  # the image was read again for the new lock bytes
    result = verify_result(prod)
    assert result.status == "failed" and EARLIER not in result.message
    assert result.message.startswith("image was built from another lock"), result.message
    assert prod.outcome == "refused" and site.digest("prod") is None


def test_a_tag_reference_and_lockstep_verify_read_the_image_every_time(site, reads, capsys):
    lock = Path(site.settings.environments_dir) / site.name / "conda-lock.yml"
    pinned = f"{site.settings.registry}/{site.name}@{site.build.digest}"
    tagged = f"{site.settings.registry}/{site.name}:dev"
    assert check_image(site.settings, tagged, lock).earlier == ""
    assert check_image(site.settings, tagged, lock).earlier == ""
    assert len(reads) == 2
    assert site.lockstep("verify", pinned, "--lock", str(lock)) == 0
    assert len(reads) == 3
    assert capsys.readouterr().out.startswith(f"ok: {pinned} holds exactly the")
    remembered = check_image(site.settings, pinned, lock)  # what those checks left behind
    assert len(reads) == 3 and remembered.earlier and not remembered.differences
    assert remembered.reference == pinned and remembered.same_lock
