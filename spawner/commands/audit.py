"""``lockstep audit``: check lockstep's containers against CIS Docker Benchmark section 5,
and lockstep's networks and host firewall (``spawner.docker.netaudit``: icc off, CIS 2.1;
IPv6 off and filtered, firewall chains present, bridge netfilter on, which have no CIS id).

Lists the containers labelled ``org.lockstep.managed`` (running ones; ``--all`` adds
stopped and created ones; ``--project`` / ``--label`` narrow the list), inspects each,
asks ``docker info`` whether the host has AppArmor and seccomp, and runs the pure checks
of ``spawner.docker.cis`` over them. Prints one row per container x check, or with ``--json``
one object ``{"host", "containers", "results", "failed"}``. The network and host rows
(``kind`` ``network``/``host``) come with every audit not narrowed by ``--label``;
``--project`` narrows them to that project's network.

Exit status: 0 when no check failed (``n/a`` and documented ``exception`` rows do not
fail), 1 when at least one did, 2 when the engine cannot be asked.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from spawner.docker import cis as audit
from spawner.docker import engine, firewall, netaudit
from spawner.docker.site import load_docker_site
from spawner.errors import LockstepError
from spawner.labels import MANAGED, PROJECT, selector

COLUMNS = ("container", "cis", "check", "status", "detail")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check lockstep containers against the CIS Docker Benchmark (section 5)",
        description="Check every running lockstep container (label org.lockstep.managed) "
        "against the container-runtime section of the CIS Docker Benchmark: capabilities, "
        "privileged, host paths and the engine socket, namespaces, limits, read-only root, "
        "no-new-privileges, seccomp, AppArmor, ports, restart policy. Exits 1 if any check "
        "fails. Examples:\n"
        "  lockstep audit\n"
        "  lockstep audit --all --json\n"
        "  lockstep audit --project forecast",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--all", action="store_true",
                        help="also audit stopped and created containers (docker ps --all)")
    parser.add_argument("--project", metavar="P", help="only containers of project P")
    parser.add_argument("--label", metavar="KEY=VALUE", action="append", default=[],
                        help="only containers with this label as well (repeatable)")
    parser.set_defaults(func=run)


def label_filters(args) -> list[str]:
    """The engine's ``label`` filter: managed, plus ``--project`` and each ``--label``."""
    labels = [MANAGED]
    if args.project:
        labels.append(selector(PROJECT, args.project))
    for label in args.label:
        if not label or label.startswith("="):
            raise LockstepError(f"--label {label!r} names no label; write KEY or KEY=VALUE, "
                                "e.g. --label org.lockstep.kind=service")
        labels.append(label)
    return labels


def inspect_containers(labels: list[str], *, include_stopped: bool) -> tuple[list[dict],
                                                                               audit.HostFacts]:
    """``docker inspect`` of each matching container, and the host's facts."""
    api = engine.connect(timeout=60)
    try:
        host = audit.host_facts(engine.info(api))
        infos = []
        for listed in engine.containers(api, labels=labels, stopped=include_stopped):
            info = engine.inspect_container(api, listed["Id"])
            if info is not None:  # else removed since it was listed
                infos.append(info)
    finally:
        api.close()
    return infos, host


def container_row(info: dict[str, Any]) -> dict[str, str]:
    labels = (info.get("Config") or {}).get("Labels") or {}
    return {
        "name": str(info.get("Name") or "").lstrip("/"),
        "id": str(info.get("Id", ""))[:12],
        "project": labels.get(PROJECT, ""),
        "kind": audit.container_kind(labels),
        "runtime": str((info.get("HostConfig") or {}).get("Runtime") or ""),
        "state": str((info.get("State") or {}).get("Status") or ""),
        "image": str((info.get("Config") or {}).get("Image") or ""),
    }


def print_table(results: list[audit.Result], containers: int) -> None:
    rows = [tuple(c.upper() for c in COLUMNS)]
    rows += [tuple(str(getattr(r, c)) for c in COLUMNS) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    failed = audit.failures(results)
    names = sorted({r.container for r in failed})
    others = len(results) - containers * len(audit.CHECKS)
    print(f"\n{containers} container(s) x {len(audit.CHECKS)} checks"
          + (f" and {others} network/host checks" if others else "")
          + f": {len(failed)} failed" + (f" (in {', '.join(names)})" if names else ""))


def network_results(args, settings) -> list[audit.Result]:
    """The network and host-firewall rows (none when ``--label`` narrows the audit)."""
    if args.label:
        return []
    api = engine.connect(timeout=60)
    try:
        networks = engine.lockstep_networks(api)
    finally:
        api.close()
    if args.project:
        networks = [n for n in networks if (n.get("Labels") or {}).get(PROJECT) == args.project]
    facts = firewall.facts(enabled=load_docker_site(settings).firewall)
    return netaudit.audit_networks(networks, facts)


def run(args, settings) -> int:
    infos, host = inspect_containers(label_filters(args), include_stopped=args.all)
    results = audit.audit(infos, host=host) + network_results(args, settings)
    failed = audit.failures(results)
    if args.json:
        print(json.dumps({
            "host": asdict(host),
            "containers": sorted((container_row(i) for i in infos), key=lambda c: c["name"]),
            "results": [r.to_json() for r in results],
            "failed": len(failed),
        }, sort_keys=True))
    elif not results:
        print("no " + ("" if args.all else "running ") + "lockstep containers to audit "
              f"(label filter: {', '.join(label_filters(args))})")
    else:
        print_table(results, len(infos))
    return 1 if failed else 0
