"""An invalid project.yaml: skipped by ``catalog.load_catalog``, logged, and shown on the
spawn form to hub admins only, escaped (``options.render_form(..., invalid=...)``)."""

from __future__ import annotations

import logging

from spawner.launch.access import Requester
from spawner.launch.catalog import load_catalog, log_invalid
from spawner.launch.options import render_form
from spawner.project import parse_project

STAGES = ("dev", "qa", "prod")
IRIS = parse_project("name: iris\nmembers: {users: [alice]}\n", source="project.yaml")
MARKUP = "<script>alert('x')</script>"
INVALID = {'bro"ken<b>': f"project.yaml: invalid project:\n  key 'isolation': got '{MARKUP}'"}
AVAILABLE = {"iris": ["dev"]}


def form(who: Requester, invalid=INVALID) -> str:
    return render_form([IRIS], who, AVAILABLE, STAGES, invalid=invalid)


def test_an_admin_sees_each_skipped_project_with_its_error_escaped_above_the_form():
    page = form(Requester("root", admin=True))
    assert page.startswith('<div class="alert alert-warning lockstep-invalid" role="alert">')
    assert "<code>bro&quot;ken&lt;b&gt;</code>: " in page
    assert "got &#x27;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&#x27;" in page
    assert MARKUP not in page and "<b>" not in page and 'bro"ken' not in page
    assert page.index("lockstep-invalid") < page.index('value="iris/dev" checked')


def test_a_user_gets_nothing_of_it_not_even_that_a_project_was_skipped():
    alice = Requester("alice")
    assert form(alice) == form(alice, invalid={})  # byte for byte the form without it
    assert "ken" not in form(alice) and "Skipped" not in form(alice)
    assert 'value="iris/dev" checked' in form(alice)


def test_an_admin_without_invalid_projects_gets_the_plain_form():
    admin = Requester("root", admin=True)
    assert "lockstep-invalid" not in form(admin, invalid={})


def test_the_catalog_skips_the_invalid_project_keeps_the_others_and_logs_it(tmp_path, caplog):
    for name, body in {"iris": "members: {users: [alice]}\n",
                       "broken": "members: {users: [alice]}\nisolation: vm\n",
                       "vision": "members: {users: [carol]}\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "project.yaml").write_text(f"name: {name}\n{body}")
    catalog = load_catalog(tmp_path)
    assert sorted(catalog.projects) == ["iris", "vision"]
    assert list(catalog.invalid) == ["broken"] and "isolation" in catalog.invalid["broken"]
    log = logging.getLogger("test-catalog")
    with caplog.at_level(logging.ERROR, logger="test-catalog"):
        log_invalid(catalog, log)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("lockstep: project broken is skipped: ") and "'vm'" in line
