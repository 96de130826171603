"""The spawn form's choices: one group per project, one radio button per stage, with what a
person needs to choose (description, digest, build time, data, GPU, main packages). Pure.

What it guarantees:

* the same field as before: radio buttons named ``target`` with value ``<project>/<stage>``
  (``access.parse_options`` reads them), the most-promoted stage of the first project
  checked, only projects ``who`` may use and only stages that hold an image;
* every text from a project folder (``project.yaml``, locks, records) is HTML-escaped, in
  text and in attributes, so a hostile description renders as text;
* accessible: the whole choice is a ``fieldset`` with a ``legend``, each project a nested
  ``fieldset`` whose ``legend`` is its name, each stage a labelled radio button whose
  details are tied to it with ``aria-describedby``;
* packages are shown for a stage only when its image's lock hash is the project folder's
  current lock (``ProjectFacts.is_lock_of``): an older image says so instead of guessing.

It must not read files, talk to registries or decide access beyond ``access.usable_projects``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from spawner.launch import access
from spawner.launch.projectfacts import ProjectFacts
from spawner.project import Project

SHORT_DIGEST = 12  # hex digits shown; the full digest is in the title and the spawner state
STYLE = (
    "<style>.lockstep-form fieldset.lockstep-project{border:1px solid #ddd;border-radius:4px;"
    "padding:.5em 1em;margin:0 0 1em}.lockstep-form legend{font-size:1.1em;margin-bottom:.2em;"
    "width:auto;padding:0 .3em}.lockstep-form .lockstep-facts{margin:.2em 0 .5em}"
    ".lockstep-form .lockstep-facts dt{display:inline;font-weight:600}"
    ".lockstep-form .lockstep-facts dd{display:inline;margin:0 1em 0 .3em}"
    ".lockstep-form .lockstep-stage{margin:.4em 0}.lockstep-form .lockstep-stage-details"
    "{margin-left:1.6em;color:#555;font-size:.92em}</style>"
)


def e(text: object) -> str:
    """Escaped for HTML text and quoted attributes."""
    return html.escape(str(text), quote=True)


def short_digest(digest: str) -> str:
    """``sha256:1e6f50da1fdd`` for ``sha256:1e6f50da1fdd...``."""
    algo, _, hexes = digest.partition(":")
    return f"{algo}:{hexes[:SHORT_DIGEST]}" if hexes else digest


def when(stamp: str) -> str:
    """``<time>`` for an RFC 3339 UTC stamp: ``2026-01-05 14:03 UTC``."""
    text = stamp.replace("T", " ").removesuffix("Z")[:16] + (" UTC" if stamp.endswith("Z") else "")
    return f'<time datetime="{e(stamp)}">{e(text)}</time>'


def project_facts_html(project: Project) -> str:
    """Description, data mounts, workspace and GPU of one project (a ``dl``)."""
    parts = []
    if project.description:
        parts.append(f'<p class="lockstep-description">{e(project.description)}</p>')
    rows = []
    if project.data:
        mounts = ", ".join(
            f"<code>{e(m.target)}</code> (read-only)"
            + (f' <span class="text-muted">{e(m.description)}</span>' if m.description else "")
            for m in project.data
        )
        rows.append(("Data", mounts))
    if project.workspace.enabled:
        rows.append(
            (
                "Workspace",
                f"<code>{e(project.workspace.target)}</code> (shared with the project's members)",
            )
        )
    if project.gpu is not None:
        gpu = project.gpu
        what = f"{gpu.count} &times; {e(gpu.vendor)}" + (f" {e(gpu.type)}" if gpu.type else "")
        rows.append(("GPU", what + (f", CUDA {e(gpu.cuda)}" if gpu.cuda else "")))
    if rows:
        items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
        parts.append(f'<dl class="lockstep-facts">{items}</dl>')
    return "".join(parts)


def stage_details_html(image, facts: ProjectFacts | None) -> str:
    """Digest, build time and main packages of one stage's image (what is known of it)."""
    if image is None:
        return ""
    digest = getattr(image, "digest", "")
    lock_hash = getattr(image, "lock_hash", "")
    bits = [f'image <code title="{e(digest)}">{e(short_digest(digest))}</code>']
    facts = facts or ProjectFacts()
    if facts.built.get(digest):
        bits.append(f"built {when(facts.built[digest])}")
    if facts.is_lock_of(lock_hash):
        if facts.packages:
            names = ", ".join(
                f"{e(p.name)}&nbsp;{e(p.version)}" if p.version else e(p.name)
                for p in facts.packages
            )
            bits.append(f"packages: {names}")
        if facts.serves_lab(lock_hash):
            bits.append("opens in JupyterLab")
    elif lock_hash and facts.lock_hash:  # the folder's lock is known, and is another
        bits.append(
            f'built from an earlier lock (<code title="{e(lock_hash)}">'
            f"{e(short_digest(lock_hash))}</code>); its packages are on the lockstep "
            "page"
        )
    return "; ".join(bits)


def _choices(projects, who, available, stages):
    for project in access.usable_projects(projects, who):
        images = available.get(project.name) or {}
        ready = [s for s in stages if s in set(images)]
        if ready:
            refs = images if isinstance(images, Mapping) else {}
            yield project, [(s, refs.get(s)) for s in reversed(ready)]


def render_choices(
    projects: Iterable[Project],
    who: access.Requester,
    available: Mapping[str, Mapping | Sequence[str]],
    stages: Sequence[str],
    *,
    facts: Mapping[str, ProjectFacts] | None = None,
) -> str:
    """The choice fieldset; ``available``: project -> {stage: ImageRef} (or stage names)."""
    facts = facts or {}
    groups, index = [], 0
    for project, ready in _choices(projects, who, available, stages):
        radios = []
        for stage, image in ready:
            value, rid = f"{project.name}/{stage}", f"lockstep-target-{index}"
            checked = " checked" if index == 0 else ""
            details = stage_details_html(image, facts.get(project.name))
            described = f' aria-describedby="{rid}-details"' if details else ""
            radios.append(
                f'<div class="radio form-check lockstep-stage"><input class="form-check-input" '
                f'type="radio" name="{access.FORM_FIELD}" id="{rid}" value="{e(value)}"'
                f"{checked}{described}>"
                f' <label class="form-check-label" for="{rid}"><strong>{e(stage)}</strong>'
                f"</label>"
                + (
                    f'<div class="lockstep-stage-details" id="{rid}-details">{details}</div>'
                    if details
                    else ""
                )
                + "</div>"
            )
            index += 1
        groups.append(
            f'<fieldset class="lockstep-project" data-project="{e(project.name)}">'
            f"<legend>{e(project.name)}</legend>{project_facts_html(project)}"
            + "".join(radios)
            + "</fieldset>"
        )
    if not groups:
        return (
            '<p class="lockstep-empty">You are not a member of any project with a built '
            "image. Ask a project owner to add you to its project.yaml members.</p>"
        )
    return (
        f'{STYLE}<fieldset class="lockstep-form"><legend>Project and stage</legend>\n'
        + "\n".join(groups)
        + "\n</fieldset>"
    )
