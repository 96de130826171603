"""Every route the service answers is in docs/openapi.yaml, and every documented path is a
route: the document cannot drift from the app."""

from __future__ import annotations

from pathlib import Path

import yaml

from spawner.hubservice.app import ROUTES, make_app, route_regex
from spawner.hubservice.identity import Identities

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml"


def documented() -> dict:
    return yaml.safe_load(DOC.read_text())


def test_routes_and_document_paths_are_the_same_set():
    routes = {"/" + template for template, _ in ROUTES}
    assert routes == set(documented()["paths"])


def test_the_app_serves_exactly_the_routes_under_the_prefix():
    app = make_app(None, prefix="/services/lockstep/", identities=Identities("http://h", "t"))
    patterns = [rule.matcher.regex.pattern for rule in app.wildcard_router.rules]
    assert len(patterns) == len(ROUTES)
    for (template, _), pattern in zip(ROUTES, patterns, strict=True):
        assert pattern.startswith("/services/lockstep/" + route_regex(template))


def test_each_documented_operation_is_a_method_of_its_handler_with_its_path_parameters():
    handlers = {"/" + template: handler for template, handler in ROUTES}
    for path, item in documented()["paths"].items():
        served = {m for m in ("get", "post", "put", "delete") if m in vars(handlers[path])}
        assert set(item) - {"parameters"} == served, path
        names = {p["$ref"].rsplit("/", 1)[-1] for p in item.get("parameters", [])}
        assert names == ({"name"} if "{name}" in path else set()), path
