"""Generated data for the lockstep service's tests and benchmark: package lists, trail
records, sessions and projects, deterministic for a given size."""

from __future__ import annotations

import hashlib

from spawner.lock.package import LockedPackage
from spawner.project import Project
from spawner.promote.trail import AuditRecord, GateResult
from spawner.sessions import Session

STAGES = ("dev", "qa", "prod")


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def package(name: str, version: str, build: str = "h0_0", manager: str = "conda") -> LockedPackage:
    fn = f"{name}-{version}-{build}.conda"
    return LockedPackage(name=name, version=version, manager=manager, build_string=build,
                         url=f"https://conda.example.org/linux-64/{fn}",
                         sha256=hashlib.sha256(fn.encode()).hexdigest())


def locks(count: int = 300) -> tuple[list[LockedPackage], list[LockedPackage]]:
    """Two locks of ``count`` packages each: 10 removed, 10 added, 20 changed, pip and conda."""
    before = [package(f"pkg{i:04d}", "1.0", manager="pip" if i % 7 == 0 else "conda")
              for i in range(count)]
    after = [p if i % 15 else package(p.name, "1.1", manager=p.manager)
             for i, p in enumerate(before[10:])]
    after += [package(f"new{i:03d}", "0.1") for i in range(10)]
    return before, after


def records(count: int, project: str = "forecast") -> list[AuditRecord]:
    out = []
    for i in range(count):
        to_stage = STAGES[1 + i % 2]
        refused = i % 5 == 4
        out.append(AuditRecord(
            time=f"2026-01-{1 + i // 100 % 28:02d}T{i % 24:02d}:00:{i % 60:02d}.000Z",
            action="rollback" if i % 11 == 10 else "promote", project=project,
            user=f"user{i % 9}", to_stage=to_stage,
            outcome="refused" if refused else "promoted", digest=digest(f"img{i}"),
            from_stage=STAGES[STAGES.index(to_stage) - 1], previous_digest=digest(f"img{i-1}"),
            approved_by="lead" if to_stage == "prod" and not refused else None,
            gates=(GateResult("verify", "failed" if refused else "passed", 1.5),
                   GateResult("notebooks", "passed", 3.0))))
    return out


def sessions(count: int, users: int = 50, projects=("forecast", "vision")) -> list[Session]:
    out = []
    for i in range(count):
        out.append(Session(
            id=f"s{i:06d}", user=f"user{i % users}", project=projects[i % len(projects)],
            stage=STAGES[i % 3], digest=digest(f"img{i % 40}"),
            image=f"127.0.0.1:5000/lockstep/x@{digest(f'img{i % 40}')}",
            start=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
            stop="" if i % 50 == 0 else "2026-01-02T00:00:00.000000Z"))
    return out


def project(name: str, users=(), groups=(), **extra) -> Project:
    return Project(name=name, members={"users": list(users), "groups": list(groups)}, **extra)
