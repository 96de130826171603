"""Approvals: the request journal and its fold, who is an approver, the order of the
refusals, and which actions the page offers to whom."""

from __future__ import annotations

import pytest

from spawner import journal
from spawner.hubservice.approvals import (
    ApprovalBook,
    Conflict,
    Forbidden,
    Request,
    actions_for,
    check_decision,
    decision_event,
    fold,
    is_approver,
    request_event,
)
from spawner.hubservice.visibility import NotVisible
from spawner.launch.access import Requester
from tests.unit.hubservice.servicedata import STAGES, digest

ALICE = Requester("alice", frozenset({"analysts"}))
LEAD = Requester("lead", frozenset({"leads"}))
OTHER_LEAD = Requester("olga", frozenset({"release"}))
APPROVERS = ["lead", "group:release"]


def req(rid="r1", user="alice", state="pending") -> Request:
    return Request(id=rid, project="forecast", from_stage="qa", to_stage="prod",
                   digest=digest("x"), requested_by=user, time="t", state=state)


def test_approvers_are_names_or_hub_groups():
    assert is_approver(LEAD, APPROVERS) and is_approver(OTHER_LEAD, APPROVERS)
    assert not is_approver(ALICE, APPROVERS)
    assert not is_approver(Requester("x", frozenset({"lead"})), APPROVERS)  # a name, not a group


def test_fold_keeps_the_first_decision_and_ignores_junk():
    first = req()
    events = [request_event(first), {"event": "decision", "id": "nope", "decision": "approved"},
              decision_event("r1", "rejected", "lead", "no", "t2"),
              decision_event("r1", "approved", "olga", "late", "t3"),
              {"event": "decision", "id": "r1", "decision": "bogus"}]
    [found] = fold(events)
    assert (found.state, found.decided_by, found.message) == ("rejected", "lead", "no")


def test_check_decision_refuses_in_order():
    with pytest.raises(Forbidden, match="alice may not approve"):
        check_decision(req(user="bob"), project="forecast", request_id="r1", who=ALICE,
                       approvers=APPROVERS)
    with pytest.raises(Forbidden, match="may not approve"):  # even for a missing request
        check_decision(None, project="forecast", request_id="zz", who=ALICE,
                       approvers=APPROVERS)
    with pytest.raises(NotVisible, match="no promotion request 'zz'"):
        check_decision(None, project="forecast", request_id="zz", who=LEAD,
                       approvers=APPROVERS)
    with pytest.raises(NotVisible):  # a request of another project
        check_decision(req(), project="vision", request_id="r1", who=LEAD, approvers=APPROVERS)
    with pytest.raises(Forbidden, match="asked for this promotion"):
        check_decision(req(user="lead"), project="forecast", request_id="r1", who=LEAD,
                       approvers=APPROVERS)
    with pytest.raises(Conflict, match="already rejected"):
        check_decision(req(state="rejected"), project="forecast", request_id="r1", who=LEAD,
                       approvers=APPROVERS)
    assert check_decision(req(), project="forecast", request_id="r1", who=LEAD,
                          approvers=APPROVERS).id == "r1"


def test_actions_a_member_and_an_approver_see():
    pending = [req("r1", user="alice"), req("r2", user="lead"), req("r3", state="approved")]
    member = actions_for(ALICE, STAGES, APPROVERS, pending)
    assert member.promote_to == ("qa",) and member.request_to == "prod"
    assert member.rollback == ("qa",) and member.decide == () and not member.approver
    assert [r.id for r in member.waiting] == ["r1", "r2"]
    lead = actions_for(LEAD, STAGES, APPROVERS, pending)
    assert lead.rollback == ("qa", "prod") and lead.approver
    assert [r.id for r in lead.decide] == ["r1"]  # never their own
    assert [r.id for r in lead.waiting] == ["r2"]
    single = actions_for(LEAD, ["dev"], APPROVERS, [])
    assert single.promote_to == () and single.request_to is None and single.rollback == ()


def test_book_requests_once_per_digest_and_records_decisions(tmp_path):
    book = ApprovalBook(tmp_path / "approvals.jsonl")
    first, new = book.request(project="forecast", from_stage="qa", to_stage="prod",
                              digest=digest("a"), user="alice")
    again, new_again = book.request(project="forecast", from_stage="qa", to_stage="prod",
                                    digest=digest("a"), user="bob")
    assert new and not new_again and again == first
    book.decide(first, "approved", "lead", "ok")
    assert book.find(first.id).state == "approved" and book.requests("vision") == []
    third, new = book.request(project="forecast", from_stage="qa", to_stage="prod",
                              digest=digest("a"), user="alice")
    assert new and third.id != first.id
    assert [e.data["event"] for e in journal.read(book.path)] == ["request", "decision",
                                                                 "request"]
