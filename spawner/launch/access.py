"""Who may launch which project at which stage: the decision both spawners share.

Engine-neutral and pure: functions over ``Project`` models, a ``Requester`` (user name,
hub groups, admin flag) and the stages that currently have an image. The Docker and the
Kubernetes spawner call the same functions, so membership, the 403s, the options form
and the parsing of ``user_options`` cannot drift between backends.

Rules
-----
- A member (listed user, or in a listed group) may launch the project; a hub admin may
  launch any project. Anyone else gets the same ``LaunchRefused`` 404 as for a project
  that does not exist ("no project you may launch is called ..."), listing only the
  projects they may launch: the answer never names a project's members, nor tells whether
  a project they may not see exists (issue 11, finding 8).
- A stage must be one of the site's stages (400 otherwise) and must hold an image
  (409 otherwise: "build or promote first"). Without a stage the most-promoted stage that
  has an image is used (``prod`` before ``qa`` before ``dev``): what people launch by
  default is what was approved.
- Messages never include registry credentials or digests of projects the user may not use.

It must not read files, talk to registries or import tornado; spawners turn
``LaunchRefused`` into ``web.HTTPError(refusal.status, str(refusal))``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.project import Project
from spawner.settings import unknown_stage

FORM_FIELD = "target"  # the one <select> of the options form, value "<project>/<stage>"


class LaunchRefused(LockstepError):
    """A launch the requester may not make; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Requester:
    """The person asking: hub user name, hub group names, admin flag."""

    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @classmethod
    def from_hub_user(cls, user) -> Requester:
        """From a JupyterHub ``User`` (``.name``, ``.admin``, ``.groups`` of ``Group``)."""
        raw = getattr(user, "groups", None) or ()
        groups = frozenset(getattr(g, "name", str(g)) for g in raw)
        return cls(name=user.name, groups=groups, admin=bool(getattr(user, "admin", False)))


@dataclass(frozen=True)
class Choice:
    """What to launch: a project and a stage."""

    project: str
    stage: str


def may_use(project: Project, who: Requester) -> bool:
    """True when ``who`` may launch ``project`` (member, or hub admin)."""
    return who.admin or project.is_member(who.name, who.groups)


def usable_projects(projects: Iterable[Project], who: Requester) -> list[Project]:
    """The projects ``who`` may launch, sorted by name."""
    return sorted((p for p in projects if may_use(p, who)), key=lambda p: p.name)


def check_project(projects: Mapping[str, Project], name: str, who: Requester) -> Project:
    """The project ``name`` if ``who`` may launch it, else ``LaunchRefused`` 404, worded
    the same whether ``name`` does not exist or ``who`` is not a member."""
    mine = [p.name for p in usable_projects(projects.values(), who)]
    if name not in projects or not may_use(projects[name], who):
        raise LaunchRefused(
            f"No project you may launch is called {name!r}. Projects you may launch: "
            f"{', '.join(mine) or '(none)'}. If you should have this one, ask its owner to "
            "add you under 'members:' in its project.yaml.", status=404)
    return projects[name]


def choose_stage(project: str, stage: str | None, *, stages: Sequence[str],
                 available: Sequence[str]) -> str:
    """The stage to launch: ``stage`` if it is known and has an image, else a refusal.

    ``stages`` is the site's ordered list; ``available`` the stages with an image now.
    """
    ready = [s for s in stages if s in set(available)]
    if stage in (None, ""):
        if not ready:
            raise LaunchRefused(
                f"Project {project!r} has no image at any stage yet. Build it with "
                f"`lockstep build {project}` (it then lands in {stages[0]!r}).", status=409)
        return ready[-1]
    if stage not in stages:
        raise LaunchRefused(unknown_stage(stage, stages), status=400)
    if stage not in ready:
        raise LaunchRefused(
            f"Project {project!r} has no image at stage {stage!r} yet"
            + (f" (it has: {', '.join(ready)})" if ready else "")
            + f". Promote one with `lockstep promote {project} --to {stage}`"
            f" or pick another stage.", status=409)
    return stage


def check_replay(projects: Mapping[str, Project], *, session_id: str, session_user: str,
                 session_project: str, who: Requester) -> Project:
    """The project of a recorded session ``who`` may run again (their own, or any for admins)."""
    if session_user != who.name and not who.admin:
        raise LaunchRefused(
            f"Session {session_id!r} was run by another user; you can run again only your "
            "own sessions (list them with `lockstep sessions`).", status=403)
    return check_project(projects, session_project, who)


def parse_options(formdata: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """``options_from_form``: the form's ``target=<project>/<stage>`` -> user_options."""
    target = (formdata.get(FORM_FIELD) or [""])[0].strip()
    if target:
        project, _, stage = target.partition("/")
        return {"project": project, "stage": stage} if stage else {"project": project}
    out = {k: (formdata.get(k) or [""])[0].strip() for k in ("project", "stage")}
    return {k: v for k, v in out.items() if v}


def parse_choice(user_options: Mapping[str, object] | None) -> tuple[str, str | None]:
    """``(project, stage or None)`` from user_options (form or REST API), or a 400.

    (``{"session": ID}``, running a recorded session again, is read by the spawner.)
    """
    options = dict(user_options or {})
    project = str(options.get("project") or "").strip()
    stage = str(options.get("stage") or "").strip() or None
    if not project:
        raise LaunchRefused(
            "Choose a project: pick one in the form, or send user_options "
            '{"project": "NAME", "stage": "dev"} to the REST API.', status=400)
    return project, stage


def render_form(projects: Iterable[Project], who: Requester,
                available: Mapping[str, Sequence[str]], stages: Sequence[str]) -> str:
    """The options form: one option per (usable project, stage with an image).

    ``available`` maps project name -> stages that hold an image. Returns an HTML
    fragment, escaped; an empty-state message when there is nothing to launch.
    """
    rows = []
    for project in usable_projects(projects, who):
        ready = [s for s in stages if s in set(available.get(project.name, ()))]
        for i, stage in enumerate(reversed(ready)):
            value = html.escape(f"{project.name}/{stage}", quote=True)
            label = html.escape(f"{project.name} ({stage})"
                                + (f" - {project.description}" if project.description else ""))
            selected = " selected" if not rows and i == 0 else ""
            rows.append(f'<option value="{value}"{selected}>{label}</option>')
    if not rows:
        return ('<p class="lockstep-empty">You are not a member of any project with a built '
                "image. Ask a project owner to add you to its project.yaml members.</p>")
    options = "\n    ".join(rows)
    return (f'<label for="lockstep-{FORM_FIELD}">Project and stage</label>\n'
            f'<select class="form-control" id="lockstep-{FORM_FIELD}" name="{FORM_FIELD}">\n'
            f"    {options}\n</select>")
