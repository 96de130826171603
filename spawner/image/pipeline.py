"""Bytecode and layers at once: a layer is written as soon as its sources are compiled.

``staged_layers(staging, ...)`` takes an installed staging folder to its layer blobs:
the sources are found and the cached .pyc of each read (``bytecode.prepare``), the
sandboxed compiler is started on the biggest packages still to compile (``head_start``),
and while it runs the prefix is laid out and grouped (``envlayout``, ``grouping``: a
package's size there never counts bytecode, so the groups do not depend on what the
cache held); then the compiler is fed the rest, layer by layer. Each .pyc comes back as
bytes and joins its source's layer as an inline entry; a layer goes to a worker process
(``procpool``) as soon as its last source is compiled, at once when it has none to wait
for. So compiling, laying out and compressing
share the cores instead of taking turns, and no .pyc is ever written as a file.

Guarantees: the layers are the ones a build that compiled everything first and then
wrote every layer would give, byte for byte (each .pyc is a function of its source, and
each layer of its entries, whatever the order); results are in layer order; ``done(blob)``
is called as each layer is ready (on a worker's thread). A failure in the compiler or in a
layer stops the jobs not yet started and is raised here; the compiler is stopped when
anything else fails.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from spawner import procpool
from spawner.image import bytecode
from spawner.image.assemble import group_entries
from spawner.image.envlayout import LAYER_ROOT, layout_prefix
from spawner.image.grouping import group_packages
from spawner.image.index import compile_plan
from spawner.image.jupyterhook import hook_entries
from spawner.image.pyccache import pyc_relative
from spawner.image.staging import python_version
from spawner.image.tarlayer import BlobCache, Entry, LayerBlob, cached_layer, with_parents
from spawner.progress import Counter


@dataclass(frozen=True)
class LayerOptions:
    """How one platform's layers are made (from the site's ``c.Lockstep`` settings)."""

    slots: int  # layers left for packages under the limit, once the base's are counted
    roots: tuple[str, ...]  # ``grouping`` tier roots
    pyc_cache: Path
    sandbox: str = "bwrap"
    tests: bool = False  # ``c.Lockstep.compile_test_bytecode``
    mtime: int = 0
    workers: int = 2


def staged_layers(
    staging: Path,
    options: LayerOptions,
    cache: BlobCache,
    *,
    platform: str = "linux-64",
    host: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
    done: Callable[[LayerBlob], None] | None = None,
) -> tuple[list[LayerBlob], list[str]]:
    """(blobs, history texts) for ``staging``; ``host``: the linux-64 env whose python
    compiles a foreign platform's bytecode (``index.compile_plan``)."""
    job = _bytecode(staging, options, platform, host, progress)
    size = {s.relative: s.size for s in job.missing} if job else {}
    first = head_start(job, size) if job else []
    compiler = job.start(first, sandbox=options.sandbox) if job and job.missing else None
    try:
        layout = layout_prefix(staging)
        layout.extra.extend(hook_entries(python_version(staging)))  # last layer
        groups = group_packages(layout.package_infos(), slots=options.slots,
                                roots=options.roots)  # fmt: skip
        planned = group_entries(layout, groups)
        progress(f"writing {len(planned)} layers")
        written = Counter(progress, "writing", len(planned), "layers")

        def report(blob: LayerBlob) -> None:
            written.add(blob.size)
            if done is not None:
                done(blob)

        writer = _Writer([entries for _, entries in planned], cache, options, report)
        with procpool.Workers(options.workers) as pool:
            writer.start(pool, job)
            if compiler is not None:
                compiler.add(writer.by_layer(set(size) - set(first), size))
                for relative, data in compiler:
                    writer.placed(relative, data)
                compiler.finish()
                progress(f"compiled bytecode for {job.total} sources "
                         f"({len(job.hits)} from the cache)")  # fmt: skip
            blobs = writer.finish()
    finally:
        if compiler is not None:
            compiler.close()
    return blobs, [text for text, _ in planned]


HEAD_START = 0.25
"""The share of the source bytes the compiler is given before the layers are planned."""


def head_start(job: bytecode.Bytecode, size: dict[str, int]) -> list[str]:
    """What the compiler starts on while the prefix is laid out and grouped: whole
    packages (a ``site-packages`` top-level name, or the standard library as one), the
    biggest first, until ``HEAD_START`` of the source bytes, each biggest source first. A
    layer is whole packages, so these complete layers rather than start many."""
    site = f"lib/python{job.version}/site-packages/"
    packages: dict[str, list[str]] = {}
    for relative in size:
        name = relative[len(site) :].split("/")[0] if relative.startswith(site) else ""
        packages.setdefault(name, []).append(relative)
    first: list[str] = []
    budget = HEAD_START * sum(size.values())
    for name in sorted(packages, key=lambda n: (-sum(size[r] for r in packages[n]), n)):
        if budget <= 0:
            break
        first.extend(sorted(packages[name], key=lambda r: (-size[r], r)))
        budget -= sum(size[r] for r in packages[name])
    return first



def _bytecode(staging, options, platform, host, progress) -> bytecode.Bytecode | None:
    """What is cached and what is left to compile (None: no bytecode for this platform)."""
    plan = compile_plan(
        platform,
        host_platform="linux-64",
        env_python=python_version(staging),
        host_python=(python_version(host) if host else None) or "",
    )
    if plan == "skip":
        progress(
            f"{platform}: no bytecode compiled (no python this host can run for it; "
            "CPython compiles on first import)"
        )
        return None
    return bytecode.prepare(
        staging,
        cache_dir=options.pyc_cache,
        interpreter=host if plan == "host" else None,
        tests=options.tests,
    )


class _Writer:
    """Which layer each source's .pyc joins, and each layer's job once it is complete."""

    def __init__(self, layers: list[list[Entry]], cache, options, done) -> None:
        self.layers = layers
        self.cache, self.options, self.done = cache, options, done
        self.layer_of = {
            e.path[len(LAYER_ROOT) + 1 :]: index
            for index, entries in enumerate(layers)
            for e in entries
            if e.path.endswith(".py")
        }
        by_size = sorted(range(len(layers)), key=lambda i: -sum(e.size for e in layers[i]))
        self.order = {index: position for position, index in enumerate(by_size)}
        self.added: dict[int, list[Entry]] = {index: [] for index in range(len(layers))}
        self.pending: Tally[int] = Tally()
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.pool: procpool.Workers | None = None
        self.tag = ""

    def _layer(self, relative: str) -> int:
        return self.layer_of.get(relative, len(self.layers) - 1)  # unowned: the last layer

    def start(self, pool: procpool.Workers, job: bytecode.Bytecode | None) -> None:
        """File the cache hits; hand out the layers with nothing to compile."""
        self.pool = pool
        if job is not None:
            self.tag = job.tag
            for relative, data in job.hits.items():
                self._add(relative, data)
            self.pending.update(self._layer(source.relative) for source in job.missing)
        for index in sorted(range(len(self.layers)), key=self.order.get):
            if not self.pending[index]:
                self._submit(index)

    def by_layer(self, relatives: set[str], size: dict[str, int]) -> list[str]:
        """``relatives`` layer by layer, the biggest layer first, each biggest source first:
        a big layer is compressed while the rest compile, a small one is left for last."""
        return sorted(relatives, key=lambda r: (self.order[self._layer(r)], -size[r], r))

    def _add(self, relative: str, data: bytes) -> None:
        path = f"{LAYER_ROOT}/{pyc_relative('', relative, self.tag)}"
        self.added[self._layer(relative)].append(Entry(path, "file", 0o644, data=data))

    def placed(self, relative: str, data: bytes | None) -> None:
        """``relative`` is compiled (``data`` None: it does not compile)."""
        index = self._layer(relative)
        if data is not None:
            self._add(relative, data)
        self.pending[index] -= 1
        if not self.pending[index]:
            self._submit(index)

    def _submit(self, index: int) -> None:
        # a .pyc the package shipped at the same path is replaced (later entries win)
        entries = with_parents(self.layers[index] + self.added[index])
        root, level = str(self.cache.root.parent), self.cache.level
        future = self.pool.submit(cached_layer, root, level, entries, self.options.mtime)
        self.futures[index] = future
        future.add_done_callback(self._report)

    def _report(self, future: Future) -> None:
        if future.exception() is None:
            with self.lock:
                self.done(future.result())

    def finish(self) -> list[LayerBlob]:
        """The blobs in layer order (every missing source was placed, so every layer has
        been handed out)."""
        return [self.futures[index].result() for index in range(len(self.layers))]
