"""An environment's bytecode: cache hits linked first, the rest compiled in the build
sandbox in batches, each batch's .pyc files handed to the caller once its sandbox exits.

``prepare(staging, cache_dir=...)`` links every cached .pyc into the staging folder and
returns a ``Bytecode`` naming the sources still to compile; ``Bytecode.compile`` runs
``pycompile`` as ``python -I -S -B`` under the sandbox (``"bwrap"``, or ``"none"``:
unsafe) with the staging folder read-only and only a fresh output folder writable, once
per batch of sources the caller names (default: one batch). When a batch's sandbox has
exited (so nothing it started can still touch its output), its files are moved into place
and into the cache (``pyccache.take_compiled``) and ``placed(relative, path)`` is called
for each source (``path`` None when it did not compile) before the next batch starts. The
caller (``spawner.image.pipeline``) writes a layer as soon as its batch is done, while the
next batch compiles.

Guarantees: the bytes do not depend on the batches or their order (each .pyc is a
function of its source, final path and interpreter); a sandbox that fails, does not start
or runs past ``timeout`` (for all batches together) is a ``LockstepError`` naming the fix,
and its output folder is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import pyccache
from spawner.image.pycompile import largest_first
from spawner.image.sandbox import require_sandbox, sandboxed
from spawner.image.staging import python_version
from spawner.settings import ENV_PREFIX

PYCOMPILE = Path(__file__).with_name("pycompile.py")
INSIDE = "/run/lockstep/pycompile.py"


@dataclass
class Bytecode:
    """What is left to compile for one staged environment (``prepare``)."""

    staging: Path
    runner: Path  # the env whose python compiles (this one, or the host's for a foreign one)
    version: str
    cache: Path
    total: int
    missing: list[pyccache.Source]

    @property
    def tag(self) -> str:
        return "cpython-" + self.version.replace(".", "")

    @property
    def hits(self) -> int:
        return self.total - len(self.missing)

    def compile(
        self,
        *,
        sandbox: str = "bwrap",
        timeout: float = 900,
        jobs: int | None = None,
        batches: list[list[str]] | None = None,
        placed: Callable[[str, str | None], None] | None = None,
    ) -> None:
        """Compile ``missing``, batch by batch (``batches``: lists of their ``relative``
        paths; default one batch), each biggest source first (module docstring)."""
        if not self.missing:
            return
        bwrap = require_sandbox(sandbox)
        by_relative = {s.relative: s for s in self.missing}
        deadline = time.monotonic() + timeout
        for batch in batches if batches is not None else [list(by_relative)]:
            items = [by_relative[r] for r in largest_first(batch, str(self.staging))]
            out = Path(tempfile.mkdtemp(prefix="pyc-", dir=self.staging.parent))
            try:
                _run(self._argv(out, bwrap, jobs), items, bwrap=bwrap, timeout=timeout,
                     left=deadline - time.monotonic())  # fmt: skip
                taken = pyccache.take_compiled(out, self.staging, items, cache=self.cache,
                                               tag=self.tag)  # fmt: skip
            finally:
                shutil.rmtree(out, ignore_errors=True)
            if placed is not None:
                for relative, path in taken.items():
                    placed(relative, path)

    def _argv(self, out: Path, bwrap: str | None, jobs: int | None):
        python = self.runner / "bin" / f"python{self.version}"
        script = INSIDE if bwrap else str(PYCOMPILE)
        jobs = jobs or os.cpu_count() or 1
        command = [str(python), "-I", "-S", "-B", script, str(self.staging), ENV_PREFIX,
                   str(out), str(jobs)]  # fmt: skip
        runner = [self.runner] if self.runner != self.staging else []
        return sandboxed(
            command,
            bwrap=bwrap,
            read_only=[self.staging, *runner, (PYCOMPILE, script)],
            writable=[out],
            env={"PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "0"},
        )


def prepare(
    staging: Path, *, cache_dir: Path, interpreter: Path | None = None, tests: bool = True
) -> Bytecode | None:
    """Link the cached .pyc files into ``staging``; None when the env has no python.

    ``interpreter``: another staged env whose python (same ``major.minor``, checked by the
    caller: ``index.compile_plan``) compiles this one's sources, for a platform this host
    cannot run; its .pyc cache is shared, since the bytes are the same. ``tests=False``
    leaves packages' test suites (``pyccache.is_test_source``) without .pyc files."""
    staging = Path(staging)
    version = python_version(staging)
    runner = Path(interpreter) if interpreter is not None else staging
    if version is None or not (runner / "bin" / f"python{version}").exists():
        return None
    job = Bytecode(staging, runner, version, Path(cache_dir)
                   / pyccache.interpreter_identity(runner, version), 0, [])  # fmt: skip
    job.total, job.missing = pyccache.serve_hits(
        staging, version, cache=job.cache, prefix=ENV_PREFIX, tag=job.tag, tests=tests
    )
    return job


def _run(argv_env, items, *, bwrap, timeout: float, left: float) -> None:
    """Run the sandboxed compiler on ``items`` (``left`` seconds of ``timeout`` remain)."""
    argv, env = argv_env
    listing = "".join(f"{item.relative}\n" for item in items)
    try:
        proc = subprocess.run(argv, env=env, input=listing, capture_output=True, text=True,
                              timeout=max(left, 1))  # fmt: skip
    except subprocess.TimeoutExpired:
        raise LockstepError(
            f"compiling the environment's bytecode took more than {timeout:.0f} s and was "
            "stopped; a package may be hostile or broken (check the lock's recent changes)."
        ) from None
    if proc.returncode != 0:
        _failed(proc.returncode, bwrap, proc.stdout + proc.stderr)


def _failed(code: int, bwrap, output: str) -> None:
    where = "in the build sandbox (bwrap) " if bwrap else ""
    hint = (
        " If bwrap itself could not start (e.g. 'creating new namespace' above), the "
        "build host must allow user namespaces (sysctl kernel.unprivileged_userns_clone=1"
        "; on Ubuntu 24.04 an AppArmor profile for bwrap)."
        if bwrap
        else ""
    )
    raise LockstepError(
        f"compiling the environment's bytecode {where}failed ({code}); the "
        f"environment's python did not run cleanly, so its image was not built.{hint}\n"
        f"{output[-2000:]}"
    )


def compile_bytecode(
    staging: Path,
    *,
    cache_dir: Path,
    sandbox: str = "bwrap",
    timeout: float = 900,
    jobs: int | None = None,
    interpreter: Path | None = None,
    tests: bool = True,
) -> tuple[int, int]:
    """``prepare`` then ``Bytecode.compile``, biggest source first; returns (sources,
    cache hits), (0, 0) when the env has no python."""
    job = prepare(staging, cache_dir=cache_dir, interpreter=interpreter, tests=tests)
    if job is None:
        return 0, 0
    job.compile(sandbox=sandbox, timeout=timeout, jobs=jobs)
    return job.total, job.hits
