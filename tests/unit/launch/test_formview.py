"""The spawn form's choices (``options.render_form`` -> ``formview``): what each project and
stage shows, radio semantics, and escaping of everything a project folder holds."""

from __future__ import annotations

from html.parser import HTMLParser

from spawner.launch.access import Requester
from spawner.launch.options import options_from_form, render_form
from spawner.launch.projectfacts import Package, ProjectFacts
from spawner.launch.spec import ImageRef
from spawner.project import parse_project

STAGES = ("dev", "qa", "prod")
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
LOCK, OLD_LOCK = "sha256:" + "a" * 64, "sha256:" + "b" * 64
FORECAST = parse_project(
    "name: forecast\ndescription: Monthly sales forecast.\nmembers: {users: [alice]}\n"
    "data:\n  - {name: sales, source: forecast/sales, target: /data/sales,"
    " description: Monthly spend and sales}\n",
    source="project.yaml",
)
VISION = parse_project(
    "name: vision\nmembers: {users: [alice]}\ngpu: {count: 1, cuda: '>=12.0'}\n",
    source="project.yaml",
)
HOSTILE = parse_project(
    "name: evil\ndescription: \"<script>alert('x')</script><img src=x onerror=alert(1)>\"\n"
    "members: {users: [alice]}\n"
    "data:\n  - {name: d, source: evil/d, target: /data/d, description: '\"><b>bold</b>'}\n",
    source="project.yaml",
)
AVAILABLE = {
    "forecast": {
        "dev": ImageRef(f"r/forecast@{D1}", LOCK),
        "qa": ImageRef(f"r/forecast@{D2}", OLD_LOCK),
    },
    "vision": {"dev": ImageRef(f"r/vision@{D1}", "")},
}
FACTS = {
    "forecast": ProjectFacts(
        lock_hash=LOCK,
        packages=(
            Package("python", "3.11.7"),
            Package("jupyterlab", "4.6.6"),
            Package("numpy", "2.4.6"),
        ),
        locked=frozenset({"python", "jupyterlab", "numpy"}),
        built={D1: "2026-01-05T14:03:00Z"},
    )
}


class Radios(HTMLParser):
    """Collect the form's radio inputs, labels, legends and described-by targets."""

    def __init__(self):
        super().__init__()
        self.radios, self.labels, self.ids, self.legends, self.tags = [], {}, {}, [], set()
        self._label = self._legend = self._details = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "input" and a.get("type") == "radio":
            self.radios.append(a)
        if tag == "label":
            self._label = a.get("for")
        if tag == "legend":
            self._legend = ""
        if a.get("id") and tag == "div":
            self._details = a["id"]
            self.ids[a["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None
        if tag == "legend":
            self.legends.append(self._legend)
            self._legend = None
        if tag == "div":
            self._details = None

    def handle_data(self, data):
        if self._label:
            self.labels[self._label] = self.labels.get(self._label, "") + data
        if self._legend is not None:
            self._legend += data
        if self._details:
            self.ids[self._details] += data


def parsed(page: str) -> Radios:
    parser = Radios()
    parser.feed(page)
    return parser


def test_each_stage_is_a_labelled_radio_with_its_digest_build_time_and_packages():
    page = render_form([FORECAST, VISION], Requester("alice"), AVAILABLE, STAGES, facts=FACTS)
    form = parsed(page)
    assert [r["value"] for r in form.radios] == ["forecast/qa", "forecast/dev", "vision/dev"]
    assert {r["name"] for r in form.radios} == {"target"}
    assert ["checked" in r for r in form.radios] == [True, False, False]
    assert form.legends == ["Project and stage", "forecast", "vision"]
    for radio in form.radios:  # every radio has a label and its details are tied to it
        assert form.labels[radio["id"]].strip() == radio["value"].split("/")[1]
        assert radio["aria-describedby"] in form.ids
    dev = form.ids[form.radios[1]["aria-describedby"]]
    assert "sha256:111111111111" in dev and D1 not in dev  # short digest shown
    assert f'title="{D1}"' in page  # the full digest is one hover away
    assert "built 2026-01-05 14:03 UTC" in dev
    assert "packages: python\xa03.11.7, jupyterlab\xa04.6.6, numpy\xa02.4.6" in dev
    assert "opens in JupyterLab" in dev
    qa = form.ids[form.radios[0]["aria-describedby"]]  # an image of an older lock
    assert "built from an earlier lock" in qa and "sha256:bbbbbbbbbbbb" in qa
    assert "numpy" not in qa and "built 20" not in qa and "JupyterLab" not in qa
    assert "Monthly sales forecast." in page
    assert "<code>/data/sales</code> (read-only)" in page and "Monthly spend and sales" in page
    assert "<dt>GPU</dt><dd>1 &times; nvidia, CUDA &gt;=12.0</dd>" in page
    assert page.count('name="no_gpu"') == 1  # vision has GPUs


def test_the_field_is_read_back_as_before():
    assert options_from_form({"target": ["forecast/qa"]}) == {"project": "forecast", "stage": "qa"}


def test_a_hostile_project_yaml_renders_as_text():
    available = {"evil": {"dev": ImageRef(f"r/evil@{D1}", LOCK)}}
    facts = {
        "evil": ProjectFacts(
            lock_hash=LOCK,
            packages=(Package("<b>x</b>", '1"><i>'),),
            built={D1: '"><script>x</script>'},
        )
    }
    page = render_form([HOSTILE], Requester("alice"), available, STAGES, facts=facts)
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;img src=x" in page
    assert "&quot;&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    form = parsed(page)
    assert [r["value"] for r in form.radios] == ["evil/dev"]
    assert form.tags <= {
        "style",
        "fieldset",
        "legend",
        "p",
        "dl",
        "dt",
        "dd",
        "code",
        "span",
        "div",
        "input",
        "label",
        "strong",
        "time",
    }, form.tags


def test_only_usable_projects_and_stages_with_an_image_are_offered():
    bob = render_form([FORECAST, VISION], Requester("bob"), AVAILABLE, STAGES, facts=FACTS)
    assert "forecast" not in bob and "lockstep-empty" in bob
    admin = render_form([FORECAST], Requester("root", admin=True), {"forecast": ["prod"]}, STAGES)
    assert [r["value"] for r in parsed(admin).radios] == ["forecast/prod"]
    assert "aria-describedby" not in admin  # no image known: no details, nothing invented


def test_no_facts_still_show_the_digest_and_no_packages():
    page = render_form([FORECAST], Requester("alice"), AVAILABLE, STAGES)
    assert "sha256:111111111111" in page and "packages:" not in page and "built " not in page
