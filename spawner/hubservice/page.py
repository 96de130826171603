"""The service's page: projects, stages with digests, a package diff and the timeline.

Server-rendered HTML from plain data (the same dicts the API answers with), one page at
the service's root: every project the user may use with each stage's digest, lock hash,
build time and size; for the selected project (``?project=``) its data mounts and GPU, the
package diff between two stages (``?from=dev&to=qa`` by default), the promotion timeline
as an inline SVG with the latest moves as a table; the actions the user may take (promote
to the next stage before the last, ask for the last, roll back, and for approvers the
pending promotions to approve or reject); the user's own sessions; and, for hub admins,
the running servers by project and digest. The only script is none: the diff's stage
choice is a plain GET form, and every action a plain POST form carrying the hub's XSRF
token (``_xsrf``) to the API route that acts.

Guarantees: pure (data in, a string out); every value is HTML-escaped (``html.escape``
with quotes), links are built from escaped, URL-quoted parts; no external stylesheet,
font, script or image (nothing from a CDN). It must not decide what the user may see: it
renders what the handler passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote, urlencode

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 20px}header b{font-size:18px}
main{padding:16px 20px;max-width:1200px}section{background:#fff;border:1px solid #d0d7de;
border-radius:6px;padding:12px 16px;margin-bottom:16px}h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eaeef2;
padding:4px 6px;text-align:left;vertical-align:top}code{font-size:12px}
.added{color:#1a7f37}.removed{color:#cf222e}.changed{color:#9a6700}.muted{color:#57606a}
.svgbox{overflow-x:auto}nav a{margin-right:12px}
"""


def e(value) -> str:
    """HTML-escape anything (``None`` -> '')."""
    return escape("" if value is None else str(value), quote=True)


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def link(base: str, **query) -> str:
    return e(base + ("?" + urlencode(query) if query else ""))


def stages_table(rows: Sequence[Mapping]) -> str:
    body = "".join(
        f"<tr><td><b>{e(r['stage'])}</b></td>"
        f"<td><code title=\"{e(r['digest'])}\">{e(short(r['digest']))}</code></td>"
        f"<td><code title=\"{e(r['lock_hash'])}\">{e(short(r['lock_hash']))}</code></td>"
        f"<td>{e(r['created'] or '-')}</td><td>{e(size_text(r['size']))}</td></tr>"
        for r in rows)
    return ("<table class=\"stages\"><tr><th>stage</th><th>digest</th><th>lock hash</th>"
            f"<th>built</th><th>size</th></tr>{body}</table>")


def projects_section(base: str, projects: Sequence[Mapping], selected: str | None) -> str:
    if not projects:
        return ("<section><h2>Projects</h2><p class=\"muted\">You are not a member of any "
                "project. Ask a project owner to add you under <code>members:</code> in its "
                "project.yaml.</p></section>")
    items = []
    for p in projects:
        mark = " (shown below)" if p["name"] == selected else ""
        items.append(f"<h3><a href=\"{link(base, project=p['name'])}\">{e(p['name'])}</a>"
                     f"{e(mark)}</h3><p class=\"muted\">{e(p['description'])}</p>"
                     f"{stages_table(p['stages'])}")
    return f"<section id=\"projects\"><h2>Your projects</h2>{''.join(items)}</section>"


def detail_section(detail: Mapping) -> str:
    mounts = ", ".join(f"{m['name']} at {m['target']} (read-only)" for m in detail["data"])
    gpu = detail["gpu"]
    gpu_text = f"{gpu['count']} x {gpu['vendor']} {gpu['type']}".strip() if gpu else "none"
    return (f"<section id=\"detail\"><h2>{e(detail['name'])}</h2>"
            f"<p>{e(detail['description'])}</p><p>Data: {e(mounts or 'none')}<br>"
            f"GPU: {e(gpu_text)}</p></section>")


def _rows(kind: str, packages: Sequence[Mapping]) -> str:
    sign = {"added": "+", "removed": "-"}[kind]
    return "".join(f"<tr class=\"{kind}\"><td>{sign} {e(p['name'])}</td><td>{e(p['manager'])}"
                   f"</td><td>{e(p['version'])} {e(p['build'])}</td></tr>" for p in packages)


def diff_section(base: str, project: str, stages: Sequence[str], diff: Mapping | None,
                 side_from: str, side_to: str, problem: str = "") -> str:
    def choice(name: str, value: str) -> str:
        opts = "".join(f"<option{' selected' if s == value else ''}>{e(s)}</option>"
                       for s in stages)
        return f"<select name=\"{name}\">{opts}</select>"

    form = (f"<form method=\"get\" action=\"{e(base)}\"><input type=\"hidden\" name=\"project\""
            f" value=\"{e(project)}\">from {choice('from', side_from)} to {choice('to', side_to)}"
            " <button type=\"submit\">compare</button></form>")
    if diff is None:
        return (f"<section id=\"diff\"><h2>Packages {e(side_from)} &rarr; {e(side_to)}</h2>"
                f"{form}<p class=\"muted\">{e(problem)}</p></section>")
    changed = "".join(
        f"<tr class=\"changed\"><td>~ {e(c['name'])}</td><td>{e(c['manager'])}</td><td>"
        f"{e(c['from']['version'])} {e(c['from']['build'])} &rarr; {e(c['to']['version'])} "
        f"{e(c['to']['build'])}</td></tr>" for c in diff["changed"])
    rows = _rows("added", diff["added"]) + _rows("removed", diff["removed"]) + changed
    counts = (f"{len(diff['added'])} added, {len(diff['removed'])} removed, "
              f"{len(diff['changed'])} changed, {diff['unchanged']} unchanged")
    table = f"<table>{rows}</table>" if rows else "<p>The two environments are identical.</p>"
    return (f"<section id=\"diff\"><h2>Packages {e(side_from)} &rarr; {e(side_to)}</h2>{form}"
            f"<p class=\"muted\">{e(counts)}</p>{table}</section>")


def timeline_section(svg: str, moves: Sequence[Mapping], total: int) -> str:
    rows = "".join(
        f"<tr><td>{e(m['time'])}</td><td>{e(m['user'])}</td><td>{e(m['action'])}</td>"
        f"<td>{e((m['from_stage'] or '') + ' -> ' + m['to_stage'])}</td><td>{e(m['outcome'])}"
        f"</td><td>{e(', '.join(g['name'] + ' ' + g['status'] for g in m['gates']))}</td>"
        f"<td>{e(m['approved_by'] or '')}</td><td><code>{e(short(m['digest']))}</code></td></tr>"
        for m in reversed(moves[-50:]))
    note = (f"latest {len(moves)} of {total} moves" if total > len(moves)
            else f"{total} move" + ("" if total == 1 else "s"))
    return (f"<section id=\"timeline\"><h2>Promotion timeline</h2><p class=\"muted\">{e(note)}"
            f"</p><div class=\"svgbox\">{svg}</div><table><tr><th>when</th><th>who</th>"
            "<th>action</th><th>stages</th><th>result</th><th>gates</th><th>approved by</th>"
            f"<th>digest</th></tr>{rows}</table></section>")


def _form(base: str, project: str, verb: str, xsrf: str, fields: Mapping[str, str],
          label: str, extra: str = "") -> str:
    action = e(f"{base}api/projects/{quote(project, safe='')}/{verb}")
    hidden = "".join(f"<input type=\"hidden\" name=\"{e(k)}\" value=\"{e(v)}\">"
                     for k, v in {"_xsrf": xsrf, **fields}.items())
    return (f"<form method=\"post\" action=\"{action}\" class=\"act {e(verb)}\" "
            f"style=\"display:inline\">{hidden}{extra}<button type=\"submit\">{e(label)}"
            "</button></form> ")


def actions_section(base: str, project: str, stages: Sequence[str], actions, xsrf: str) -> str:
    """Buttons for ``actions`` (``approvals.Actions``), each a POST form with ``xsrf``."""
    before = {s: stages[i - 1] for i, s in enumerate(stages) if i}
    moves = [_form(base, project, "promote", xsrf, {"to": s}, f"promote {before[s]} -> {s}")
             for s in actions.promote_to]
    if actions.request_to:
        moves.append(_form(base, project, "promote", xsrf, {"to": actions.request_to},
                           f"ask to promote {before[actions.request_to]} -> "
                           f"{actions.request_to} (an approver decides)"))
    backs = [_form(base, project, "rollback", xsrf, {"stage": s}, f"roll back {s}")
             for s in actions.rollback]
    rows = []
    for r in actions.decide:
        buttons = (_form(base, project, "approve", xsrf, {"request": r.id}, "approve")
                   + _form(base, project, "reject", xsrf, {"request": r.id}, "reject",
                           "<input name=\"reason\" placeholder=\"reason\" size=\"14\"> "))
        rows.append(_request_row(r, buttons))
    for r in actions.waiting:
        rows.append(_request_row(r, "<span class=\"muted\">waiting for another approver"
                                    "</span>"))
    table = ("<table id=\"pending\"><tr><th>request</th><th>stages</th><th>digest</th>"
             f"<th>asked by</th><th>when</th><th></th></tr>{''.join(rows)}</table>"
             if rows else "<p class=\"muted\">No promotion waits for an approver.</p>")
    role = "You are an approver." if actions.approver else "Approvers decide promotions to " \
        f"{stages[-1] if stages else 'the last stage'}."
    return (f"<section id=\"actions\"><h2>Promote</h2><p>{''.join(moves)}</p>"
            f"<p>{''.join(backs)}</p><h2>Pending approvals</h2><p class=\"muted\">{e(role)}"
            f"</p>{table}</section>")


def _request_row(r, cell: str) -> str:
    return (f"<tr class=\"request\" data-request=\"{e(r.id)}\"><td><code>{e(r.id)}</code></td>"
            f"<td>{e(r.from_stage)} -&gt; {e(r.to_stage)}</td><td><code title=\"{e(r.digest)}\">"
            f"{e(short(r.digest))}</code></td><td>{e(r.requested_by)}</td><td>{e(r.time)}</td>"
            f"<td>{cell}</td></tr>")


def waiting_section(base: str, requests: Sequence) -> str:
    """For approvers: every pending request they may decide, across their projects."""
    if not requests:
        return ""
    items = "".join(
        f"<li><a href=\"{link(base, project=r.project)}#actions\">{e(r.project)}</a>: "
        f"{e(r.from_stage)} -&gt; {e(r.to_stage)} <code>{e(short(r.digest))}</code>, asked by "
        f"{e(r.requested_by)} at {e(r.time)}</li>" for r in requests)
    return (f"<section id=\"waiting\"><h2>Waiting for your approval ({len(requests)})</h2>"
            f"<ul>{items}</ul></section>")


def result_page(base: str, project: str, body: Mapping, user: str = "") -> str:
    """The answer to a form post: the outcome, its message, and the way back."""
    back = link(base, project=project)
    return render_page(base=base, user=user, body=[
        f"<section id=\"result\"><h2>{e(body.get('outcome', ''))}</h2>"
        f"<p>{e(body.get('message', ''))}</p><p><a href=\"{back}\">back to {e(project)}</a>"
        "</p></section>"])


def sessions_section(sessions: Sequence[Mapping], admin: Sequence[Mapping] | None,
                     action=None) -> str:
    """The user's sessions; ``action(session)`` renders a last cell (the reopen button)."""
    rows = "".join(
        f"<tr data-session=\"{e(s['id'])}\"><td>{e(s['project'])}</td><td>{e(s['stage'])}</td>"
        f"<td><code>{e(short(s['digest']))}</code></td><td>{e(s['start'])}</td>"
        f"<td>{'running' if s['running'] else e(s['stop'])}</td>"
        f"{f'<td>{action(s)}</td>' if action else ''}</tr>" for s in sessions[:20])
    out = ("<section id=\"sessions\"><h2>Your sessions</h2><table><tr><th>project</th>"
           "<th>stage</th><th>digest</th><th>started</th><th>stopped</th>"
           f"{'<th></th>' if action else ''}</tr>{rows}</table></section>")
    if admin is not None:
        groups = "".join(
            f"<tr><td>{e(g['project'])}</td><td><code>{e(short(g['digest']))}</code></td>"
            f"<td>{e(', '.join(g['stages']) or 'no stage holds it')}</td><td>{g['count']}</td>"
            f"<td>{e(', '.join(g['users'][:10]))}</td></tr>" for g in admin)
        out += ("<section id=\"running\"><h2>Running servers (admin)</h2><table><tr>"
                "<th>project</th><th>digest</th><th>held by</th><th>servers</th><th>users</th>"
                f"</tr>{groups}</table></section>")
    return out


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 05m``, ``7m``: how long, for people. Pure."""
    minutes = int(seconds) // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins:02d}m" if hours else f"{mins}m"


def idle_section(idle: Mapping | None) -> str:
    """Admins: servers idle for ``idle_after`` seconds or more, most idle first."""
    if idle is None:
        return ""
    rows = "".join(
        f"<tr><td>{e(s['user'])}</td><td>{e(s['server_name'] or '(default)')}</td>"
        f"<td>{e(s['project'] or 'not started by lockstep')}</td>"
        f"<td><code>{e(short(s['digest']))}</code></td>"
        f"<td>{e(', '.join(s['stages']) or ('no stage holds it' if s['orphaned'] else ''))}"
        f"</td><td>{e(duration(s['idle_seconds']))}</td><td>{e(s['last_activity'] or '')}"
        "</td></tr>" for s in idle["servers"][:200])
    note = (f"<p class=\"muted\">{e(idle['unavailable'])}</p>" if idle.get("unavailable")
            else "" if rows else "<p class=\"muted\">no idle servers</p>")
    return ("<section id=\"idle\"><h2>Idle servers (admin)</h2><p class=\"muted\">no "
            f"activity for {e(duration(idle['idle_after']))} or more (c.Lockstep.idle_after)"
            "</p><table><tr><th>user</th><th>server</th><th>project</th><th>digest</th>"
            f"<th>held by</th><th>idle</th><th>last activity</th></tr>{rows}</table>{note}"
            "</section>")


def render_page(*, base: str, user: str, body: Sequence[str], hub_home: str = "/hub/home") -> str:
    """The whole HTML document around escaped ``body`` sections."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>lockstep</title>"
            f"<style>{STYLE}</style></head><body><header><b>lockstep</b> "
            f"<span class=\"muted\">signed in as {e(user)}</span> "
            f"<nav style=\"display:inline\"><a style=\"color:#fff\" href=\"{e(hub_home)}\">hub"
            f"</a><a style=\"color:#fff\" href=\"{e(base)}\">projects</a></nav></header>"
            f"<main>{''.join(body)}</main></body></html>")


def error_page(status: int, message: str) -> str:
    return render_page(base="./", user="", body=[
        f"<section><h2>{status}</h2><p>{e(message)}</p></section>"])
