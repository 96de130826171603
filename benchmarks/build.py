"""Benchmark ``lockstep build`` against a ``docker build`` baseline, measured in one run.

    python benchmarks/build.py [--keep] [--only build|pull] [--cold N]

Scenarios, each for lockstep and for the baseline, against a private registry on
127.0.0.1:5750 (fresh storage, so "cold" is cold):

* cold: the project's image is nowhere (no registry blobs, no layer/.pyc cache); the
  conda package cache is warm (downloading packages is not what is measured). Run
  ``--cold N`` times (default 3), each with a fresh cache and a fresh registry: a shared
  2-core VM drifts by more than a change is worth, so the best and the median are printed,
  and the digests must all be one;
* no-op: the same lock again;
* one package changed: one pip package of the lock moves to another version
  (``lockstep-bench-009`` 1.0 -> 1.1), everything else equal; the blobs and bytes
  uploaded are printed beside that package's own layer size.

The lock carries pip packages beside the conda ones (``PIP``: a compiled wheel, a pure one,
one conda already provides, and ten small made-here wheels), served from a local PEP 503
index on loopback (``tests/channel/pypi_index``; the pinned wheels are cached).

Pull sharing (``--only pull`` runs just this; ``pullshare.py``): the example projects
are built with the layer rule before issue 10 and with the current one, and a real
``docker pull`` of one project after another reports the bytes the second pull fetched.

Baseline: the base layer is ``docker import``-ed; a Dockerfile ``COPY``-s the same staged,
compiled environment into ``/opt/env``; ``docker build`` then ``docker push``.

The project is locked against the offline test channel (``tests/channel``): python 3.11,
numpy and the jupyter server stack, about 100 packages. Needs dockerd and docker-registry.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named build.py: keep its folder off sys.path, or it shadows PyPA's `build`
sys.path = [str(ROOT), str(ROOT / "tests")] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from traitlets.config import Config  # noqa: E402

from spawner.image import localregistry  # noqa: E402
from spawner.image.base import DEFINITION, build_base_layer  # noqa: E402
from spawner.image.build import build_image  # noqa: E402
from spawner.image.bytecode import compile_bytecode  # noqa: E402
from spawner.image.staging import default_installer  # noqa: E402
from spawner.lock.locking import LockInputs, lock_environment  # noqa: E402
from spawner.lock.pypi import PipInputs  # noqa: E402
from spawner.settings import Lockstep  # noqa: E402

ADDR = "127.0.0.1:5750"
COLD_ADDR = "127.0.0.1:5749"  # a fresh registry for each cold build after the first
BASE_TAG = "lockstep-bench-base:1"


PIP = ["msgpack", "requests-toolbelt", "requests",
       *(f"lockstep-bench-{i:03d}" for i in range(9)), "lockstep-bench-009==1.0"]
"""The benchmark lock's pip section; the one-package change pins lockstep-bench-009==1.1."""


def pip_index(root: Path) -> Path:
    """The test wheel index plus ten bench wheels and a 1.1 of ``lockstep-bench-009``."""
    from channel.pypi_index import _zip, bench_wheels, build_index, write_pages

    build_index(root)
    bench_wheels(root / "files", 10)
    info = "lockstep_bench_009-1.1.dist-info"
    _zip(root / "files" / "lockstep_bench_009-1.1-py3-none-any.whl", {
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: lockstep-bench-009\nVersion: 1.1\n"
                            "Requires-Dist: lockstep-bench-008\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/RECORD": "",
        "lockstep_bench_009/__init__.py": "VALUE = 9.1\n",
    })
    return write_pages(root)


def lock(project_dir: Path, deps: list[str], channel: Path, settings: Lockstep,
         pip: list[str] = (), index_url: str = "") -> Path:
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / "project.yaml").write_text(f"name: {project_dir.name}\n")
    body = "".join(f"  - {d}\n" for d in deps)
    if pip:
        body += "  - pip:\n" + "".join(f"    - {p}\n" for p in pip)
    (project_dir / "environment.yml").write_text(
        f"name: {project_dir.name}\nchannels:\n  - conda-forge\ndependencies:\n{body}"
    )
    lock_environment(
        project_dir,
        LockInputs(
            channel_urls={"conda-forge": channel.as_uri()},
            platforms=("linux-64",),
            virtual_packages={k: tuple(v) for k, v in settings.virtual_packages.items()},
            server_packages=tuple(settings.server_packages),
            pip=PipInputs(index_url=index_url, insecure_hosts=("127.0.0.1",),
                          cache_dir=settings.cache_path("pkgs")) if pip else PipInputs(),
        ),
        progress=None,
    )
    return project_dir


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - started, result


def sh(*cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def baseline(
    context: Path,
    settings: Lockstep,
    project_dir: Path,
    tag: str,
    *,
    no_cache: bool,
    restage: bool = True,
):
    """(Re)stage + compile the same env, docker build (COPY), docker push; (seconds, image)."""
    started = time.perf_counter()
    env = context / "env"
    if restage:
        if env.exists():
            shutil.rmtree(env)
        default_installer(settings)(project_dir / "conda-lock.yml", env)
        compile_bytecode(
            env,
            cache_dir=Path(tempfile.mkdtemp(dir=context)),
            tests=settings.compile_test_bytecode,  # the same .pyc files as lockstep's image
        )
        for junk in [env / "CACHEDIR.TAG", *context.glob("tmp*")]:
            shutil.rmtree(junk) if junk.is_dir() else junk.unlink(missing_ok=True)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nCOPY env /opt/env\nUSER 1000:100\nWORKDIR /home/jovyan\n"
        "ENV PATH=/opt/env/bin:/usr/local/bin:/usr/bin:/bin HOME=/home/jovyan\n"
        'CMD ["jupyterhub-singleuser"]\n'
    )
    image = f"{ADDR}/bench/baseline:{tag}"
    sh("docker", "build", *(["--no-cache"] if no_cache else []), "-q", "-t", image, str(context))
    sh("docker", "push", image)
    return time.perf_counter() - started, image


def layer_sizes(result, *, exclude: set[str]) -> list[tuple[str, int]]:
    """(history text, compressed size) of the image's layers not in ``exclude``."""
    from spawner.image.registry import RegistryClient

    host, repo = result.reference.split("@")[0].split("/", 1)
    with RegistryClient.for_host(host, insecure_registries=["127.0.0.1"]) as client:
        manifest = json.loads(client.get_manifest(repo, result.digest)[0])
        config = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
    history = [h["created_by"] for h in config["history"]]
    return [
        (text.split(",")[0][:40], layer["size"])
        for text, layer in zip(history, manifest["layers"], strict=True)
        if layer["digest"] not in exclude
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and registry")
    parser.add_argument("--only", choices=("build", "pull"), help="run one part only")
    parser.add_argument("--cold", type=int, default=3, metavar="N",
                        help="cold builds to run, each from a fresh cache and registry")
    args = parser.parse_args()
    from channel.build import cached_channel

    from benchmarks.pullshare import measure

    work = Path(tempfile.mkdtemp(prefix="lockstep-bench-"))
    default = Lockstep()
    cache = Path(default.cache_dir) / f"bench-{work.name}"  # beside pkgs: hardlinks work
    channel = cached_channel(jupyter=True)

    def settings_for(name: str, addr=ADDR, state="state", space="") -> Lockstep:
        """Settings with their own registry namespace (``space``, default ``name``) and a
        cold cache (shared pkgs)."""
        (cache / name).mkdir(parents=True)
        (cache / name / "pkgs").symlink_to(default.cache_path("pkgs"))
        config = Config()
        config.Lockstep.registry = f"{addr}/{space or name}"
        config.Lockstep.cache_dir = str(cache / name)
        config.Lockstep.data_dir = str(work / state)
        config.Lockstep.channel_urls = {"conda-forge": channel.as_uri()}
        config.Lockstep.allowed_channels = example_channels()  # the checked-in locks' channel
        config.Lockstep.insecure_channel_hosts = ["127.0.0.1"]  # the loopback wheel index
        return Lockstep(config=config)

    localregistry.start(work / "registry", ADDR)
    try:
        if args.only != "build":
            print("\n".join(measure(ROOT, work, settings_for)), flush=True)
        if args.only != "pull":
            def fresh(name: str) -> Lockstep:
                localregistry.start(work / f"registry-{name}", COLD_ADDR)
                settings = settings_for(name, COLD_ADDR, state=f"state-{name}", space="bench")
                build_base_layer(DEFINITION, settings.cache_path("base"))  # as for the first
                return settings

            def done(name: str) -> None:
                localregistry.stop(work / f"registry-{name}", COLD_ADDR)
                shutil.rmtree(work / f"registry-{name}", ignore_errors=True)
                shutil.rmtree(cache / name, ignore_errors=True)

            build_scenarios(work, settings_for("bench"), channel, (fresh, done, args.cold))
    finally:
        if not args.keep:
            localregistry.stop(work / "registry", ADDR)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            subprocess.run(
                [
                    "docker",
                    "rmi",
                    "-f",
                    BASE_TAG,
                    f"{ADDR}/bench/baseline:a",
                    f"{ADDR}/bench/baseline:b",
                ],
                capture_output=True,
            )
    return 0


def example_channels() -> list[str]:
    """The channel URLs the example projects' checked-in locks were solved against."""
    found = set()
    for lockfile in sorted((ROOT / "environments").glob("*/conda-lock.yml")):
        for line in lockfile.read_text().splitlines():
            if line.strip().startswith("lockstep.channel."):
                found.add(line.split(":", 1)[1].strip())
    return sorted(found)


PHASES = (("install", "installing", "installed"), ("layout", "installed", "writing"),
          ("compile", "writing", "compiled"), ("layers after compile", "compiled", "wrote"),
          ("push", "wrote", "pushed"))
"""(phase, the line it starts after, the line it ends with), from the build's progress.
Layers are written while the rest compiles (``spawner.image.pipeline``: a layer starts as
its last source is compiled) and uploaded as each is written (``push.EarlyPush``), so
"compile" holds most of the layer writing and uploads too, "layers after compile" what
was left once the compiler ended, and "push" what is left after the last layer."""


def split(steps: list[tuple[float, str]], total: float) -> str:
    """Cold build time by phase, from the build's progress lines (first line of each kind)."""
    first: dict[str, float] = {}
    for t, msg in steps:
        first.setdefault(msg.split(" ", 1)[0], t)
    spans = [(name, first[end] - first[begin]) for name, begin, end in PHASES
             if begin in first and end in first]
    other = total - sum(seconds for _, seconds in spans)
    return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in spans) + f", other {other:.2f}s"


def build_scenarios(work: Path, settings: Lockstep, channel: Path, again) -> None:
    """Cold, no-op and one-package builds, lockstep and ``docker build``; prints a table.
    ``again``: (fresh settings for a name, clean up that name, how many cold builds)."""
    from channel.pypi_index import serve_index

    with serve_index(pip_index(work / "pypi")) as index_url:
        _build_scenarios(work, settings, channel, index_url, again)


def cold_again(demo: Path, again, first) -> tuple[list[float], set[str]]:
    """The cold build's seconds and digests, ``first``'s (seconds, digest) and each
    repeat's (a fresh cache and a fresh registry each)."""
    fresh, done, count = again
    seconds, digests = [first[0]], {first[1]}
    for index in range(1, count):
        name = f"cold{index}"
        try:
            took, result = timed(build_image, demo, fresh(name))
        finally:
            done(name)
        seconds.append(took)
        digests.add(result.digest)
    return seconds, digests


def _build_scenarios(work: Path, settings: Lockstep, channel: Path, index_url: str,
                     again) -> None:  # fmt: skip
    envs = work / "environments"
    deps = ["python=3.11", "numpy"]
    changed = [*PIP[:-1], "lockstep-bench-009==1.1"]
    demo = lock(envs / "demo", deps, channel, settings, PIP, index_url)
    lock_text = (demo / "conda-lock.yml").read_text()
    counts = (lock_text.count("manager: conda"), lock_text.count("manager: pip"))
    key, base_layer = build_base_layer(DEFINITION, settings.cache_path("base"))
    steps: list[tuple[float, str]] = []
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    t_cold, cold = timed(
        build_image,
        demo,
        settings,
        progress=lambda m: steps.append((time.perf_counter() - t0, m)),
    )
    load.append(os.getloadavg()[0])
    t_noop, noop = timed(build_image, demo, settings)
    colds, digests = cold_again(demo, again, (t_cold, cold.digest))
    shutil.copy(demo / "conda-lock.yml", work / "demo.lock")
    lock(demo, deps, channel, settings, changed, index_url)
    one_steps: list[tuple[float, str]] = []
    t1 = time.perf_counter()
    t_one, one = timed(build_image, demo, settings,
                       progress=lambda m: one_steps.append((time.perf_counter() - t1, m)))
    new_layers = layer_sizes(one, exclude=set(cold.layer_digests))
    new_blobs = len(set(one.layer_digests) - set(cold.layer_digests)) + 1  # + the config

    # baseline: same base (docker import), same staged env, docker build + push
    sh("docker", "import", base_layer.path, BASE_TAG)
    shutil.copy(work / "demo.lock", demo / "conda-lock.yml")
    context = work / "context"
    context.mkdir()
    b_cold, image = baseline(context, settings, demo, "a", no_cache=True)
    b_noop, _ = baseline(context, settings, demo, "a", no_cache=False, restage=False)
    lock(demo, deps, channel, settings, changed, index_url)
    b_one, _ = baseline(context, settings, demo, "b", no_cache=False)
    size = json.loads(sh("docker", "image", "inspect", image))[0]["Size"]
    top = max(
        int(n) for n in sh("docker", "history", "-H=false", "--format", "{{.Size}}", image).split()
    )

    print(f"lock: {counts[0]} conda and {counts[1]} pip entries (linux-64)")
    print(f"load average (1 min) at the cold build: {load[0]:.2f} -> {load[1]:.2f}; "
          f"{os.cpu_count()} cores")
    print("lockstep cold build steps:\n" + "\n".join(f"  {t:6.2f}s {m}" for t, m in steps))
    print(f"cold build split: {split(steps, t_cold)} (total {t_cold:.2f}s)")
    print(f"cold builds, each from a fresh cache and registry: "
          f"{', '.join(f'{t:.2f}' for t in colds)} s; best {min(colds):.2f} s, "
          f"median {statistics.median(colds):.2f} s; "
          f"{'one digest' if len(digests) == 1 else f'{len(digests)} DIFFERENT digests'}")
    print(
        f"project: {cold.layers} layers ({len(cold.layer_digests)} blobs), "
        f"{cold.size / 1e6:.1f} MB compressed; base layer "
        f"{base_layer.uncompressed_size / 1e6:.1f} MB unpacked, "
        f"{base_layer.size / 1e6:.1f} MB gz"
    )
    print(f"baseline image (docker build): {size / 1e6:.1f} MB unpacked")
    print(
        f"{'':10} {'cold s':>8} {'cold MB up':>11} {'no-op s':>8} {'no-op up':>9} "
        f"{'1 pkg s':>8} {'1 pkg MB up':>12}"
    )
    print(
        f"{'lockstep':10} {t_cold:8.2f} {cold.bytes_uploaded / 1e6:11.1f} {t_noop:8.2f} "
        f"{noop.bytes_uploaded:9d} {t_one:8.2f} {one.bytes_uploaded / 1e6:12.2f}"
    )
    print(
        f"{'baseline':10} {b_cold:8.2f} {'(push)':>11} {b_noop:8.2f} {'-':>9} "
        f"{b_one:8.2f} {'(push)':>12}"
    )
    print(
        "one package changed (pip lockstep-bench-009 1.0 -> 1.1): new lockstep layers "
        + ", ".join(f"{h} = {n / 1e6:.4f} MB" for h, n in new_layers)
        + f"; {new_blobs} blobs (layers + config) uploaded, "
        f"{one.bytes_uploaded / 1e6:.4f} MB; split: {split(one_steps, t_one)}"
    )
    print(
        f"baseline: its COPY layer ({top / 1e6:.1f} MB unpacked) is rebuilt and pushed "
        "whole on any change"
    )


if __name__ == "__main__":
    sys.exit(main())
