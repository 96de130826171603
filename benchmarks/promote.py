"""Promotion time and bytes moved, beside ``skopeo copy``, same registry and across registries.

Usage::

    .venv/bin/python benchmarks/promote.py [--sizes 1,64,256] [--repeat 5] [--json FILE]

It starts two Debian ``docker-registry`` processes on loopback ports (temporary storage),
pushes lockstep-shaped images of several sizes (``tests/docker/synthetic_image``: a real
``/opt/env`` + conda-meta layer, plus a random filler layer of SIZE MiB) and measures:

* ``promote same``: ``lockstep promote`` dev -> qa without gates (``gates=[]``): stage
  lock, pointer reads, compare-and-swap manifest PUT, re-read, audit line;
* ``skopeo same``: ``skopeo copy docker://R/demo@DIGEST docker://R/demo:qa-skopeo``;
* ``promote cross``: dev (registry 1) -> prod (registry 2, fresh repository each time);
* ``skopeo cross``: the same copy with skopeo, to a fresh repository of registry 2;
* ``verify gate``: reading the image from the registry and diffing it with its lock
  (gate time, reported apart from promotion).

Bytes moved: what lockstep sent (blobs uploaded + manifests). skopeo sends every blob the
destination repository lacks, so across registries it moves the whole image too (the
``image bytes`` column); within one repository it only checks the blobs and PUTs the manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# not this folder: benchmarks/build.py would shadow the `build` package conda-lock imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "docker")]

from synthetic_image import env_files, push_image, write_lock  # noqa: E402
from traitlets.config import Config  # noqa: E402

from spawner.image import localregistry  # noqa: E402
from spawner.image.build import lock_hash  # noqa: E402
from spawner.image.registry import RegistryClient  # noqa: E402
from spawner.promote import promote  # noqa: E402
from spawner.promote.gates import GateContext, verify_gate  # noqa: E402
from spawner.settings import Lockstep  # noqa: E402

PORTS = ("127.0.0.1:5761", "127.0.0.1:5762")


def skopeo(src: str, dst: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{src}",
            f"docker://{dst}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - started


def settings_for(work: Path, namespace: str, prod_registry: str | None = None) -> Lockstep:
    config = Config()
    config.Lockstep.registry = f"{PORTS[0]}/{namespace}"
    config.Lockstep.environments_dir = str(work / "environments")
    config.Lockstep.notebooks_dir = str(work / "notebooks")
    config.Lockstep.data_dir = str(work / "state")
    if prod_registry:
        config.Lockstep.stage_registries = {"prod": prod_registry}
    return Lockstep(config=config)


def one_size(work: Path, size_mib: int, repeat: int) -> dict:
    lock = work / "environments" / "demo" / "conda-lock.yml"
    client = RegistryClient.for_host(PORTS[0], insecure_registries=("127.0.0.1",))
    same, sk_same, cross, sk_cross, moved_same, moved_cross, image_bytes = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    verify_times = []
    for i in range(repeat):
        ns = f"bench{uuid.uuid4().hex[:8]}"
        digest = push_image(
            client,
            f"{ns}/demo",
            project="demo",
            lock_hash=lock_hash(lock),
            files=env_files(),
            filler_bytes=size_mib << 20,
            salt=f"{size_mib}-{i}",
        )
        settings = settings_for(work, ns, prod_registry=f"{PORTS[1]}/{ns}")
        record = promote(settings, "demo", "qa", user="bench", gates=[])
        assert record.outcome == "promoted", record.message
        same.append(record.seconds)
        moved_same.append(record.bytes_moved)
        sk_same.append(skopeo(f"{PORTS[0]}/{ns}/demo@{digest}", f"{PORTS[0]}/{ns}/demo:qa-skopeo"))
        record = promote(settings, "demo", "prod", user="bench", approved_by="x", gates=[])
        assert record.outcome == "promoted", record.message
        cross.append(record.seconds)
        moved_cross.append(record.bytes_moved)
        sk_cross.append(
            skopeo(f"{PORTS[0]}/{ns}/demo@{digest}", f"{PORTS[1]}/{ns}-skopeo/demo:prod")
        )
        manifest = json.loads(client.get_manifest(f"{ns}/demo", digest)[0])
        image_bytes.append(sum(d["size"] for d in [manifest["config"], *manifest["layers"]]))
        gate = verify_gate(settings, lock)
        ctx = GateContext("demo", "dev", "qa", False, digest, f"{PORTS[0]}/{ns}/demo", "b", None)
        result = gate.run(ctx)
        assert result.passed, result.message
        verify_times.append(result.seconds)
    client.close()
    med = statistics.median
    return {
        "size_mib": size_mib,
        "repeat": repeat,
        "promote_same_s": med(same),
        "promote_same_max_s": max(same),
        "promote_same_bytes": int(med(moved_same)),
        "skopeo_same_s": med(sk_same),
        "promote_cross_s": med(cross),
        "promote_cross_bytes": int(med(moved_cross)),
        "skopeo_cross_s": med(sk_cross),
        "image_bytes": int(med(image_bytes)),
        "verify_gate_s": med(verify_times),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,64,256", help="filler sizes in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if not shutil.which("skopeo") or not shutil.which("docker-registry"):
        print(
            "needs skopeo and docker-registry (apt-get install skopeo docker-registry)",
            file=sys.stderr,
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="lockstep-bench-promote-"))
    roots = [work / f"registry{i}" for i in range(2)]
    try:
        for root, addr in zip(roots, PORTS, strict=True):
            localregistry.start(root, addr)
        (work / "environments" / "demo").mkdir(parents=True)
        (work / "environments" / "demo" / "project.yaml").write_text("name: demo\n")
        write_lock(work / "environments" / "demo" / "conda-lock.yml")
        rows = [one_size(work, int(s), args.repeat) for s in args.sizes.split(",")]
    finally:
        for root, addr in zip(roots, PORTS, strict=True):
            localregistry.stop(root, addr)
        shutil.rmtree(work, ignore_errors=True)
    header = (
        "size",
        "promote same",
        "bytes",
        "skopeo same",
        "promote cross",
        "bytes",
        "skopeo cross",
        "image bytes",
        "verify gate",
    )
    print(f"median of {args.repeat} runs, {os.cpu_count()} CPUs; promotion without gates")
    print("  ".join(f"{h:>13}" for h in header))
    for r in rows:
        print(
            "  ".join(
                f"{v:>13}"
                for v in (
                    f"{r['size_mib']} MiB",
                    f"{r['promote_same_s']:.3f} s",
                    r["promote_same_bytes"],
                    f"{r['skopeo_same_s']:.3f} s",
                    f"{r['promote_cross_s']:.3f} s",
                    r["promote_cross_bytes"],
                    f"{r['skopeo_cross_s']:.3f} s",
                    r["image_bytes"],
                    f"{r['verify_gate_s']:.3f} s",
                )
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
