"""``lockstep inspect`` over real conda-lock files from public repositories (data-driven).

The corpus lives outside the repository (``../shared/real-world-locks``, see its
SOURCES.md; several files carry no license, so they are read in place, never copied into
the repo). Every lock there is a case: it must be read without a traceback, its package
counts must match SOURCES.md, and the currency verdict must be conda-lock's own (checked
by running conda-lock's ``make_lock_files`` -- what ``conda-lock lock --check-input-hash``
runs -- on temporary copies; tests/unit/test_lock_cli.py runs the CLI binary itself).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from spawner.lock import condalock
from spawner.lock.freshness import find_sources
from spawner.lock.report import build_report, report_json, report_text

REPO = Path(__file__).resolve().parents[3]
CORPUS = Path(
    os.environ.get("LOCKSTEP_REAL_WORLD_LOCKS", REPO.parent / "shared" / "real-world-locks")
)
ABSENT = f"real-world lock corpus not found at {CORPUS} (set LOCKSTEP_REAL_WORLD_LOCKS)"

# (conda, pip) entries per platform, as SOURCES.md counts them; the status is what
# `conda-lock lock --check-input-hash` says (test_verdict_agrees_with_conda_lock).
EXPECTED = {
    "01-ai__Yi": ({"linux-64": (187, 8)}, "stale"),
    "AMIGA-IAA__hcg_global_hi_analysis": ({"linux-64": (197, 6)}, "stale"),
    "Anaconda-Sandbox__authenticated-docker-examples/examples/conda-lock": (
        {"linux-64": (46, 0), "linux-aarch64": (46, 0), "osx-arm64": (31, 0)},
        "current",
    ),
    "Cecca__repro-course-ci": (
        {"linux-64": (42, 1), "osx-arm64": (32, 1), "osx-64": (32, 1), "win-64": (36, 1)},
        "current",
    ),
    "Dpbm__fake_backends_list": (
        {"linux-64": (24, 31), "osx-arm64": (15, 31), "osx-64": (15, 31), "win-64": (17, 32)},
        "current",
    ),
    "EU-ASR__K2-Docker": ({"linux-64": (55, 0)}, "stale"),
    "Huberylsh__dsci522-dockerfile-practice": ({"linux-64": (45, 0)}, "current"),
    "NASA-Openscapes__corn": ({"linux-64": (400, 0)}, "stale"),
}


def _cases() -> list:
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT), id="corpus-absent")]
    locks = sorted(CORPUS.glob("**/conda-lock.yml"))
    return [pytest.param(p, id=p.parent.relative_to(CORPUS).as_posix()) for p in locks]


def _key(lock: Path) -> str:
    return lock.parent.relative_to(CORPUS).as_posix()


@pytest.mark.parametrize("lock", _cases())
def test_every_real_lock_is_reported(lock):
    report = build_report(lock)
    data = report_json(report)
    assert json.loads(json.dumps(data)) == data
    text = report_text(report)
    for platform in report.platforms:
        assert f"\n{platform}: " in text
    counts, status = EXPECTED.get(_key(lock), (None, None))
    if counts is not None:
        assert {p: (c["conda"], c["pip"]) for p, c in data["counts"].items()} == counts
        assert data["status"] == status, data["reasons"]
    assert data["source"] and Path(data["source"].split(", ")[0]).parent == lock.parent
    for lines in report.packages.values():
        for line in lines:
            assert line.name and line.version and line.url
            if line.manager == "conda":
                assert line.build and line.sha256 and line.channel.startswith("http")


@pytest.mark.parametrize("lock", _cases())
def test_reader_equals_conda_locks_parser(lock):
    from conda_lock.lockfile import parse_conda_lock_file

    assert condalock.read_lockfile(lock) == parse_conda_lock_file(lock)


def test_stale_pair_is_reported_out_of_date_for_the_documented_reasons():
    lock = CORPUS / "NASA-Openscapes__corn" / "conda-lock.yml"
    if not lock.is_file():
        pytest.skip(ABSENT)
    report = build_report(lock)
    assert report.freshness.current is False
    assert report.freshness.reasons == (
        "linux-64: the spec changed since the lock was written (content hash differs)",
        "the spec declares platform(s) osx-64, win-64 the lock lacks",
    )
    assert "status:    stale" in report_text(report)


def test_foreign_absolute_sources_fall_back_beside_the_lock():
    amiga = CORPUS / "AMIGA-IAA__hcg_global_hi_analysis" / "conda-lock.yml"
    eu = CORPUS / "EU-ASR__K2-Docker" / "conda-lock.yml"
    if not (amiga.is_file() and eu.is_file()):
        pytest.skip(ABSENT)
    assert build_report(amiga).sources[0].startswith("/home/sebastian/")
    assert build_report(amiga).freshness.source == str(amiga.parent / "hcg_hi_analysis.yml")
    assert build_report(eu).freshness.source == str(eu.parent / "environment.yml")
    pip = [p for p in build_report(amiga).packages["linux-64"] if p.manager == "pip"]
    assert len(pip) == 6 and all(p.channel == "pypi" for p in pip)


def conda_lock_says_current(lock: Path, source: Path, platforms, mapping: Path, capsys) -> bool:
    """conda-lock's own decision, through the function its CLI calls (``make_lock_files``).

    Run as ``conda-lock lock --check-input-hash -f SOURCE -p ... --lockfile LOCK`` would
    (``update=()`` as click passes it); the solver is ``/bin/true``, so a platform it
    decides to re-solve fails after it says "Locking dependencies".
    """
    from conda_lock.conda_lock import make_lock_files

    capsys.readouterr()
    try:
        make_lock_files(
            conda="/bin/true",
            src_files=[source],
            kinds=["lock"],
            lockfile_path=lock,
            platform_overrides=list(platforms),
            check_input_hash=True,
            update=(),
            mapping_url=str(mapping),
        )
    except Exception:  # noqa: BLE001 - a re-solve with /bin/true fails, as intended
        pass
    err = capsys.readouterr().err
    return "Skipping solve" in err and "Locking dependencies" not in err


@pytest.mark.parametrize("lock", _cases())
def test_verdict_agrees_with_conda_lock(lock, tmp_path, capsys):
    """conda-lock itself, on a copy of the pair, must say what inspect says."""
    mapping = tmp_path / "empty-pypi-mapping.json"
    mapping.write_text("{}")  # offline: the same identity mapping inspect uses
    copy = tmp_path / "copy"
    shutil.copytree(lock.parent, copy)
    model = condalock.read_lockfile(lock)
    source = find_sources(copy / "conda-lock.yml", model.metadata.sources)[0]
    theirs = conda_lock_says_current(
        copy / "conda-lock.yml", source, model.metadata.platforms, mapping, capsys
    )
    ours = build_report(lock).freshness
    # inspect also reports platforms the spec declares but the lock lacks (conda-lock
    # re-solves those when run without -p); with -p it judges the lock's own platforms.
    assert theirs == (not [r for r in ours.reasons if "content hash" in r]), ours.reasons
    assert (copy / "conda-lock.yml").read_bytes() == lock.read_bytes()


def test_find_sources(tmp_path):
    lock = tmp_path / "conda-lock.yml"
    assert find_sources(lock, ["environment.yml"]) == []
    (tmp_path / "env.yaml").write_text("x")
    assert find_sources(lock, ["missing.yml"]) == [tmp_path / "env.yaml"]
    (tmp_path / "spec.yml").write_text("x")
    assert find_sources(lock, ["/home/someone/project/spec.yml"]) == [tmp_path / "spec.yml"]
    assert find_sources(lock, ["C:\\Users\\someone\\spec.yml"]) == [tmp_path / "spec.yml"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spec.yml").write_text("x")
    assert find_sources(lock, ["sub/spec.yml"]) == [tmp_path / "sub" / "spec.yml"]
