"""Serve the forecast project's sales model over HTTP (standard library only).

The model is the JSON file the training notebook writes to the project workspace,
``{"slope": S, "intercept": I}`` (extra keys are kept and shown); a prediction is
``sales = slope * ad_spend + intercept``.

    GET  /health                   -> 200 {"status": "ok", "model": {...}}
    GET  /predict?ad_spend=12.5    -> 200 {"ad_spend": 12.5, "sales": ...}
    POST /predict?ad_spend=12.5    -> the same (or a JSON body {"ad_spend": 12.5})

A missing or malformed model makes /health answer 503 (so the service is not marked
healthy and a deploy keeps the previous one); a bad ``ad_spend`` answers 400.

    python serve.py --model /workspace/model.json --port 8080

When lockstep deploys a model promoted with the image (``lockstep model push``), it binds
the model's files read-only at ``$LOCKSTEP_MODEL_DIR`` (``/opt/model``) and names it in
``$LOCKSTEP_MODEL_DIGEST``: the file of ``--model``'s name is then read from there, never
from the writable workspace, and /health says which model digest it serves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024


def load_model(path: str) -> dict:
    """Read and check the model file; ``ValueError`` says what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as fh:
            model = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"no model at {path}; run the training notebook first") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(model, dict):
        raise ValueError(f"{path} must hold a JSON object with slope and intercept")
    for key in ("slope", "intercept"):
        value = model.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ValueError(f"{path}: {key!r} must be a finite number, got {value!r}")
    return model


def model_path(given: str, environ=os.environ) -> str:
    """``given``, or the file of its name in the promoted model's read-only folder when
    lockstep mounted one (``LOCKSTEP_MODEL_DIR``): a promoted model wins over the workspace."""
    folder = environ.get("LOCKSTEP_MODEL_DIR", "")
    return os.path.join(folder, os.path.basename(given)) if folder else given


def predict(model: dict, ad_spend: float) -> float:
    return float(model["slope"]) * ad_spend + float(model["intercept"])


class Handler(BaseHTTPRequestHandler):
    server_version = "forecast-serve/1"
    model_path = ""
    model_digest = ""

    def _send(self, status: int, body: dict) -> None:
        data = (json.dumps(body, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _model(self) -> dict | None:
        try:
            return load_model(self.model_path)
        except ValueError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "error", "error": str(exc)})
            return None

    def _ad_spend(self, query: dict) -> float | None:
        raw = query.get("ad_spend", [None])[0]
        if raw is None and self.command == "POST":
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            try:
                raw = (json.loads(self.rfile.read(length) or b"{}") or {}).get("ad_spend")
            except (json.JSONDecodeError, AttributeError):
                raw = None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            self._send(HTTPStatus.BAD_REQUEST,
                       {"error": "give ad_spend as a number, e.g. /predict?ad_spend=12.5"})
            return None
        return value

    def _route(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health" and self.command == "GET":
            model = self._model()
            if model is not None:
                body = {"status": "ok", "model": model}
                if self.model_digest:
                    body["model_digest"] = self.model_digest
                self._send(HTTPStatus.OK, body)
        elif url.path == "/predict":
            model = self._model()
            ad_spend = self._ad_spend(parse_qs(url.query)) if model is not None else None
            if model is not None and ad_spend is not None:
                self._send(HTTPStatus.OK, {"ad_spend": ad_spend,
                                           "sales": predict(model, ad_spend)})
        else:
            self._send(HTTPStatus.NOT_FOUND,
                       {"error": f"no route {self.command} {url.path}; "
                                 "use GET /health or GET/POST /predict?ad_spend=X"})

    do_GET = _route
    do_POST = _route

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the sales forecast model.")
    parser.add_argument("--model", required=True, help="model JSON (slope, intercept)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    args = parser.parse_args(argv)
    Handler.model_path = model_path(args.model)
    Handler.model_digest = os.environ.get("LOCKSTEP_MODEL_DIGEST", "")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"forecast: serving {Handler.model_path} on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
