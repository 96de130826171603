"""HTML for reopening: the notebooks page and the "reopen on this exact image" buttons.

Each button is a plain POST form to ``api/reopen`` carrying the hub's XSRF token
(``_xsrf``) and the fields that name what to reopen (a session id, or a project and a
notebook's folder and path: never a digest, which the service reads from the notebook).

Pure (data in, a string out); every value is escaped through ``page.e``. It must not
decide what the user may see: it renders what the handler passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from spawner.hubservice.page import e, link, render_page, short


def reopen_form(base: str, xsrf: str, fields: Mapping[str, str], label: str) -> str:
    """A POST form to ``api/reopen`` with ``fields`` and the XSRF token."""
    hidden = "".join(
        f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
        for k, v in {"_xsrf": xsrf, **fields}.items()
    )
    return (
        f'<form method="post" action="{e(base)}api/reopen" class="act reopen" '
        f'style="display:inline">{hidden}<button type="submit">{e(label)}</button>'
        "</form>"
    )


def session_cell(base: str, xsrf: str):
    """The renderer of the sessions table's last cell: a reopen button per session."""

    def cell(session: Mapping) -> str:
        return reopen_form(
            base, xsrf, {"session": str(session["id"])}, f"reopen on {short(session['digest'])}"
        )

    return cell


def notebooks_link(base: str, project: str) -> str:
    """A short section pointing at the project's notebooks page."""
    return (
        f'<section id="notebooks-link"><h2>Notebooks</h2><p><a href="'
        f'{link(base + "notebooks", project=project)}">Your notebooks in {e(project)}'
        "</a>: reopen any of them on the exact image it was saved with.</p></section>"
    )


def _when(mtime: int) -> str:
    if not mtime:
        return "-"
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


WHERE = {
    "workspace": "opens the notebook in JupyterLab (when the image is known to have Lab)",
    "home": (
        "starts the image in a new server whose home is separate: this notebook stays in "
        "this home; copy it into the workspace to open it there"
    ),
}


def _action(base: str, xsrf: str, row: Mapping, allow_any: bool) -> str:
    if row.get("reopen") is None:
        return (
            '<span class="muted">'
            + e(row.get("error") or "saved without a recorded image (or in another project)")
            + "</span>"
        )
    if not (row.get("held") or allow_any):
        return '<span class="muted">no stage ever held this digest</span>'
    label = f"reopen on this exact image ({short(row['digest'])})"
    form = reopen_form(base, xsrf, {k: str(v) for k, v in row["reopen"].items()}, label)
    return form + f' <span class="muted where">{e(WHERE.get(row["location"], ""))}</span>'


def notebooks_page(base: str, user: str, listing: Mapping, xsrf: str) -> str:
    """The page: the user's notebooks in one project, newest first."""
    project = listing["project"]
    rows = sorted(listing["notebooks"], key=lambda r: (-(r.get("mtime") or 0), r["path"]))
    allow_any = bool(listing.get("allow_any_digest"))
    body = "".join(
        f'<tr class="notebook" data-location="{e(r["location"])}" data-path="{e(r["path"])}">'
        f"<td>{e(r['location'])}</td>"
        f"<td><code>{e(r['path'])}</code></td><td>{e(r.get('stage') or '-')}</td>"
        f'<td><code title="{e(r.get("digest"))}">{e(short(r.get("digest")))}</code></td>'
        f"<td>{e(_when(r.get('mtime') or 0))}</td><td>{_action(base, xsrf, r, allow_any)}"
        "</td></tr>"
        for r in rows
    )
    table = (
        "<table><tr><th>folder</th><th>notebook</th><th>saved on stage</th>"
        f"<th>digest</th><th>saved</th><th></th></tr>{body}</table>"
        if rows
        else '<p class="muted">No notebooks yet in your home folder or the workspace of '
        "this project.</p>"
    )
    note = (
        "Each notebook reopens in a server of its own, named after project and digest. A "
        "workspace notebook opens in JupyterLab there (when the image is known to have Lab). "
        "Your home folder here is the home of your default server of this project; the new "
        "server has a separate home, so a home notebook does not open in it: copy it into "
        "the workspace first."
    )
    return render_page(
        base=base,
        user=user,
        body=[
            f'<section id="notebooks"><h2>Your notebooks in {e(project)}</h2>'
            f'<p class="muted">{e(note)}</p>{table}<p><a href="{link(base, project=project)}'
            f'">back to {e(project)}</a></p></section>'
        ],
    )
