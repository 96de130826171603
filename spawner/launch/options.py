"""Docker-spawner extras on top of ``spawner.launch.access``: digests, sessions and GPUs, pure.

Membership, stage choice and the project/stage select are ``spawner.launch.access`` (shared with
the Kubernetes spawner, so the two cannot drift). This module adds what the Docker spawner
also accepts in ``user_options``::

    {"project": "iris", "stage": "dev", "gpu": false}
    {"project": "iris", "digest": "sha256:..."}
    {"session": "4f1c2a9b0e7d"}

``parse_user_options`` checks their shape (``OptionsError``, status 400); the form
(``formview``: project, stage, digest, build time, data, GPU, main packages) gets a
"start without GPUs" box when a project the user may launch has GPUs. No I/O here; the
spawners read the facts the form shows with ``projectfacts.facts_for`` in a thread.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.launch import access
from spawner.launch.formview import render_choices
from spawner.launch.projectfacts import ProjectFacts
from spawner.project import Project

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
KNOWN_KEYS = {"project", "stage", "digest", "gpu", "session"}


class OptionsError(LockstepError):
    """A spawn request that is malformed (400)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """A parsed spawn request."""

    project: str = ""
    stage: str = ""
    digest: str = ""
    gpu: bool | None = None
    session: str = ""


def _bool(value, key: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "on", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "on", "1", "yes")
    raise OptionsError(f"user_options[{key!r}] must be true or false, got {value!r}")


def parse_user_options(options: Mapping) -> Request:
    """Check the shape of ``user_options`` (from the form or the REST API)."""
    unknown = sorted(set(options) - KNOWN_KEYS)
    if unknown:
        raise OptionsError(
            f"unknown user_options {', '.join(unknown)}; allowed: {', '.join(sorted(KNOWN_KEYS))}"
        )
    text = {}
    for key in ("project", "stage", "digest", "session"):
        value = options.get(key) or ""
        if not isinstance(value, str):
            raise OptionsError(f"user_options[{key!r}] must be a string, got {value!r}")
        text[key] = value.strip()
    if text["digest"] and not DIGEST_RE.match(text["digest"]):
        raise OptionsError(
            f"user_options['digest'] = {text['digest']!r} is not a digest; use sha256:<64 hex>"
        )
    return Request(gpu=_bool(options.get("gpu"), "gpu"), **text)


def check_user_options(spawner, user_options: Mapping) -> None:
    """JupyterHub's ``Spawner.apply_user_options`` hook: a malformed request is a 400 with
    its reason when the Hub receives it, before ``start``; access is checked in ``start``.

    The parsed ``Request`` is kept on the spawner (``spawner.lockstep_request``) so ``start``
    does not parse the same ``user_options`` again (see :func:`request_for`)."""
    from tornado.web import HTTPError

    try:
        request = parse_user_options(user_options or {})
    except OptionsError as exc:
        raise HTTPError(exc.status, str(exc)) from None
    if spawner is not None:
        spawner.lockstep_request = (dict(user_options or {}), request)


def request_for(spawner, user_options: Mapping | None) -> Request:
    """The parsed request for ``user_options``: the one ``check_user_options`` kept when it
    was for these very options (JupyterHub 5.3+ runs that hook before ``start``), else
    parsed now (older hubs, or options changed since). ``OptionsError`` if malformed."""
    options = dict(user_options or {})
    kept = getattr(spawner, "lockstep_request", None)
    if kept is not None and kept[0] == options:
        return kept[1]
    return parse_user_options(options)


def options_from_form(formdata: Mapping[str, list[str]]) -> dict:
    """Form fields -> ``user_options``: ``access.parse_options`` plus the GPU box.

    GPUs follow the project unless the user ticks "Start without GPUs"."""
    options: dict = dict(access.parse_options(formdata))
    if (formdata.get("no_gpu") or [""])[0] in ("on", "true", "1"):
        options["gpu"] = False
    return options


def render_form(projects: Iterable[Project], who: access.Requester,
                available: Mapping[str, Mapping | Sequence[str]], stages: Sequence[str], *,
                invalid: Mapping[str, str] = {},  # noqa: B006 - read only
                facts: Mapping[str, ProjectFacts] | None = None) -> str:
    """The choices (``formview.render_choices``: per project its description, data, GPU;
    per stage its digest, build time and main packages from ``facts``) plus a "start
    without GPUs" box when it applies.

    ``invalid`` (folder -> error, from ``catalog.load_catalog``) is shown, escaped, to hub
    admins only, above the form, so a broken ``project.yaml`` is seen and fixed; other
    users get nothing of it (not even that a project was skipped)."""
    projects = list(projects)
    form = render_invalid(invalid, who) + render_choices(projects, who, available, stages,
                                                         facts=facts)
    gpu_projects = [p.name for p in access.usable_projects(projects, who)
                    if p.gpu is not None and available.get(p.name)]
    if not gpu_projects:
        return form
    return form + (
        '\n<div class="checkbox"><label><input type="checkbox" name="no_gpu"> Start without '
        f"GPUs (projects with GPUs: {html.escape(', '.join(gpu_projects))})</label></div>"
    )


def render_invalid(invalid: Mapping[str, str], who: access.Requester) -> str:
    """For an admin, one line per skipped project with its error; '' for anyone else."""
    if not who.admin or not invalid:
        return ""
    rows = "".join(f"\n  <li><code>{html.escape(name)}</code>: {html.escape(error)}</li>"
                   for name, error in sorted(invalid.items()))
    return ('<div class="alert alert-warning lockstep-invalid" role="alert">'
            "<p>Skipped projects (invalid <code>project.yaml</code>; only admins see this):"
            f"</p>\n<ul>{rows}\n</ul></div>\n")
