"""A small client for the OCI distribution API: blobs, manifests, tags, mounts, copies.

Only the distribution-spec calls lockstep needs, over httpx with a timeout on every call:
HTTP for hosts in ``insecure_registries`` (loopback by default), HTTPS otherwise.
Credentials come from the Docker config file (``auths``, ``credHelpers``, ``credsStore``;
``spawner.image.credentials``), after ``c.Lockstep.registry_auth_file`` when set; a
``401`` with ``WWW-Authenticate: Bearer realm=...`` is answered with the token flow.
Errors a person can fix raise ``RegistryError`` (a ``LockstepError``) naming the registry,
the call and the fix; credentials never appear in messages. A registry that does not answer
(connection refused, timed out, 5xx) raises its subclass ``RegistryUnavailable``, so a
caller can tell "down" from "answered no". Reads (GET/HEAD) may be retried once with a
back-off (``retries``); writes never are. An image's blobs are pushed or copied on up to
``PUSH_WORKERS`` threads at once (each still HEAD, then mount, then upload); its manifest
is PUT only after every blob is there.

No Python client library fit (oras-py pushes artifacts, not cross-repository mounts or
manifests by digest), so this module keeps the protocol surface small and explicit.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx

from spawner.errors import LockstepError
from spawner.image.oci import MANIFEST_TYPES, sha256_digest

TIMEOUT = httpx.Timeout(30.0, read=300.0)
CHUNK = 1 << 20
RETRY_BACKOFF = 0.5  # seconds before the one retry of a read (``retries=1``)
PUSH_WORKERS = 6  # blobs uploaded (or copied) at once; the manifest always goes last
T = TypeVar("T")


class RegistryError(LockstepError):
    """A registry call that failed in a way the person running lockstep can act on."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer: refused, timed out, or a 5xx answer."""


def docker_config_auth(
    host: str, config_path: Path | None = None, auth_file: str = ""
) -> tuple[str, str] | None:
    """(user, password) for ``host``: ``auth_file`` (a mounted dockerconfigjson), then the
    Docker config; ``auths``, ``credHelpers`` and ``credsStore`` (``spawner.image.credentials``)."""
    from spawner.image.credentials import find_credentials

    return find_credentials(host, config_path=config_path, auth_file=auth_file)


class RegistryAuth(httpx.Auth):
    """Basic credentials, or a Bearer token fetched from the realm a 401 names."""

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        self.credentials = credentials
        self.tokens: dict[str, str] = {}
        self.basic = False

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        scope_key = request.url.path
        if self.basic and self.credentials:
            request.headers["Authorization"] = _basic(self.credentials)
        for key, token in self.tokens.items():
            if scope_key.startswith(key):
                request.headers["Authorization"] = f"Bearer {token}"
                break
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge:
            return
        if challenge.lower().startswith("basic") and self.credentials:
            self.basic = True
            request.headers["Authorization"] = _basic(self.credentials)
            yield request
        elif challenge.lower().startswith("bearer"):
            token_response = yield self._token_request(challenge)
            token = ""
            if token_response.status_code == 200:
                token_response.read()
                body = token_response.json()
                token = body.get("token") or body.get("access_token", "")
            if token:
                self.tokens[re.sub(r"/(blobs|manifests|tags)/.*$", "/", scope_key)] = token
                request.headers["Authorization"] = f"Bearer {token}"
                yield request

    def _token_request(self, challenge: str) -> httpx.Request:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        headers = {"Authorization": _basic(self.credentials)} if self.credentials else {}
        return httpx.Request("GET", params.get("realm", ""), params=query, headers=headers)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CAs), built once per process: loading
    the CA bundle costs tens of milliseconds of CPU, which a hub would pay on every client."""
    return httpx.create_ssl_context()


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


class RegistryClient:
    """One registry host. Repositories are names like ``lockstep/iris``.

    Methods are synchronous; call them through ``asyncio.to_thread`` from async code.
    """

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials=None,
        timeout=TIMEOUT,
        retries: int = 0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.host = host
        self.retries = retries
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            verify=_tls_context(),
            auth=RegistryAuth(credentials),
            follow_redirects=True,
            transport=transport,
        )

    @classmethod
    def for_host(cls, host: str, *, insecure_registries=(), config_path: Path | None = None,
                 timeout=TIMEOUT, retries: int = 0, auth_file: str = ""):
        """A client for ``host`` using Docker config credentials (``auth_file`` first: a
        mounted pull secret, ``c.Lockstep.registry_auth_file``) and the insecure list."""
        bare = host.split(":")[0]
        insecure = host in insecure_registries or bare in insecure_registries
        credentials = docker_config_auth(host, config_path, auth_file)
        return cls(host, insecure=insecure, credentials=credentials,
                   timeout=timeout, retries=retries)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, url: str, *, ok=(200,), **kwargs) -> httpx.Response:
        tries = 1 + (self.retries if method in ("GET", "HEAD") else 0)
        for attempt in range(tries):
            try:
                return self._request_once(method, url, ok=ok, **kwargs)
            except RegistryUnavailable:
                if attempt + 1 == tries:
                    raise
                time.sleep(RETRY_BACKOFF * (attempt + 1))
        raise AssertionError("unreachable")

    def _request_once(self, method: str, url: str, *, ok=(200,), **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(
                f"registry {self.host} did not answer {method} {url} ({exc.__class__.__name__}: "
                f"{exc or 'no answer'}); start it with `lockstep registry start` or check "
                "c.Lockstep.registry"
            ) from exc
        if response.status_code not in ok:
            self._fail(method, url, response)
        return response

    def _fail(self, method: str, url: str, response: httpx.Response):
        if response.status_code in (401, 403):
            raise RegistryError(
                f"registry {self.host} refused {method} {url} ({response.status_code}); "
                f"log in with `docker login {self.host}` (lockstep reads ~/.docker/config.json)"
            )
        error = RegistryUnavailable if response.status_code >= 500 else RegistryError
        raise error(
            f"registry {self.host}: {method} {url} answered {response.status_code}: "
            f"{response.text[:300]}"
        )

    # -- API ------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when ``/v2/`` answers (200, or 401 asking for credentials)."""
        try:
            return self.client.get("/v2/").status_code in (200, 401)
        except httpx.HTTPError:
            return False

    def blob_exists(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404)).status_code == 200

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True when mounted, False when the registry wants an upload."""
        response = self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": from_repo},
            ok=(201, 202),
        )
        if response.status_code == 202:  # not mountable: cancel the upload session it opened
            location = response.headers.get("location")
            if location:
                self.client.delete(location)
        return response.status_code == 201

    def push_blob(self, repo: str, digest: str, source: Path | bytes) -> int:
        """Monolithic upload (POST then PUT with the body); returns bytes sent."""
        start = self._request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        location = start.headers["location"]
        if isinstance(source, bytes):
            body, size = source, len(source)
            content = body
        else:
            size = Path(source).stat().st_size
            content = _file_chunks(Path(source))
        url = httpx.URL(self.base_url).join(location).copy_merge_params({"digest": digest})
        self._request(
            "PUT",
            str(url),
            content=content,
            ok=(201,),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return size

    def ensure_blob(
        self, repo: str, digest: str, source: Path | bytes, mount_from: tuple[str, ...] = ()
    ) -> int:
        """Make ``digest`` present in ``repo``: HEAD, else mount from a sibling, else upload."""
        if self.blob_exists(repo, digest):
            return 0
        for other in mount_from:
            if other != repo and self.mount_blob(repo, digest, other):
                return 0
        return self.push_blob(repo, digest, source)

    def get_blob(self, repo: str, digest: str) -> bytes:
        data = self._request("GET", f"/v2/{repo}/blobs/{digest}").content
        if sha256_digest(data) != digest:
            raise RegistryError(f"registry {self.host}: blob {digest} in {repo} has other content")
        return data

    def download_blob(self, repo: str, digest: str, dest: Path) -> None:
        """Stream a blob to ``dest`` (atomically)."""
        tmp = Path(dest).with_name(Path(dest).name + ".part")
        with self.client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            if response.status_code != 200:
                response.read()
                self._fail("GET", f"/v2/{repo}/blobs/{digest}", response)
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
        os.replace(tmp, dest)

    def head_manifest(self, repo: str, reference: str) -> str | None:
        """The digest ``reference`` (tag or digest) resolves to, or None when absent."""
        response = self._request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            ok=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        return response.headers.get("docker-content-digest") or (
            reference if reference.startswith("sha256:") else self.get_manifest(repo, reference)[2]
        )

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest by tag or digest."""
        response = self._request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        data = response.content
        media_type = response.headers.get("content-type", "").split(";")[0]
        return data, media_type, sha256_digest(data)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns the digest."""
        self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            content=data,
            ok=(201,),
            headers={"Content-Type": media_type},
        )
        return sha256_digest(data)

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete by digest (the registry needs ``storage.delete.enabled``)."""
        self._request("DELETE", f"/v2/{repo}/manifests/{digest}", ok=(202, 404))

    def list_tags(self, repo: str) -> list[str]:
        response = self._request("GET", f"/v2/{repo}/tags/list", ok=(200, 404))
        if response.status_code == 404:
            return []
        return sorted(response.json().get("tags") or [])


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def for_each_blob(func: Callable[[T], int], items: Sequence[T], workers: int = PUSH_WORKERS):
    """``func`` over ``items`` on at most ``workers`` threads (one client, shared: httpx's
    pool is thread-safe); results in input order, the first error raised once all stop."""
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(func, items))


def copy_image(
    src: RegistryClient,
    src_repo: str,
    dst: RegistryClient,
    dst_repo: str,
    digest: str,
    *,
    tags: tuple[str, ...] = (),
    workdir: Path,
) -> int:
    """Copy an image (manifest by digest, its config and layers) keeping its digest.

    An OCI image index is copied whole: every child manifest's blobs and the child
    manifests by digest, then the index by its digest (``copy_contents``). Blobs the
    destination has are skipped; same-host copies mount. Returns bytes uploaded.
    """
    data, media_type, found = src.get_manifest(src_repo, digest)
    if found != digest:
        raise RegistryError(f"{src.host}/{src_repo}@{digest} returned a manifest of other digest")
    from spawner.image.imagecopy import copy_contents  # it imports this module

    uploaded = copy_contents(src, src_repo, dst, dst_repo, data, workdir=workdir)
    dst.put_manifest(dst_repo, digest, data, media_type)
    for tag in tags:
        dst.put_manifest(dst_repo, tag, data, media_type)
    return uploaded
