"""The page renders what it is given, escaped, with no external assets."""

from __future__ import annotations

import re

from spawner.hubservice import page
from spawner.hubservice.packagediff import diff_packages
from spawner.hubservice.svg import render_svg
from spawner.hubservice.timeline import build_timeline
from tests.unit.hubservice.servicedata import STAGES, digest, package, records

EVIL = '<img src=x onerror="alert(1)">'


def test_sections_escape_everything_and_load_nothing_external():
    rows = [{"stage": s, "digest": digest(s), "lock_hash": EVIL, "created": EVIL, "size": 2048}
            for s in STAGES]
    diff = diff_packages([package("numpy", "1.0")], [package(EVIL, "1.0")]).to_json()
    timeline = build_timeline(records(3), project="forecast", stages=STAGES)
    body = [page.projects_section("/services/lockstep/", [
                {"name": "forecast", "description": EVIL, "stages": rows}], "forecast"),
            page.detail_section({"name": "forecast", "description": EVIL, "gpu": None,
                                 "data": [{"name": EVIL, "target": "/data/x"}]}),
            page.diff_section("/services/lockstep/", "forecast", STAGES, diff, "dev", "qa"),
            page.timeline_section(render_svg(timeline),
                                  [m.to_json() for m in timeline.moves], 3),
            page.sessions_section([], [])]
    html = page.render_page(base="/services/lockstep/", user=EVIL, body=body)
    assert "<img" not in html and "onerror=&quot;" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<script" not in html
    assert "2.0 KiB" in html and "1 added, 1 removed" in html


def test_size_text():
    assert page.size_text(None) == "-"
    assert page.size_text(512) == "512 B"
    assert page.size_text(3 * 1024 * 1024) == "3.0 MiB"


def test_actions_offer_each_user_only_what_they_may_do_with_the_xsrf_token():
    from spawner.hubservice.approvals import Request, actions_for
    from spawner.launch.access import Requester

    ask = Request(id="r1", project="forecast", from_stage="qa", to_stage="prod",
                  digest=digest("x"), requested_by="alice", time="t")
    member = actions_for(Requester("alice"), STAGES, ["lead"], [ask])
    html = page.actions_section("/s/", "forecast", STAGES, member, 'tok"<')
    assert 'action="/s/api/projects/forecast/promote"' in html
    assert ">promote dev -&gt; qa<" in html and "ask to promote qa -&gt; prod" in html
    assert ">roll back qa<" in html and "roll back prod" not in html
    assert "/approve" not in html and "waiting for another approver" in html
    assert 'name="_xsrf" value="tok&quot;&lt;"' in html  # on every form, escaped
    assert html.count('name="_xsrf"') == html.count("<form")
    lead = actions_for(Requester("lead"), STAGES, ["lead"], [ask])
    html = page.actions_section("/s/", "forecast", STAGES, lead, "tok")
    assert 'action="/s/api/projects/forecast/approve"' in html and 'value="r1"' in html
    assert "/reject" in html and "roll back prod" in html and "You are an approver." in html


def test_the_waiting_list_links_each_request_to_its_project():
    from spawner.hubservice.approvals import Request

    ask = Request(id="r1", project=EVIL, from_stage="qa", to_stage="prod",
                  digest=digest("x"), requested_by="alice", time="t")
    html = page.waiting_section("/s/", [ask])
    assert "Waiting for your approval (1)" in html and "<img" not in html
    assert page.waiting_section("/s/", []) == ""
