"""The timeline model and its SVG: lanes, moves with who/when/result, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from spawner.hubservice.svg import render_svg
from spawner.hubservice.timeline import build_timeline, short_digest
from spawner.promote.trail import AuditRecord, GateResult
from tests.unit.hubservice.servicedata import STAGES, digest, records

SVG = "{http://www.w3.org/2000/svg}"


def test_moves_keep_order_who_when_result_gates_and_approver():
    trail = records(6) + records(2, project="other")
    timeline = build_timeline(trail, project="forecast", stages=STAGES)
    assert timeline.lanes == STAGES and timeline.total == 6
    assert [m.index for m in timeline.moves] == list(range(6))
    first = timeline.moves[1].to_json()
    assert (first["user"], first["from_stage"], first["to_stage"]) == ("user1", "qa", "prod")
    assert first["approved_by"] == "lead" and first["outcome"] == "promoted"
    assert [g["name"] for g in first["gates"]] == ["verify", "notebooks"]
    assert timeline.moves[4].outcome == "refused"
    assert "gates: verify failed, notebooks passed" in timeline.moves[4].summary()


def test_limit_keeps_the_latest_moves_and_the_total():
    timeline = build_timeline(records(30), project="forecast", stages=STAGES, limit=5)
    assert [m.index for m in timeline.moves] == [25, 26, 27, 28, 29]
    assert timeline.total == 30
    assert build_timeline(records(3), project="forecast", stages=STAGES, limit=0).moves == ()


def test_a_stage_outside_the_site_stages_gets_its_own_lane():
    odd = AuditRecord(time="t", action="promote", project="p", user="u", to_stage="staging",
                      outcome="promoted", digest=digest("x"), from_stage="dev")
    assert build_timeline([odd], project="p", stages=STAGES).lanes == (*STAGES, "staging")


def test_svg_has_a_lane_per_stage_and_a_mark_per_move():
    timeline = build_timeline(records(12), project="forecast", stages=STAGES)
    root = ET.fromstring(render_svg(timeline))
    lanes = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "lane"]
    assert lanes == list(STAGES)
    marks = [m for m in root.iter() if "move" in (m.get("class") or "")]
    assert len(marks) == 12
    assert sum(1 for m in marks if m.tag == f"{SVG}rect") == 1  # record 10 is a rollback
    titles = [m.find(f"{SVG}title").text for m in marks]
    assert titles[1].startswith("2026-01-01T01:00:01.000Z user1: promote qa -> prod: promoted")


def test_svg_escapes_what_the_trail_says():
    evil = AuditRecord(time="<t>", action="promote", project="p", user='<script>"x"</script>',
                       to_stage="qa", outcome="refused", digest=None, from_stage="dev",
                       gates=(GateResult("<g>", "failed"),), message="&")
    svg = render_svg(build_timeline([evil], project="p", stages=STAGES))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)  # still well-formed


def test_short_digest():
    assert short_digest(digest("a")) == digest("a")[:19]
    assert short_digest("") == ""
