"""The sandboxed compiler streams .pyc bytes back; the host checks every frame, places the
bytes itself and files them in the cache only after a clean exit (real bubblewrap).

An "interpreter" here is the staged env's ``bin/python3.11``: a script that runs the
system's python 3 (the sandbox binds /usr) for the real runs, a shell script for a broken
or hostile one (it runs in the sandbox as the real one would)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from spawner.errors import LockstepError
from spawner.image import bytecode, pyccache

BWRAP = shutil.which("bwrap")
pytestmark = pytest.mark.skipif(
    BWRAP is None, reason="bubblewrap is not installed (scripts/setup.sh installs it)"
)
SYSTEM_PYTHON = "/usr/bin/python3"
VERSION = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
LIB = f"lib/python{VERSION}"
SOURCES = {
    f"{LIB}/site-packages/pkg/__init__.py": "from .mod import VALUE\n",
    f"{LIB}/site-packages/pkg/mod.py": "VALUE = {'a', 'b'}\n\ndef f(x):\n    return x in VALUE\n",
    f"{LIB}/site-packages/pkg/py2.py": "print 'python 2'\n",  # does not compile: skipped
}


def staged(tmp_path: Path, python: str | None = None) -> Path:
    """A staged env whose interpreter is the host's python, or the script ``python``."""
    staging = tmp_path / "staging"
    for relative, text in SOURCES.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_text(text)
    (staging / "conda-meta").mkdir()
    (staging / "conda-meta" / f"python-{VERSION}.0-0.json").write_text(
        json.dumps({"name": "python", "version": f"{VERSION}.0", "build": "0", "files": []})
    )
    (staging / "bin").mkdir()
    interpreter = staging / "bin" / f"python{VERSION}"
    if python is None:
        interpreter.write_text(f'#!/bin/sh\nexec {SYSTEM_PYTHON} "$@"\n')
    else:
        interpreter.write_text("#!/bin/sh\n" + python)
    interpreter.chmod(0o755)
    return staging


def compiled_by_compileall(tmp_path: Path, relative: str) -> bytes:
    """What ``compileall -f --invalidation-mode unchecked-hash -p /opt/env`` writes, by
    the same interpreter, in a fresh process."""
    out = tmp_path / "reference.pyc"
    code = (
        "import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2], sys.argv[3], "
        "doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-c", code, str(tmp_path / "staging" / relative),
                    str(out), f"/opt/env/{relative}"], check=True)  # fmt: skip
    return out.read_bytes()


def run(job: bytecode.Bytecode, order: list[str] | None = None, **kw) -> tuple[list, dict]:
    """Compile ``order`` fed in two parts (the first one before the compiler starts)."""
    compiler = job.start(order[:1] if order else None, sandbox="bwrap", **kw)
    try:
        if order:
            compiler.add(order[1:])
        streamed = list(compiler)
        return streamed, compiler.finish()
    finally:
        compiler.close()


def test_sources_stream_back_as_compileall_writes_them_and_fill_the_cache(tmp_path):
    staging = staged(tmp_path)
    job = bytecode.prepare(staging, cache_dir=tmp_path / "pyc")
    order = sorted(SOURCES)
    streamed, compiled = run(job, order=order)
    assert sorted(relative for relative, _ in streamed) == order  # each once, as they finish
    good = [r for r in order if not r.endswith("py2.py")]
    assert dict(streamed)[f"{LIB}/site-packages/pkg/py2.py"] is None
    for relative in good:
        assert compiled[relative] == compiled_by_compileall(tmp_path, relative)
    assert not list(staging.rglob("*.pyc"))  # the build places bytes, never files, here
    again = bytecode.prepare(staging, cache_dir=tmp_path / "pyc")
    assert again.hits == compiled and [s.relative for s in again.missing] == [
        f"{LIB}/site-packages/pkg/py2.py"
    ]


def test_compile_bytecode_writes_0644_files_with_the_same_bytes(tmp_path):
    staging = staged(tmp_path)
    assert bytecode.compile_bytecode(staging, cache_dir=tmp_path / "pyc") == (3, 0)
    relative = f"{LIB}/site-packages/pkg/mod.py"
    tag = "cpython-" + VERSION.replace(".", "")
    placed = pyccache.pyc_path(staging, relative, tag)
    assert placed.read_bytes() == compiled_by_compileall(tmp_path, relative)
    assert stat.S_IMODE(placed.stat().st_mode) == 0o644
    assert bytecode.compile_bytecode(staging, cache_dir=tmp_path / "pyc") == (3, 2)


# equal frozensets in two functions: CPython merges them into one shared constant or not
# depending on which strings the compiling process has interned already ("gzip" is, once
# ``shutil`` is imported), so one process's bytes can differ from another's
SHARED_CONSTANT = (
    "def f(encoding):\n    if encoding in {'deflate', 'gzip'}:\n        return 1\n\n\n"
    "def g(encoding):\n    if encoding in {'deflate', 'gzip'}:\n        return 2\n"
)


def test_the_bytes_do_not_depend_on_how_many_cores_the_build_host_has(tmp_path):
    staging = staged(tmp_path)
    relative = f"{LIB}/site-packages/pkg/encodings.py"
    (staging / relative).write_text(SHARED_CONSTANT)
    found = {}
    for jobs in (1, 2, 3):
        job = bytecode.prepare(staging, cache_dir=tmp_path / f"pyc-{jobs}")
        found[jobs] = run(job, order=sorted(s.relative for s in job.missing), jobs=jobs)[1]
    assert found[1][relative] == found[2][relative] == found[3][relative]
    assert found[1] == found[2] == found[3]


HOSTILE = {
    "an index it was not fed": 'read x; printf "7 3\\nabc"\n',
    "a source answered twice": 'cat >/dev/null; printf "0 1\\na0 1\\nb"\n',
    "a negative index": 'read x; printf "%s 1\\na" -1\n',
    "a header that is no number": 'read x; printf "0 lots\\n"\n',
    "an oversized frame": f'read x; printf "0 {bytecode.MAX_PYC + 1}\\n"\n',
    "output after the last frame": 'cat >/dev/null; printf "0 1\\na1 1\\nb2 1\\nc extra"\n',
    "too few frames": 'cat >/dev/null; printf "0 1\\na"\n',
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_compiler_that_sends_anything_but_frames_is_refused_and_nothing_is_cached(tmp_path, what):
    job = bytecode.prepare(staged(tmp_path, HOSTILE[what]), cache_dir=tmp_path / "pyc")
    with pytest.raises(LockstepError, match="not a .pyc frame"):
        run(job, order=sorted(SOURCES), timeout=30)
    assert job.store.get(s.key for s in job.missing) == {}


def test_a_compiler_that_fails_after_sending_every_frame_caches_nothing(tmp_path):
    script = 'cat >/dev/null; printf "0 1\\na1 1\\nb2 1\\nc"; echo broken >&2; exit 3\n'
    job = bytecode.prepare(staged(tmp_path, script), cache_dir=tmp_path / "pyc")
    with pytest.raises(LockstepError, match=r"failed \(3\)[\s\S]*broken"):
        run(job, order=sorted(SOURCES))
    assert job.store.get(s.key for s in job.missing) == {}


def test_a_compiler_that_hangs_is_stopped_at_the_timeout(tmp_path):
    job = bytecode.prepare(staged(tmp_path, "sleep 120\n"), cache_dir=tmp_path / "pyc")
    with pytest.raises(LockstepError, match="more than 2 s"):
        run(job, order=sorted(SOURCES), timeout=2)


def test_the_compiler_can_write_nowhere_on_the_host(tmp_path):
    """It gets no writable folder: the staging folder, its home and /tmp stay untouched."""
    marker = tmp_path / "marker"
    script = (f'for f in {marker} "$(dirname "$0")/../written" /tmp/lockstep-pyc-marker; do '
              'echo x > "$f" 2>/dev/null; done\n'
              f'exec {SYSTEM_PYTHON} "$@"\n')  # fmt: skip
    staging = staged(tmp_path, script)
    _, compiled = run(bytecode.prepare(staging, cache_dir=tmp_path / "pyc"))
    assert len(compiled) == 2
    assert not marker.exists() and not (staging / "written").exists()
    assert not Path("/tmp/lockstep-pyc-marker").exists()
