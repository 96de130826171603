"""The lockstep service's answer times: the page and the API with 1,000 trail records and
10,000 sessions, and the package diff of two 300-package locks.

Usage::

    .venv/bin/python benchmarks/service.py [--records 1000] [--sessions 10000] [--repeat 20]

The service runs in this process (tornado on a loopback port, ``spawner.hubservice.app``)
over a temporary ``data_dir`` whose ``audit.jsonl`` and ``sessions.jsonl`` hold generated
records in the journal format (``tests/unit/hubservice/servicedata.py``), read by the real
``Source``. Left out, and said so in the output: the hub's token check (``HubOAuth``
caches it per token) and registry reads (stage pointers are reused for
``c.Lockstep.stage_pointer_ttl``, image facts once per digest): stage images and packages
come from memory here. The service reads the trail and the session log once before it
takes requests (``Source.warm``, timed here as "start-up read"); "cold" is the first
request after that, "warm" the median of the rest. "after N appended sessions" is a page
request right after N new session events were appended (the log is read incrementally:
only the new lines are parsed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from traitlets.config import Config  # noqa: E402

from spawner import journal  # noqa: E402
from spawner.hubservice import handlers  # noqa: E402
from spawner.hubservice.app import make_app  # noqa: E402
from spawner.hubservice.identity import Identities  # noqa: E402
from spawner.hubservice.images import ImageInfo  # noqa: E402
from spawner.hubservice.packagediff import diff_packages  # noqa: E402
from spawner.hubservice.source import Source  # noqa: E402
from spawner.sessions import start_event, stop_event  # noqa: E402
from spawner.settings import Lockstep  # noqa: E402
from tests.unit.hubservice.servicedata import digest, locks, records, sessions  # noqa: E402

USER = {"name": "user1", "groups": ["analysts"], "admin": False}
ADMIN = {"name": "root", "groups": [], "admin": True}


class MemorySource(Source):
    """The real Source (catalog, trail, sessions from files) with registry reads in memory."""

    def __init__(self, settings, packages):
        super().__init__(settings)
        self._packages = packages

    async def stage_digests(self, project):
        return {"dev": digest("img1"), "qa": digest("img2")}

    async def stage_images(self, project):
        return {s: ImageInfo(f"r/{project}@{d}", d, "sha256:ab", "2026-01-01T00:00:00Z", 1 << 30,
                             90) for s, d in (await self.stage_digests(project)).items()}

    async def packages(self, reference):
        return self._packages[reference.endswith(digest("img2"))]


def write_site(root: Path, n_records: int, n_sessions: int) -> Lockstep:
    for name in ("forecast", "vision"):
        (root / "environments" / name).mkdir(parents=True)
        (root / "environments" / name / "project.yaml").write_text(
            f"name: {name}\ndescription: {name}\nmembers: {{groups: [analysts]}}\n")
    (root / "data").mkdir()
    trail = "".join(journal.encode(r.to_dict()) + "\n" for r in records(n_records))
    (root / "data" / "audit.jsonl").write_text(trail)
    lines = []
    for s in sessions(n_sessions):
        lines.append(journal.encode(start_event(s)))
        if s.stop:
            lines.append(journal.encode(stop_event(s, s.stop)))
    (root / "data" / "sessions.jsonl").write_text("\n".join(lines) + "\n")
    config = Config()
    config.Lockstep.environments_dir = str(root / "environments")
    config.Lockstep.data_dir = str(root / "data")
    return Lockstep(config=config)


async def measure(url: str, model: dict, repeat: int) -> tuple[float, float, int]:
    handlers.BaseHandler.get_current_user = lambda self: model  # the hub's check, left out
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(repeat):
            began = time.perf_counter()
            response = await client.get(url)
            times.append(time.perf_counter() - began)
            response.raise_for_status()
    return times[0], statistics.median(times[1:]), len(response.content)


async def run(args) -> None:
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        settings = write_site(Path(tmp), args.records, args.sessions)
        source = MemorySource(settings, locks(300))
        began = time.perf_counter()
        if hasattr(source, "warm"):
            source.warm()
        warmed = time.perf_counter() - began
        app = make_app(source, prefix="/services/lockstep/",
                       identities=Identities("http://127.0.0.1:9", "unused"))
        server = app.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        base = f"http://127.0.0.1:{port}/services/lockstep/"
        print(f"{args.records} trail records, {args.sessions} sessions; hub token check and "
              "registry reads left out (cached in the service)")
        print(f"  start-up read of trail and session log  {warmed * 1000:7.1f} ms")
        cases = [("page ?project=forecast", base + "?project=forecast", USER),
                 ("page as admin", base + "?project=forecast", ADMIN),
                 ("api/projects", base + "api/projects", USER),
                 ("api/projects/forecast", base + "api/projects/forecast", USER),
                 ("api/projects/forecast/diff", base + "api/projects/forecast/diff", USER),
                 ("api/projects/forecast/timeline", base + "api/projects/forecast/timeline",
                  USER),
                 ("api/sessions", base + "api/sessions", USER),
                 ("api/sessions as admin", base + "api/sessions", ADMIN)]
        for name, url, model in cases:
            cold, warm, size = await measure(url, model, args.repeat)
            print(f"  {name:34} cold {cold * 1000:7.1f} ms  warm {warm * 1000:7.1f} ms"
                  f"  ({size / 1024:.0f} KiB)")
        log = Path(settings.data_dir) / "sessions.jsonl"
        for added in (1, 100):
            for s in sessions(added):
                journal.append(log, start_event(replace(s, id=f"new{added}-{s.id}")))
            first, _, _ = await measure(base + "?project=forecast", USER, 2)
            print(f"  page after {added:3} appended sessions    {first * 1000:7.1f} ms")
        server.stop()
    before, after = locks(300)
    times = []
    for _ in range(args.repeat * 5):
        began = time.perf_counter()
        diff_packages(before, after).to_json()
        times.append(time.perf_counter() - began)
    print(f"  diff of two 300-package locks      median {statistics.median(times) * 1000:.2f} ms"
          f"  max {max(times) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
