"""Fetch one model artifact by digest into a folder: the init container of a Kubernetes
model service runs this file's text with the service image's own python
(``python -c SOURCE BASE REPOSITORY DIGEST DEST``), so it imports the standard library
only, never lockstep.

Guarantees: the manifest's bytes must hash to ``DIGEST`` and each file's bytes to its
layer digest and size, so a registry cannot serve other files than the promoted ones;
file paths are checked as ``spawner.models.artifact.check_path`` checks them (relative,
POSIX, no ``.``/``..``, no control characters or backslashes), so nothing is written
outside ``DEST``; files end read-only (0444, folders 0555). Registry credentials come from
``$DOCKER_CONFIG/config.json`` (``auths``: ``auth`` or ``username``/``password``); a
``Bearer`` challenge is answered with a token from its realm, a ``Basic`` one with the
credential; the credential is never sent to a redirect target (blob storage). Every
request has a timeout. Exit status 0 when every file is in place; else a one-line error
naming the artifact and what failed, and status 1.
"""

import base64
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
TIMEOUT = 60
CHUNK = 1 << 20
BAD_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


class FetchError(Exception):
    pass


def basic_credential(host):
    folder = os.environ.get("DOCKER_CONFIG", "")
    if not folder:
        return None
    try:
        with open(os.path.join(folder, "config.json")) as handle:
            auths = json.load(handle).get("auths") or {}
    except (OSError, ValueError):
        return None
    for key in (host, "https://" + host, "http://" + host):
        entry = auths.get(key) or {}
        if entry.get("auth"):
            return entry["auth"]
        if entry.get("username"):
            raw = "{}:{}".format(entry["username"], entry.get("password", ""))
            return base64.b64encode(raw.encode()).decode()
    return None


def challenge_params(header):
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def bearer_token(header, basic):
    params = challenge_params(header)
    query = {k: v for k, v in params.items() if k in ("service", "scope")}
    url = params["realm"] + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url)
    if basic:
        request.add_unredirected_header("Authorization", "Basic " + basic)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        body = json.load(answer)
    return body.get("token") or body.get("access_token") or ""


class Registry:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.host = urllib.parse.urlsplit(self.base).netloc
        self.basic = basic_credential(self.host)
        self.auth = ""

    def get(self, path, accept=""):
        with self.open(path, accept) as answer:
            return answer.read()

    def open(self, path, accept=""):
        for attempt in range(2):
            request = urllib.request.Request(self.base + path)
            if accept:
                request.add_header("Accept", accept)
            if self.auth:
                request.add_unredirected_header("Authorization", self.auth)
            try:
                return urllib.request.urlopen(request, timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                header = exc.headers.get("WWW-Authenticate", "")
                if exc.code != 401 or attempt or not header:
                    raise FetchError(f"GET {path} answered {exc.code}") from None
                if header.lower().startswith("bearer"):
                    self.auth = "Bearer " + bearer_token(header, self.basic)
                elif self.basic:
                    self.auth = "Basic " + self.basic
                else:
                    raise FetchError(f"{path} wants a login; mount a Docker config") from None
        raise FetchError(f"GET {path} failed")


def check_path(path):
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or BAD_PATH.search(path)
        or len(path) > 255
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise FetchError(f"the model names a file {path!r}, which is not a plain relative path")
    return parts


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def download(registry, path, target):
    """Stream ``path`` into ``target``; (its sha256 digest, its size)."""
    digest, size = hashlib.sha256(), 0
    with registry.open(path) as answer, open(target, "wb") as handle:
        for chunk in iter(lambda: answer.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    return "sha256:" + digest.hexdigest(), size


def fetch(base, repository, digest, dest):
    registry = Registry(base)
    raw = registry.get(f"/v2/{repository}/manifests/{digest}", MANIFEST_TYPES)
    if sha256(raw) != digest:
        raise FetchError(f"the registry's manifest hashes to {sha256(raw)}")
    layers = json.loads(raw).get("layers") or []
    seen = set()
    for layer in layers:
        path = (layer.get("annotations") or {}).get(TITLE, "")
        parts = check_path(path)
        if path in seen:
            raise FetchError(f"the model names {path!r} twice")
        seen.add(path)
        target = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        found, size = download(
            registry, "/v2/{}/blobs/{}".format(repository, layer["digest"]), target
        )
        if found != layer["digest"] or size != layer.get("size"):
            os.remove(target)
            raise FetchError("file {} does not match its digest {}".format(path, layer["digest"]))
        os.chmod(target, 0o444)
    for folder, _dirs, _files in os.walk(dest):
        if folder != dest:  # dest is the volume's root, which the pod's user may not own
            os.chmod(folder, 0o555)
    return len(layers)


def main(argv):
    if len(argv) != 4:
        print("usage: modelfetch BASE REPOSITORY DIGEST DEST", file=sys.stderr)
        return 2
    base, repository, digest, dest = argv
    try:
        count = fetch(base, repository, digest, dest)
    except (FetchError, OSError, ValueError, KeyError) as exc:
        print(f"lockstep model {base}/{repository}@{digest}: {exc}", file=sys.stderr)
        return 1
    print(f"lockstep model {digest}: {count} files in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
