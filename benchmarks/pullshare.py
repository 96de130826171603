"""Bytes a real ``docker pull`` fetches for a project pulled after another (``build.py``).

The example projects (``environments/forecast``, ``sandbox``, ``vision``; their locks as
checked in) are built twice into the benchmark registry: once with the layer rule before
issue 10 (``legacy_group_packages``: one layer per package, tiers by name, the smallest
merged at the top when over the limit) under ``ADDR/old``, once with the current rule
(``spawner.image.grouping``) under ``ADDR/new``. For each pair, every benchmark image is
removed from the engine (``docker rmi``), the first project is pulled, then the second;
the layers ``docker pull`` reports as ``Pull complete`` (not ``Already exists``) are
summed from the registry manifest's blob sizes and printed as a fraction of the second
image's size (layers + config). Nothing here is imported by lockstep itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from unittest import mock

from spawner.image import build as build_module
from spawner.image import pipeline
from spawner.image.grouping import LayerGroup, PackageInfo, dependency_closure, spec_name
from spawner.image.registry import RegistryClient

PROJECTS = ("forecast", "sandbox", "vision")
PAIRS = (("forecast", "sandbox"), ("sandbox", "forecast"), ("forecast", "vision"))
PULL_LINE = re.compile(r"^([0-9a-f]{12}): (Already exists|Pull complete)\s*$", re.M)


def legacy_group_packages(packages, *, slots: int, roots) -> list[LayerGroup]:
    """The rule before issue 10 (``git show a48eb6e:spawner/image/grouping.py``)."""
    graph = {p.name: p.depends for p in packages}
    core = dependency_closure(("python",), graph)
    server = dependency_closure((spec_name(s) for s in roots[1:]), graph) - core
    tier_of = {p.name: 0 if p.name in core else 1 if p.name in server else 2 for p in packages}
    ordered = sorted(packages, key=lambda p: (tier_of[p.name], p.name))
    if len(ordered) <= slots:
        return [LayerGroup((p.name,), tier_of[p.name]) for p in ordered]
    merge_count = len(ordered) - slots + 1
    candidates = [p for p in ordered if tier_of[p.name] > 0] or list(ordered)
    by_size: list[PackageInfo] = sorted(candidates, key=lambda p: (p.size, p.name))
    merged = {p.name for p in by_size[:merge_count]}
    groups = [LayerGroup((p.name,), tier_of[p.name]) for p in ordered if p.name not in merged]
    groups.append(LayerGroup(tuple(sorted(merged)), 3))
    return groups


def build_examples(root: Path, work: Path, settings_for, rule: str, epoch: int) -> dict:
    """Build the example projects with ``rule`` ('old' or 'new'); name -> BuildResult.

    ``epoch`` (layer mtimes) is unique to the run, so no other image in the engine (a test's
    build of the same lock) holds these layers and "Already exists" means this run's pull.
    """
    settings = settings_for(rule)
    results = {}
    for name in PROJECTS:
        project = work / f"examples-{rule}" / name
        project.mkdir(parents=True)
        for file in ("environment.yml", "project.yaml", "conda-lock.yml"):
            shutil.copy(root / "environments" / name / file, project / file)
        if rule == "old":
            with mock.patch.object(pipeline, "group_packages", legacy_group_packages):
                results[name] = build_module.build_image(project, settings, epoch=epoch)
        else:
            results[name] = build_module.build_image(project, settings, epoch=epoch)
    return results


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"docker {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def _sizes(result) -> tuple[dict[str, int], int]:
    """(short layer id -> compressed size, total size) from the registry's manifest."""
    host, repo = result.reference.split("@")[0].split("/", 1)
    with RegistryClient.for_host(host, insecure_registries=["127.0.0.1"]) as client:
        manifest = json.loads(client.get_manifest(repo, result.digest)[0])
    layers = {d["digest"].split(":")[1][:12]: d["size"] for d in manifest["layers"]}
    return layers, sum(d["size"] for d in manifest["layers"]) + manifest["config"]["size"]


def remove_all(results: list) -> None:
    for result in results:
        subprocess.run(["docker", "rmi", "-f", result.reference], capture_output=True)


def pull_pair(first, second, everything: list) -> dict:
    """Clean engine, pull ``first``, then ``second``; what the second pull fetched."""
    remove_all(everything)
    _docker("pull", "-q", first.reference)
    out = _docker("pull", second.reference)
    sizes, total = _sizes(second)
    states = dict(PULL_LINE.findall(out))
    fetched = [short for short, state in states.items() if state == "Pull complete"]
    return {
        "layers": len(sizes),
        "pulled_layers": len(fetched),
        "pulled_bytes": sum(sizes[s] for s in fetched),
        "size": total,
        "first_prefix": _common_prefix(first.layer_digests, second.layer_digests),
    }


def _common_prefix(a, b) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def measure(root: Path, work: Path, settings_for) -> list[str]:
    """Build with both rules, pull each pair; report lines (old vs new)."""
    epoch = int(time.time())
    built = {rule: build_examples(root, work, settings_for, rule, epoch) for rule in ("old", "new")}
    everything = [r for results in built.values() for r in results.values()]
    lines = [
        f"{'second pull (after first)':28} {'rule':4} {'layers':>6} {'prefix':>6} "
        f"{'pulled':>6} {'MB pulled':>9} {'MB size':>8} {'fraction':>8}"
    ]
    try:
        for first, second in PAIRS:
            for rule in ("old", "new"):
                a, b = built[rule][first], built[rule][second]
                got = pull_pair(a, b, everything)
                lines.append(
                    f"{second + ' after ' + first:28} {rule:4} {got['layers']:6d} "
                    f"{got['first_prefix']:6d} {got['pulled_layers']:6d} "
                    f"{got['pulled_bytes'] / 1e6:9.1f} {got['size'] / 1e6:8.1f} "
                    f"{got['pulled_bytes'] / got['size']:8.1%}"
                )
    finally:
        remove_all(everything)
    return lines
