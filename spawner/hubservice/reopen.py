"""Reopen a notebook, or a past session, on the exact image it ran: a named server of the
requesting user started through the hub's REST API with ``{"project", "digest"}`` (or
``{"session"}``) as ``user_options``, and the address to land on.

* ``POST api/reopen {"project", "location", "path"}``: the notebook is looked up in the
  user's own folders of the project (``notebooks``), and the digest is the one its
  ``metadata.lockstep`` names: never a digest from the request;
* ``{"project", "digest"}``: that digest (what Kubernetes sites use, where the service
  cannot read volumes);
* ``{"session"}``: one of the user's own recorded sessions.

Before anything starts: the project must be visible to the user (404 otherwise, worded
as for a project that does not exist), the session must be theirs, and the digest must be
one some stage of the project has held (a stage points at it now, or the trail records a
move of it) unless the site sets ``c.Lockstep.allow_any_digest``; the spawner checks
the same again. The server is started with the *user's* token (their OAuth cookie's
token, which ``service_config`` lets carry ``servers!user``, or their API token): the
service holds no right to start anyone's server, so a user can only ever start their own.

The server is named after project and digest (``server_name``), so reopening the same
digest twice lands on the one server. Where it lands (``lab_path``) follows what the spawner
gives that server (``launch.landing.has_lab``, the same function, with the labels of the
image's config in the registry): an image known to have JupyterLab (its build wrote the
``org.lockstep.jupyterlab`` label, so also an image of an older lock than the project's
current one; or, for an image built before that label, it was built from the project's
current lock, which pins ``jupyterlab``) gets the root ``/``, so a workspace notebook
(every server of the project mounts the workspace) opens at ``lab/tree/<workspace>/<path>``.
Anything else lands on the server's start page, and the answer's ``note`` says why: a
notebook in the home folder (the home of the user's default server of the project; a named
server has a home of its own, so the notebook is not in it: copy it into the workspace to
open it on its image), or an image not known to have Lab (its server's root is its own
home, the workspace is outside it).
A site that sets ``c.Spawner.notebook_dir`` or ``default_url`` keeps its choice in the
spawner, which this service cannot see: there the address may name a folder the server
does not show.

Pure apart from ``ServerStarter`` (httpx to the hub) and the async functions (reads through
``Source``, the project folder's facts; ``reopen`` awaits the start). It must not render
HTML or read request bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from spawner.errors import LockstepError
from spawner.hubservice import hubapi
from spawner.hubservice import notebooks as nbscan
from spawner.hubservice.source import Source
from spawner.hubservice.visibility import BadRequest, NotVisible, visible_project
from spawner.labels import JUPYTERLAB
from spawner.launch import landing as server_landing
from spawner.launch.access import Requester
from spawner.launch.projectfacts import facts_for
from spawner.promote.trail import held_digests


class Refused(LockstepError):
    """A reopen the rules do not allow (403)."""

    status = 403


class HubRefused(LockstepError):
    """The hub did not start the server; ``status`` is the hub's."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """What to start: the project, the digest, the ``user_options``, and the notebook
    (its folder, ``home`` or ``workspace``, and its path there; '' for a session or digest)."""

    project: str
    digest: str
    options: dict
    path: str = ""
    location: str = "home"


def server_name(project: str, digest: str) -> str:
    """``<project>-<12 hex of the digest>``: one named server per project and digest."""
    return f"{project}-{digest.partition(':')[2][:12]}"


def landing(hub_base: str, user: str, server: str, path: str) -> str:
    """The address to open: Lab's view of ``path`` (relative to the server's root folder,
    from ``lab_path``), or the server's start page when ``path`` is ''."""
    root = f"{hub_base.rstrip('/')}/user/{quote(user, safe='')}/{quote(server, safe='')}/"
    return root + "lab/tree/" + quote(path) if path else root


def lab_path(project, location: str, path: str, has_lab: bool) -> str:
    """Where a reopened server of ``project`` shows the notebook ``location``/``path``,
    relative to its root; '' when it cannot (the server's start page instead). Only a
    server the spawner gives the root ``/`` (``launch.landing``: ``has_lab``) shows the
    workspace; a ``home`` notebook belongs to the user's default server of the project
    (``notebooks.folders``), whose home no named server mounts (``docker.render.for_server``)."""
    if location != "workspace" or not path or not project.workspace.enabled:
        return ""
    if server_landing.landing_env(project, has_lab=has_lab).get(server_landing.ROOT_VAR) != "/":
        return ""
    return f"{project.workspace.target.strip('/')}/{path}"


def landing_note(project, location: str, path: str, has_lab: bool) -> str:
    """Why a notebook's reopen lands on the server's start page ('' when it opens)."""
    if not path or lab_path(project, location, path, has_lab):
        return ""
    if location == "home":
        return (
            f"{path} is in the home folder of your default {project.name} server; a reopened "
            "server has a home of its own, so it is not there: copy it into the workspace "
            "and reopen it from there to open it on this image"
        )
    return (
        "this image is not known to have JupyterLab (its build recorded none, and it was "
        f"not built from the current lock of {project.name}), so its server opens on its "
        "own home; the notebook is at "
        f"{project.workspace.target.rstrip('/')}/{path} in it"
    )


def check_held(digest: str, project: str, held: set[str], allow_any: bool) -> None:
    """Refuse a digest no stage of ``project`` ever held (unless the site allows any)."""
    if not allow_any and digest not in held:
        raise Refused(
            f"{digest} was never on a stage of {project!r} (no stage points at it "
            "and the trail records no move of it), so it cannot be reopened; "
            "open the notebook on a stage instead, or ask the site to set "
            "c.Lockstep.allow_any_digest = True."
        )


def pick_notebook(
    found: Sequence[nbscan.Notebook], project: str, location: str, path: str
) -> nbscan.Notebook:
    """The notebook at ``location``/``path`` that records a digest of ``project``."""
    notebook = next((n for n in found if (n.location, n.path) == (location, path)), None)
    if notebook is None:
        raise NotVisible(
            f"there is no notebook {path!r} in your {location} folder of "
            f"{project!r}; GET api/projects/{project}/notebooks lists them"
        )
    if not notebook.digest:
        raise BadRequest(
            f"{path!r} does not record the image it was saved with (it was "
            "saved before lockstep recorded it, or outside a lockstep server); "
            "open it on a stage instead"
        )
    if notebook.project != project:
        raise BadRequest(
            f"{path!r} was saved in project {notebook.project!r}, not "
            f"{project!r}; copy it into that project's folder to reopen it"
        )
    return notebook


class ServerStarter:
    """Starts a user's named server through the hub REST API, with the user's token."""

    def __init__(self, api_url: str, timeout: float = 30.0):
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    async def start(self, token: str, user: str, server: str, options: dict) -> str:
        """``"starting"`` or ``"running"`` (the server already runs); ``HubRefused``."""
        path = f"users/{quote(user, safe='')}/servers/{quote(server, safe='')}"
        body = {"user_options": options, "display_name": server}
        try:
            async with hubapi.client(self.api_url, token, timeout=self.timeout) as client:
                response = await client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise HubRefused(
                f"the hub did not answer the start of {server} ({exc}); try again in a moment", 502
            ) from None
        if response.status_code in (201, 202):
            return "starting"
        text = _message(response)
        if response.status_code == 400 and "already running" in text:
            return "running"
        if response.status_code == 403:
            raise HubRefused(
                "your login does not allow the service to start your servers "
                f"({text}); log out of the hub and in again, or use an API "
                "token with the servers scope",
                403,
            )
        raise HubRefused(
            f"the hub refused to start {server}: {text}",
            response.status_code if response.status_code < 500 else 502,
        )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)[:300]
    except ValueError:
        return response.text[:300]


async def held(source: Source, project: str) -> set[str]:
    """Digests a stage of ``project`` holds now or the trail says it held."""
    now = await source.stage_digests(project)
    records = await asyncio.to_thread(source.trail, project)
    return set(now.values()) | held_digests(records, project=project)


async def scan_images(source: Source, project: str) -> list[str]:
    """Images of ``project`` that may be on this host: the stages' now, then those of
    recorded sessions, newest first (``notebooks.scan`` uses the first one present)."""
    stages = await source.pointers.stage_images(source.settings, project)
    sessions = await asyncio.to_thread(source.sessions)
    recent = sorted(
        (s for s in sessions if s.project == project and s.image),
        key=lambda s: s.start,
        reverse=True,
    )
    return list(
        dict.fromkeys([*(ref.reference for ref in stages.values()), *(s.image for s in recent)])
    )


async def serves_lab(source: Source, project: str, reference: str) -> bool:
    """What the spawner decides for a server of ``reference`` (``launch.landing.has_lab``):
    the image's JupyterLab label, else its lock hash is the project's current lock and that
    lock pins JupyterLab."""
    info = await asyncio.to_thread(source.images.info, reference)
    facts = (await facts_for([project], source.settings.environments_dir))[project]
    return server_landing.has_lab({JUPYTERLAB: info.jupyterlab}, facts, info.lock_hash)


async def list_notebooks(source: Source, who: Requester, name: str) -> dict:
    """The answer of ``GET api/projects/{name}/notebooks``."""
    project = visible_project(source.catalog().projects, name, who)
    found = await asyncio.to_thread(
        nbscan.scan,
        project.name,
        nbscan.folders(project, who.name),
        await scan_images(source, project.name),
    )
    ok = await held(source, project.name)
    rows = []
    for notebook in found:
        row = notebook.to_json()
        row["reopen"] = (
            {"project": project.name, "location": notebook.location, "path": notebook.path}
            if notebook.digest and notebook.project == project.name
            else None
        )
        row["held"] = bool(notebook.digest) and notebook.digest in ok
        rows.append(row)
    return {
        "project": project.name,
        "user": who.name,
        "notebooks": rows,
        "allow_any_digest": bool(source.settings.allow_any_digest),
    }


async def target_for(source: Source, who: Requester, params: dict[str, str]) -> Target:
    """What ``params`` ask to reopen, checked (see the module's rules)."""
    if params.get("session"):
        session = next(
            (
                s
                for s in await asyncio.to_thread(source.sessions)
                if s.id == params["session"] and s.user == who.name
            ),
            None,
        )
        if session is None:
            raise NotVisible(
                f"you have no session {params['session']!r}; GET api/sessions lists yours"
            )
        visible_project(source.catalog().projects, session.project, who)
        return Target(session.project, session.digest, {"session": session.id})
    name = params.get("project", "")
    if not name:
        raise BadRequest(
            'send {"session": ID}, {"project": P, "location": "home", "path": '
            '"x.ipynb"} or {"project": P, "digest": "sha256:..."}'
        )
    project = visible_project(source.catalog().projects, name, who).name
    if params.get("path"):
        location = params.get("location") or "home"
        found = await asyncio.to_thread(
            nbscan.scan,
            project,
            nbscan.folders(source.catalog().projects[project], who.name),
            await scan_images(source, project),
        )
        notebook = pick_notebook(found, project, location, params["path"])
        digest, path = notebook.digest, notebook.path
    elif nbscan.DIGEST_RE.match(params.get("digest", "")):
        digest, path, location = params["digest"], "", "home"
    else:
        raise BadRequest(
            'send the notebook\'s "path" or a "digest" (sha256: and 64 hex digits) with the project'
        )
    check_held(digest, project, await held(source, project), bool(source.settings.allow_any_digest))
    return Target(project, digest, {"project": project, "digest": digest}, path, location)


async def reopen(
    source: Source,
    servers: ServerStarter,
    who: Requester,
    token: str,
    params: dict[str, str],
    hub_base: str = "/",
) -> dict:
    """Check, start (or find running) and answer where to go."""
    target = await target_for(source, who, params)
    reference = await source.locate(target.project, target.digest)
    project = source.catalog().projects[target.project]
    has_lab = await serves_lab(source, target.project, reference)
    name = server_name(target.project, target.digest)
    state = await servers.start(token, who.name, name, target.options)
    where = lab_path(project, target.location, target.path, has_lab)
    return {
        "project": target.project,
        "digest": target.digest,
        "reference": reference,
        "server": name,
        "state": state,
        "user_options": target.options,
        "url": landing(hub_base, who.name, name, where),
        "opens": "notebook" if where else "start page",
        "note": landing_note(project, target.location, target.path, has_lab),
    }
