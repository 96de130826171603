"""Spawn-to-ready time of ``LockstepDockerSpawner``, beside bare ``docker run`` and stock
``dockerspawner.DockerSpawner``, on the same image, in the same run.

Usage (as root: the spawner writes iptables rules)::

    .venv/bin/python benchmarks/spawn.py [--repeat 10] [--concurrent 20] [--json FILE]

Setup: a registry of its own on 127.0.0.1:5765 (``spawner.image.localregistry``, storage
kept in ``~/.cache/lockstep/bench-registry`` so a rerun pushes nothing), the offline Jupyter
channel (``tests/channel/build.py --cached --jupyter``), a project ``bench-spawn`` locked
(python=3.11 plus the server packages) and built by ``lockstep``'s own ``lock_environment``
and ``build_image``. Two real JupyterHubs (``tests/e2e/hubtools.Hub``: CHP, REST API) run
side by side: one with ``spawner.docker.hubconfig.configure`` (lockstep), one with the same
settings but ``DockerSpawner`` on the default bridge, the image by digest and
``/opt/env/bin/jupyterhub-singleuser``.

Measured interleaved (floor, lockstep, stock, then lockstep, stock, floor, ...) so that load
from other work on the machine falls on all three alike, after one untimed warm-up each
(pull, volumes, caches):

* ``ready``: ``POST /hub/api/users/<u>/server`` -> the Hub calls the server ready (the
  201 answer, or the ``ready`` event of the progress stream after a 202);
* ``proxy``: the same, then until ``GET /user/<u>/api`` through the proxy answers 200;
* floor: ``docker run -d`` of the image with the command and environment the stock Hub gave
  its container, until ``/user/<u>/api`` answers 200 at the container's address;
* concurrent: ``--concurrent`` users POST at once (a barrier); all must become ready (a
  server that does not is counted, printed, and left out of the figures). Round 1 is each
  user's first spawn (lockstep creates the home volumes then), round 2 a respawn. Bare
  ``docker run`` is measured the same way, for the machine's own limit; the Hub process's
  CPU time per round is printed too.

Another lockstep Hub on the same machine (a test run, the demo) rewrites the host-wide
firewall with its own Hub port (``spawner.docker.firewall``); the bench therefore admits its
project bridge to its Hub's port with one rule of its own, removed at the end.

Targets: lockstep p50 <= 1.15x floor, <= 0.6x stock DockerSpawner; concurrent: all ready
and p95 <= 3x p50; the Hub process's CPU seconds per concurrent round <= 1.2x stock's (the
Hub is one event loop for every user). Lockstep's per-step timeline (``lockstep <user>:
+N.NNs``) of the last single spawn is printed from the Hub log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# not this folder: benchmarks/build.py would shadow the `build` package conda-lock imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from hubtools import PASSWORD, TOKEN, Hub  # noqa: E402

PROJECT = "bench-spawn"
RUN = uuid.uuid4().hex[:8]
LABEL = "org.lockstep-bench.run"
SOLO = "solo"
REGISTRY = "127.0.0.1:5765"  # the bench's own registry: other runs' registries come and go
STORE = Path.home() / ".cache" / "lockstep" / "bench-registry"
TARGETS = {"floor": 1.15, "stock": 0.6, "spread": 3.0, "hub_cpu": 1.2}
HEADERS = {"Authorization": f"token {TOKEN}"}


# ---- setup -------------------------------------------------------------------------
def jupyter_channel() -> Path:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/channel/build.py"), "--cached", "--jupyter"],
        capture_output=True, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def build_project(site: Path, registry: str, users: list[str]) -> str:
    """Lock and build ``bench-spawn`` in ``site/environments``; its ``REPO@sha256:...``."""
    from traitlets.config import Config

    from spawner.image.build import build_image
    from spawner.lock.locking import LockInputs, lock_environment
    from spawner.settings import Lockstep

    project = site / "environments" / PROJECT
    project.mkdir(parents=True)
    (project / "environment.yml").write_text(
        f"name: {PROJECT}\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n")
    (project / "project.yaml").write_text(
        f"name: {PROJECT}\nmembers: {{users: [{', '.join(users)}]}}\n")
    config = Config()
    config.Lockstep.registry = f"{registry}/lockstep"
    config.Lockstep.data_dir = str(site / "state")
    config.Lockstep.environments_dir = str(site / "environments")
    config.Lockstep.channel_urls = {"conda-forge": jupyter_channel().as_uri()}
    settings = Lockstep(config=config)
    lock_environment(project, LockInputs.from_settings(settings), progress=None)
    return build_image(project, settings).reference


def bridge_gateway(docker_api) -> str:
    """The default bridge's gateway (Docker lists only its subnet: the first host then)."""
    import ipaddress

    config = docker_api.inspect_network("bridge")["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def lockstep_hub(site: Path, registry: str, users: list[str]) -> Hub:
    (site / "data").mkdir(exist_ok=True)
    hub = Hub(site, registry)
    with open(site / "jupyterhub_config.py", "a") as config:
        config.write(f"c.Authenticator.allowed_users |= {set(users)!r}\n"
                     f"c.LockstepDockerSpawner.extra_labels = {{{LABEL!r}: {RUN!r}}}\n"
                     'c.JupyterHub.log_level = "INFO"\n')
    return hub


def stock_hub(root: Path, registry: str, image: str, gateway: str, users: list[str]) -> Hub:
    """A Hub with the same ``configure`` settings, but stock DockerSpawner on ``bridge``."""
    (root / "environments").mkdir(parents=True)
    (root / "data").mkdir()
    hub = Hub(root, registry)
    state = root / "state"
    (root / "jupyterhub_config.py").write_text(f"""
from spawner.docker.hubconfig import configure
configure(c, environments_dir={str(root / 'environments')!r}, data_roots=[],
          data_dir={str(state)!r}, users={{"bench": {users!r}}}, admins=["admin"],
          password={PASSWORD!r}, api_token={TOKEN!r}, state_dir={str(state)!r},
          public_port={hub.public_port}, hub_port={hub.hub_port},
          proxy_api_port={hub.api_port}, idle_timeout=3600)
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = {image!r}
c.DockerSpawner.cmd = ["/opt/env/bin/jupyterhub-singleuser"]
c.DockerSpawner.network_name = "bridge"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.pull_policy = "ifnotpresent"
c.DockerSpawner.name_template = "bench-stock-{{username}}"
c.DockerSpawner.hub_connect_url = "http://{gateway}:{hub.hub_port}"
c.DockerSpawner.extra_create_kwargs = {{"labels": {{{LABEL!r}: {RUN!r}}}}}
c.JupyterHub.log_level = "INFO"
""")
    return hub


# ---- one spawn ---------------------------------------------------------------------
def wait_http(url: str, timeout: float = 120) -> None:
    """Poll ``url`` every 20 ms until it answers 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, follow_redirects=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer 200 in {timeout}s")


def wait_ready_event(hub: Hub, user: str) -> None:
    """Read the spawn's progress stream until its ``ready`` (or ``failed``) event."""
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    with httpx.stream("GET", url, headers=HEADERS, timeout=600) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise RuntimeError(f"spawn of {user} failed: {event.get('message')}")
    server = hub.server(user)
    if not (server and server.get("ready")):
        raise RuntimeError(f"spawn of {user} ended without being ready:\n{hub.log_tail(40)}")


def spawn(hub: Hub, user: str, options: dict) -> tuple[float, float]:
    """(seconds to ready, seconds to answering through the proxy), both from the POST."""
    began = time.monotonic()
    response = hub.api("POST", f"/users/{user}/server", options)
    if response.status_code == 202:
        wait_ready_event(hub, user)
    elif response.status_code != 201:
        raise RuntimeError(f"POST for {user}: {response.status_code} {response.text}")
    ready = time.monotonic() - began
    wait_http(f"{hub.url}/user/{user}/api")
    return ready, time.monotonic() - began


def stop_all(hub: Hub, users: list[str]) -> None:
    for user in users:
        hub.api("DELETE", f"/users/{user}/server")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = hub.api("GET", "/users").json()
        if not any(u["name"] in users and u.get("servers") for u in listed):
            return
        time.sleep(0.3)
    raise RuntimeError(f"servers of {users} did not stop in 120s")


def floor_run(docker_api, image: str, env_file: Path, prefix: str, name: str) -> float:
    """``docker run`` of the image with a Hub's env, until the server answers; seconds."""
    began = time.monotonic()
    cid = subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "--label", f"{LABEL}={RUN}",
         "--env-file", str(env_file), image, "/opt/env/bin/jupyterhub-singleuser"],
        capture_output=True, text=True, check=True).stdout.strip()
    ip = docker_api.inspect_container(cid)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    wait_http(f"http://{ip}:8888{prefix}api")
    seconds = time.monotonic() - began
    docker_api.remove_container(cid, force=True)
    return seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def concurrently(fn, args: list) -> list:
    """Run ``fn(*a)`` for every ``a`` in threads released together by a barrier."""
    barrier = threading.Barrier(len(args))

    def go(a):
        barrier.wait()
        return fn(*a)

    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(go, args))


# ---- report ------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0, **{k: math.nan for k in ("p50", "p95", "min", "max")}}
    return {"n": len(values), "p50": statistics.median(values), "p95": p95(values),
            "min": min(values), "max": max(values)}


def timeline(log: Path, user: str) -> list[str]:
    """The last spawn's ``lockstep <user>: +N.NNs <step>`` lines, and the Hub's total."""
    lines = log.read_text(errors="replace").splitlines()
    mark = f"lockstep {user}: +"
    starts = [i for i, line in enumerate(lines) if mark in line and f"{PROJECT} at " in line]
    if not starts:
        return []
    picked = [line for line in lines[starts[-1]:]
              if mark in line or f"User {user} took" in line]
    return [re.sub(r"^.*?(lockstep |User )", r"\1", line) for line in picked]


def paired(mine: list[float], theirs: list[float]) -> float:
    """Median of the per-round ratios (rounds ran back to back, under the same load)."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def verdict(value: float, target: float) -> str:
    return f"(target <= {target}x) {'ok' if value <= target else 'MISSED'}"


def print_targets(results: dict, n: int) -> None:
    rows, times = results["rows"], results["times"]
    floor = rows["floor: docker run"]["p50"]
    print("\ntargets (p50 of the runs; 'paired': median of each round's own ratio)")
    for kind in ("ready", "proxy"):
        mine, theirs = rows[f"lockstep: {kind}"]["p50"], rows[f"stock: {kind}"]["p50"]
        paired_floor = paired(times[f"lockstep: {kind}"], times["floor: docker run"])
        paired_stock = paired(times[f"lockstep: {kind}"], times[f"stock: {kind}"])
        print(f"  lockstep {kind} / floor = {mine / floor:4.2f}x, paired {paired_floor:4.2f}x "
              + verdict(mine / floor, TARGETS["floor"]))
        print(f"  lockstep {kind} / stock {kind} = {mine / theirs:4.2f}x, paired "
              f"{paired_stock:4.2f}x " + verdict(mine / theirs, TARGETS["stock"]))
    for label, mine in results["hub_cpu"].items():
        if label.startswith("lockstep"):
            theirs = results["hub_cpu"].get(label.replace("lockstep", "stock"), math.nan)
            ratio = mine / theirs if theirs else math.nan
            print(f"  Hub CPU, {label}: {mine:.2f}s / stock's {theirs:.2f}s = {ratio:4.2f}x "
                  + verdict(ratio, TARGETS["hub_cpu"]))
    for label, row in rows.items():
        if "concurrent" in label and label.startswith("lockstep") and row["n"]:
            spread = row["p95"] / row["p50"]
            ok = spread <= TARGETS["spread"] and row["n"] == n
            stock = rows[label.replace("lockstep", "stock")]["p50"]
            print(f"  {label}: {row['n']}/{n} ready, p95/p50 = {spread:4.2f}x (target <= "
                  f"{TARGETS['spread']}x, all ready) {'ok' if ok else 'MISSED'}; "
                  f"p50 / stock's = {row['p50'] / stock:4.2f}x")


def print_report(results: dict, args) -> None:
    before, after = results["load"]
    print(f"\nspawn-to-ready, {os.cpu_count()} CPUs (load average {before[0]:.1f} before, "
          f"{after[0]:.1f} after), {args.repeat} single spawns each (interleaved), "
          f"{args.concurrent} concurrent; seconds")
    print(f"{'':34}{'n':>4}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}")
    for label, row in results["rows"].items():
        print(f"{label:34}{row['n']:>4}" + "".join(
            f"{row[k]:>9.2f}" for k in ("p50", "p95", "min", "max")))
    for label, seconds in results["hub_cpu"].items():
        print(f"Hub CPU, {label}: {seconds:.1f}s")
    print_targets(results, args.concurrent)
    if results["timeline"]:
        print("\nlockstep timeline of the last single spawn (Hub log):")
        for line in results["timeline"]:
            print(f"  {line}")


# ---- run ---------------------------------------------------------------------------
def admit_hub(port: int) -> list[str]:
    """Let the bench project's bridge reach this Hub's port, above lockstep's own chain.

    ``sync_firewall`` keeps one host-wide list of Hub ports; another lockstep Hub on this
    machine (a test run, the demo) rewrites it with its own port, and then
    jupyterhub-singleuser, which calls its Hub before it serves, stalls. Re-inserted first
    in INPUT before each lockstep spawn (untimed); removed at the end.
    """
    from spawner.docker.firewall import bridge_name

    rule = ["INPUT", "-i", bridge_name(PROJECT), "-p", "tcp", "-m", "tcp", "--dport",
            str(port), "-j", "ACCEPT"]
    while subprocess.run(["iptables", "-w", "5", "-D", *rule], capture_output=True).returncode == 0:
        pass
    subprocess.run(["iptables", "-w", "5", "-I", rule[0], "1", *rule[1:]], check=True)
    return rule


class Bench:
    """The two Hubs, the image, and the floor's ``docker run`` inputs."""

    def __init__(self, work: Path, docker_api, image: str, users: list[str]):
        self.work, self.docker, self.image, self.users = work, docker_api, image, users
        everyone = [SOLO, *users]
        self.ours = lockstep_hub(work / "lockstep", REGISTRY, everyone)
        self.stock = stock_hub(work / "stock", REGISTRY, image, bridge_gateway(docker_api),
                               everyone)
        self.kinds = {"lockstep": (self.ours, {"project": PROJECT, "stage": "dev"}),
                      "stock": (self.stock, {})}
        self.env_file = work / "floor.env"
        self.prefix = ""
        self.rule: list[str] = []

    def spawn(self, kind: str, user: str) -> tuple[float, float]:
        hub, options = self.kinds[kind]
        return spawn(hub, user, options)

    def try_spawn(self, kind: str, user: str) -> tuple[float, float] | None:
        """``spawn``, or None (with the reason printed) when the server did not come up."""
        try:
            return self.spawn(kind, user)
        except RuntimeError as exc:
            print(f"  {kind} {user}: {str(exc).splitlines()[0]}", flush=True)
            return None

    def floor(self, name: str) -> float:
        return floor_run(self.docker, self.image, self.env_file, self.prefix, name)

    def warm_up(self) -> None:
        """One untimed spawn each (image check, volumes, caches); the floor's env."""
        self.rule = admit_hub(self.ours.hub_port)
        for kind in self.kinds:
            self.spawn(kind, SOLO)
        env = self.docker.inspect_container(f"bench-stock-{SOLO}")["Config"]["Env"]
        self.env_file.write_text("".join(f"{line}\n" for line in env))
        self.prefix = next(v.split("=", 1)[1] for v in env
                           if v.startswith("JUPYTERHUB_SERVICE_PREFIX="))
        for hub, _ in self.kinds.values():
            stop_all(hub, [SOLO])
        self.floor(f"bench-floor-{RUN}")

    def singles(self, repeat: int, times: dict[str, list[float]]) -> None:
        """``repeat`` rounds of floor, lockstep and stock back to back, the order rotated
        each round so that none always follows another's teardown."""
        order = ["floor", *self.kinds]
        for i in range(repeat):
            for kind in order[i % 3:] + order[:i % 3]:
                if kind == "floor":
                    times.setdefault("floor: docker run", []).append(
                        self.floor(f"bench-floor-{RUN}"))
                    continue
                if kind == "lockstep":
                    admit_hub(self.ours.hub_port)
                ready, proxy = self.spawn(kind, SOLO)
                times.setdefault(f"{kind}: ready", []).append(ready)
                times.setdefault(f"{kind}: proxy", []).append(proxy)
                stop_all(self.kinds[kind][0], [SOLO])
            print(f"  single {i + 1}/{repeat}: " + ", ".join(
                f"{k} {v[-1]:.2f}" for k, v in times.items()), flush=True)

    def concurrent(self, times: dict[str, list[float]], hub_cpu: dict[str, float]) -> None:
        """All users at once: bare docker run, then two rounds of each spawner."""
        n = len(self.users)
        times[f"floor: {n} concurrent docker run"] = concurrently(
            self.floor, [(f"bench-floor-{RUN}-{k}",) for k in range(n)])
        for rnd in (1, 2):
            for kind, (hub, _) in self.kinds.items():
                if kind == "lockstep":
                    admit_hub(self.ours.hub_port)
                cpu = cpu_seconds(hub.proc.pid)
                done = [d for d in concurrently(self.try_spawn, [(kind, u) for u in self.users])
                        if d is not None]
                times[f"{kind}: {n} concurrent r{rnd} ready"] = [r for r, _ in done]
                times[f"{kind}: {n} concurrent r{rnd} proxy"] = [p for _, p in done]
                cpu = hub_cpu[f"{kind}, {n} concurrent r{rnd}"] = cpu_seconds(hub.proc.pid) - cpu
                print(f"  {n} concurrent, round {rnd}, {kind}: {len(done)} ready, p50 "
                      f"{statistics.median([r for r, _ in done] or [math.nan]):.2f}, "
                      f"Hub CPU {cpu:.1f}s", flush=True)
                stop_all(hub, self.users)

    def run(self, repeat: int) -> dict:
        hubs = (self.ours, self.stock)
        times: dict[str, list[float]] = {}
        hub_cpu: dict[str, float] = {}
        try:
            for hub in hubs:
                hub.start()
            self.warm_up()
            self.singles(repeat, times)
            trail = timeline(self.ours.log_path, SOLO)
            self.concurrent(times, hub_cpu)
        except Exception:
            for hub in hubs:
                print(f"\n----- {hub.root.name} hub log (tail) -----\n{hub.log_tail(60)}")
            raise
        finally:
            for hub in hubs:
                hub.stop()
            while self.rule and subprocess.run(["iptables", "-w", "5", "-D", *self.rule],
                                               capture_output=True).returncode == 0:
                pass
        return {"image": self.image, "rows": {k: summary(v) for k, v in times.items()},
                "times": times, "hub_cpu": hub_cpu, "timeline": trail}


def cleanup(docker_api) -> None:
    from spawner.docker import engine as dockerops

    for container in docker_api.containers(all=True, filters={"label": f"{LABEL}={RUN}"}):
        dockerops.remove_container(docker_api, container["Id"])
    project = f"org.lockstep.project={PROJECT}"
    for container in docker_api.containers(all=True, filters={"label": project}):
        dockerops.remove_container(docker_api, container["Id"])
    for net in docker_api.networks(filters={"label": project}):
        docker_api.remove_network(net["Id"])
    for volume in (docker_api.volumes(filters={"label": project}) or {}).get("Volumes") or []:
        docker_api.remove_volume(volume["Name"], force=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="single spawns of each kind")
    parser.add_argument("--concurrent", type=int, default=20, help="users spawning at once")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (hub logs)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("configurable-http-proxy"):
        print("needs root (iptables) and configurable-http-proxy on PATH", file=sys.stderr)
        return 2
    import docker

    from spawner.image import localregistry

    docker_api = docker.APIClient(version="auto", timeout=120)
    work = Path(tempfile.mkdtemp(prefix="lockstep-bench-spawn-"))
    users = [f"b{i:02d}" for i in range(args.concurrent)]
    load = os.getloadavg()
    started = localregistry.start(STORE, REGISTRY)
    try:
        print("locking and building the image ...", flush=True)
        image = build_project(work / "lockstep", REGISTRY, [SOLO, *users])
        print(f"image {image}", flush=True)
        docker_api.pull(image.partition("@")[0], tag=image.partition("@")[2])
        results = Bench(work, docker_api, image, users).run(args.repeat)
    finally:
        cleanup(docker_api)
        if started.managed and started.root == str(STORE):
            localregistry.stop(STORE, REGISTRY)
        if args.keep:
            print(f"work folder (hub logs): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load"] = [load, os.getloadavg()]
    print_report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
