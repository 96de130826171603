"""``lockstep prepull``: what the stages hold, as pre-puller values or a DaemonSet.

Reads every project's stage pointers from the registry (``spawner.launch.stages``, the
site's credentials) and writes, by digest:

* ``--format z2jh`` (default): a values file for Zero to JupyterHub's pre-puller
  (``prePuller.extraImages``), passed after the lockstep overlay on ``helm upgrade``;
* ``--format daemonset``: a DaemonSet for the standalone chart (``kubectl apply -f -``).

Run it after each promotion (or from the CI job that promotes); the output only changes
when a pointer moved. Nothing is applied to a cluster here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from spawner.errors import LockstepError
from spawner.kube.prepull import PAUSE_IMAGE, daemonset, z2jh_values
from spawner.launch.spec import ImageRef
from spawner.launch.stages import available_stages
from spawner.project import list_projects
from spawner.settings import unknown_stage


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepull",
        help="render the pre-puller (z2jh values or a DaemonSet) from the stage pointers",
        description="Read each project's stage pointers and write the images they hold, by "
        "digest, as z2jh prePuller.extraImages values (default) or a DaemonSet.",
    )
    parser.add_argument("--project", action="append", default=[], metavar="NAME",
                        help="only these projects (repeatable; default: every project)")
    parser.add_argument("--stage", action="append", default=[], metavar="STAGE",
                        help="only these stages (repeatable; default: every stage)")
    parser.add_argument("--format", choices=("z2jh", "daemonset"), default="z2jh",
                        help="z2jh values (default) or a DaemonSet for the standalone chart")
    parser.add_argument("--namespace", default="lockstep",
                        help="the DaemonSet's namespace (--format daemonset)")
    parser.add_argument("--pause-image", default=PAUSE_IMAGE,
                        help=f"the DaemonSet's long-running container (default {PAUSE_IMAGE})")
    parser.add_argument("--pull-secret", action="append", default=[], metavar="NAME",
                        help="imagePullSecrets for the DaemonSet (repeatable)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write here (atomically) instead of stdout")
    parser.set_defaults(func=run)


def stage_pointers(settings, projects=(), stages=()) -> dict[str, dict[str, ImageRef]]:
    """project -> stage -> image for every pointer that exists (registry reads)."""
    known = [p.name for p in list_projects(Path(settings.environments_dir))]
    unknown = sorted(set(projects) - set(known))
    if unknown:
        raise LockstepError(
            f"no project {', '.join(unknown)} in {settings.environments_dir} "
            f"(known: {', '.join(known) or 'none'}); pass a project name from there")
    bad = sorted(set(stages) - set(settings.stages))
    if bad:
        raise LockstepError(unknown_stage(bad[0], settings.stages))
    found: dict[str, dict[str, ImageRef]] = {}
    for name in projects or known:
        held = {s: ref for s, ref in available_stages(settings, name).items()
                if not stages or s in stages}
        if held:
            found[name] = held
    return found


HEADER = "# rendered by `lockstep prepull` from the stage pointers; do not edit\n"


def render_values(pointers) -> str:
    """The z2jh pre-puller values file for ``pointers``, as text."""
    return HEADER + yaml.safe_dump(z2jh_values(pointers), sort_keys=True)


def render(pointers, args) -> str:
    if args.format == "daemonset":
        doc = daemonset(pointers, namespace=args.namespace, pause_image=args.pause_image,
                        pull_secrets=tuple(args.pull_secret))
        return HEADER + yaml.safe_dump(doc, sort_keys=True)
    return render_values(pointers)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run(args, settings) -> int:
    text = render(stage_pointers(settings, args.project, args.stage), args)
    if not args.output:
        sys.stdout.write(text)
        return 0
    write_atomic(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
