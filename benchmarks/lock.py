"""Benchmark ``lockstep lock`` and ``lockstep install`` on the Jupyter test spec.

    python benchmarks/lock.py [--repeat N] [--json FILE]

Spec: python=3.11 and numpy, plus the server packages jupyterhub-singleuser and ipykernel,
solved against the offline Jupyter test channel (``tests/channel/build.py --jupyter``,
about 100 packages). Everything runs in temporary folders; the channel is built (or
reused) in ``~/.cache/lockstep/channels``.

Measured, each the best and the median of ``--repeat`` runs:

* lock (solve + write): ``lock_environment`` in a warm process: read the spec with
  conda-lock's parser, content hash, rattler solve in the worker subprocess (its start
  included), conda-lock models and writer, atomic replace. Target: <= 0.5 s.
* its parts, and the baseline conda-lock itself needs for the same lock: its parser
  (``parse_conda_lock_file``) plus its writer (``write_conda_lock_file``).
* ``lockstep lock`` as a command (a fresh interpreter: imports included).
* install cold (empty package cache, fresh prefix) and warm (filled cache, fresh prefix),
  both staging for ``/opt/env``; and a re-install into the same prefix. Target warm <= 1 s.
* lock of a spec with about 100 conda packages (the spec above with the server packages
  named in it) and a pip section of 50 packages (``tests/channel/pypi_index.bench_wheels``:
  small pure wheels, each fifth without dependencies, served from a local index on
  127.0.0.1), warm (conda archives' dist-info names and uv's cache filled): conda solve,
  then uv per platform, then the write. Target: <= 2 s.
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

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/build.py
# would shadow the `build` package conda-lock imports: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SPEC = "name: bench\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - numpy\n"
SERVER = ("jupyterhub-singleuser", "ipykernel")
LINUX = ("__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64")
TARGETS = {"lock (solve + write)": 0.5, "install warm": 1.0, "lock, 100 conda + 50 pip, warm": 2.0}
PIP_COUNT = 50


def jupyter_channel() -> Path:
    done = subprocess.run(
        [sys.executable, str(REPO / "tests/channel/build.py"), "--cached", "--jupyter"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def bench_lock(project: Path, inputs, repeat: int) -> dict[str, list[float]]:
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file

    from spawner.lock import condalock
    from spawner.lock.locking import lock_environment, plan_lock, solve

    lock_environment(project, inputs, progress=None)  # warm imports and repodata cache
    lock_path = project / "conda-lock.yml"
    results = {
        "lock (solve + write)": timed(
            lambda: lock_environment(project, inputs, progress=None), repeat
        )
    }
    plan = plan_lock(project, inputs)
    solved = solve(plan, inputs, progress=lambda _m: None, timeout=600)
    packages = [p for platform in plan.platforms for p in solved[platform]]

    def model():
        return condalock.make_lockfile(
            packages,
            content_hash=plan.content_hash,
            channels=plan.recorded_channels,
            platforms=plan.platforms,
            sources=["environment.yml"],
            custom_metadata=plan.custom_metadata,
        )

    scratch = project / "scratch.yml"
    results["  read spec + content hash"] = timed(lambda: plan_lock(project, inputs), repeat)
    results["  solve (worker incl. start)"] = timed(
        lambda: solve(plan, inputs, progress=lambda _m: None, timeout=600), repeat
    )
    results["  models + write"] = timed(lambda: condalock.write_lockfile(model(), scratch), repeat)
    results["baseline: conda-lock parse + write"] = timed(
        lambda: write_conda_lock_file(parse_conda_lock_file(lock_path), scratch, None), repeat
    )
    results["lockstep read (libyaml + conda-lock models)"] = timed(
        lambda: condalock.read_lockfile(lock_path), repeat
    )
    results["count"] = [float(len(packages))]
    return results


def bench_command(root: Path, channel: Path, repeat: int) -> list[float]:
    config = root / "lockstep_config.py"
    config.write_text(
        f"c.Lockstep.channel_urls = {{'conda-forge': {channel.as_uri()!r}}}\n"
        f"c.Lockstep.server_packages = {list(SERVER)!r}\n"
        f"c.Lockstep.cache_dir = {str(root / 'cache')!r}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "spawner.cli",
        "--config",
        str(config),
        "lock",
        "environments/bench",
    ]
    return timed(
        lambda: subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True), repeat
    )


def bench_install(root: Path, lockfile: Path, repeat: int) -> dict[str, list[float]]:
    """Time ``install_lock`` only: clearing caches and prefixes happens between timings."""
    from spawner.lock.install import install_lock

    cache = root / "pkgs"

    def once(prefix: Path) -> float:
        started = time.perf_counter()
        install_lock(
            lockfile,
            prefix,
            platform="linux-64",
            target_prefix="/opt/env",
            mirrors={},
            cache_dir=cache,
        )
        return time.perf_counter() - started

    results: dict[str, list[float]] = {"install cold": [], "install warm": []}
    for kind in results:
        for _ in range(repeat):
            if kind == "install cold":
                shutil.rmtree(cache, ignore_errors=True)
            prefix = root / "env"
            results[kind].append(once(prefix))
            shutil.rmtree(prefix)
    same = root / "env-same"
    once(same)
    results["re-install, same prefix"] = [once(same) for _ in range(repeat)]
    return results


def bench_pip_lock(root: Path, channel: Path, repeat: int) -> dict[str, list[float]]:
    """Lock 100 conda + 50 pip packages, warm (the first, untimed run fills the caches)."""
    from spawner.lock import condalock
    from spawner.lock.locking import LockInputs, lock_environment
    from spawner.lock.pypi import PipInputs
    from tests.channel.pypi_index import bench_wheels, serve_index, write_pages

    (root / "index" / "files").mkdir(parents=True)
    names = bench_wheels(root / "index" / "files", PIP_COUNT)
    write_pages(root / "index")
    project = root / "environments" / "bench-pip"
    project.mkdir(parents=True)
    deps = "".join(f"  - {d}\n" for d in SERVER)
    pip = "".join(f"    - {n}\n" for n in names)
    (project / "environment.yml").write_text(f"{SPEC}{deps}  - pip:\n{pip}")
    with serve_index(root / "index") as url:
        inputs = LockInputs(
            channel_urls={"conda-forge": channel.as_uri()},
            virtual_packages={"linux-64": LINUX},
            repodata_cache=root / "cache" / "repodata",
            pip=PipInputs(index_url=url, insecure_hosts=("127.0.0.1",),
                          cache_dir=root / "cache" / "pkgs"),
        )
        lock_environment(project, inputs, progress=None)
        times = timed(lambda: lock_environment(project, inputs, progress=None), repeat)
    model = condalock.read_lockfile(project / "conda-lock.yml")
    conda = sum(p.manager == "conda" for p in model.package)
    pips = sum(p.manager == "pip" for p in model.package)
    return {"lock, 100 conda + 50 pip, warm": times, "pip-count": [float(conda), float(pips)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from spawner.lock.locking import LockInputs

    channel = jupyter_channel()
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        root = Path(tmp)
        project = root / "environments" / "bench"
        project.mkdir(parents=True)
        (project / "environment.yml").write_text(SPEC)
        inputs = LockInputs(
            channel_urls={"conda-forge": channel.as_uri()},
            virtual_packages={"linux-64": LINUX},
            server_packages=SERVER,
            repodata_cache=root / "cache" / "repodata",
        )
        started = time.perf_counter()
        import conda_lock.lockfile  # noqa: F401 - measured: what every lockstep command pays
        import conda_lock.src_parser  # noqa: F401

        results = {"import conda-lock (once per process)": [time.perf_counter() - started]}
        results.update(bench_lock(project, inputs, args.repeat))
        results["`lockstep lock` command (fresh process)"] = bench_command(
            root, channel, args.repeat
        )
        results.update(bench_install(root, project / "conda-lock.yml", args.repeat))
        results.update(bench_pip_lock(root, channel, args.repeat))

    count = int(results.pop("count")[0])
    conda_count, pip_count = (int(x) for x in results.pop("pip-count"))
    print(f"Jupyter test spec: {count} packages, channel {channel}")
    print(f"mixed spec: {conda_count} conda + {pip_count} pip packages (local index)")
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.repeat} runs each\n"
    )
    print(f"{'':46} {'best':>8} {'median':>8}  target")
    for name, times in results.items():
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else f"<= {target} s " + ("ok" if min(times) <= target else "MISSED")
        )
        print(f"{name:46} {min(times):8.3f} {statistics.median(times):8.3f}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"packages": count, "seconds": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
