"""The forecast model server (data/sales/serve.py), stdlib only, run in a thread."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[2] / "data" / "sales" / "serve.py"


@pytest.fixture
def serve():
    spec = importlib.util.spec_from_file_location("forecast_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(serve, tmp_path):
    model = tmp_path / "model.json"
    handler = type("H", (serve.Handler,), {"model_path": str(model)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield model, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(url: str, *, data: bytes | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_and_predictions(server):
    model, base = server
    model.write_text(json.dumps({"slope": 2.5, "intercept": 50.0}))
    assert call(f"{base}/health") == (200, {"status": "ok",
                                            "model": {"slope": 2.5, "intercept": 50.0}})
    assert call(f"{base}/predict?ad_spend=10") == (200, {"ad_spend": 10.0, "sales": 75.0})
    assert call(f"{base}/predict?ad_spend=4", data=b"") == (200, {"ad_spend": 4.0, "sales": 60.0})
    assert call(f"{base}/predict", data=b'{"ad_spend": 2}')[1]["sales"] == 55.0


def test_bad_input_and_missing_model_are_explained(server):
    model, base = server
    status, body = call(f"{base}/health")
    assert status == 503 and "run the training notebook first" in body["error"]
    model.write_text(json.dumps({"slope": "steep", "intercept": 1}))
    assert call(f"{base}/health")[0] == 503
    model.write_text(json.dumps({"slope": 1, "intercept": 1}))
    status, body = call(f"{base}/predict?ad_spend=lots")
    assert status == 400 and "ad_spend" in body["error"]
    assert call(f"{base}/predict?ad_spend=nan")[0] == 400
    assert call(f"{base}/nowhere")[0] == 404
