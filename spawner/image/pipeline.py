"""Bytecode and layers at once: a layer is written as soon as its sources are compiled.

``staged_layers(staging, ...)`` takes an installed staging folder to its layer blobs:
cached .pyc files are linked in (``bytecode.prepare``), the prefix is laid out and
grouped (``envlayout``, ``grouping``: a package's size there never counts bytecode, so
the groups do not depend on what the .pyc cache held), and the missing sources are
compiled in the build sandbox in a few batches of whole layers, the biggest layers first
(``bytecode``). A layer with nothing left to compile goes to a worker process at once
(``procpool``); the others as soon as their batch's sandbox has exited, while the next
batch compiles. So compiling and compressing share the cores instead of taking turns.

Guarantees: the layers are the ones a build that compiled everything first and then
wrote every layer would give, byte for byte (each .pyc is a function of its source, and
each layer of its entries, whatever the order); results are in layer order; ``done(blob)``
is called as each layer is ready (on a worker's thread). A failure in the compiler or in a
layer stops the jobs not yet started and is raised here.
"""

from __future__ import annotations

import os
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
from spawner.image.staging import python_version
from spawner.image.tarlayer import BlobCache, Entry, LayerBlob, cached_layer, with_parents
from spawner.progress import Counter

BATCHES = 4
"""Runs of the compiler a cold build is split into (``_Writer._batches``): each run's
layers are written while the next compiles; each run costs one sandbox start."""


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
    layout = layout_prefix(staging)
    layout.extra.extend(hook_entries(python_version(staging)))  # last layer
    groups = group_packages(layout.package_infos(), slots=options.slots, roots=options.roots)
    planned = group_entries(layout, groups)
    progress(f"writing {len(planned)} layers")
    written = Counter(progress, "writing", len(planned), "layers")

    def report(blob: LayerBlob) -> None:
        written.add(blob.size)
        if done is not None:
            done(blob)

    writer = _Writer(staging, [entries for _, entries in planned], cache, options, report)
    with procpool.Workers(options.workers) as pool:
        writer.start(pool, job.missing if job else [])
        if job is not None:
            job.compile(sandbox=options.sandbox, batches=writer.batches, placed=writer.placed)
            progress(f"compiled bytecode for {job.total} sources ({job.hits} from the cache)")
        blobs = writer.finish()
    return blobs, [text for text, _ in planned]


def _bytecode(staging, options, platform, host, progress) -> bytecode.Bytecode | None:
    """The cached .pyc files linked in, and what is left to compile (None: nothing)."""
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

    def __init__(self, staging, layers: list[list[Entry]], cache, options, done) -> None:
        self.staging = str(staging)
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
        self.batches: list[list[str]] = []

    def _layer(self, relative: str) -> int:
        return self.layer_of.get(relative, len(self.layers) - 1)  # unowned: the last layer

    def start(self, pool: procpool.Workers, missing) -> None:
        """Hand out the layers with nothing to compile; plan the compiler's batches."""
        self.pool = pool
        self.pending.update(self._layer(source.relative) for source in missing)
        for index in sorted(range(len(self.layers)), key=self.order.get):
            if not self.pending[index]:
                self._submit(index)
        self.batches = self._batches([source.relative for source in missing])

    def _batches(self, relatives: list[str]) -> list[list[str]]:
        """About ``BATCHES`` runs of the compiler, of about equal source bytes, each whole
        layers (the biggest layers first), so layers are written while the next compiles."""
        by_layer: dict[int, list[str]] = {}
        for relative in relatives:
            by_layer.setdefault(self._layer(relative), []).append(relative)
        size = {r: os.lstat(os.path.join(self.staging, r)).st_size for r in relatives}
        target = sum(size.values()) / BATCHES
        batches: list[list[str]] = [[]]
        filled = 0
        for index in sorted(by_layer, key=self.order.get):
            if batches[-1] and filled >= target:
                batches.append([])
                filled = 0
            batches[-1].extend(by_layer[index])
            filled += sum(size[r] for r in by_layer[index])
        return [batch for batch in batches if batch]

    def placed(self, relative: str, path: str | None) -> None:
        index = self._layer(relative)
        if path is not None:
            layer_path = f"{LAYER_ROOT}/{os.path.relpath(path, self.staging)}"
            self.added[index].append(Entry(layer_path, "file", 0o644, source=path,
                                           size=os.lstat(path).st_size))  # fmt: skip
        self.pending[index] -= 1
        if not self.pending[index]:
            self._submit(index)

    def _submit(self, index: int) -> None:
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
        """The blobs in layer order (every source was reported: ``take_compiled`` names
        each, so every layer has been handed out)."""
        return [self.futures[index].result() for index in range(len(self.layers))]
