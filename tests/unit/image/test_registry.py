"""The distribution-API client against a behavioural in-memory registry (no daemon)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs

import httpx
import pytest

from spawner.image import oci
from spawner.image.registry import RegistryClient, RegistryError, copy_image, docker_config_auth


class FakeRegistry:
    """Enough of the distribution spec: blobs, uploads (with a signed _state), mounts,
    manifests by tag/digest, tags; optionally Basic or Bearer auth."""

    def __init__(self, auth: str = "", user=("u", "p")) -> None:
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.auth, self.user = auth, user
        self.calls: list[str] = []
        self.uploads: dict[str, str] = {}

    def _authorised(self, request) -> bool:
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            return header == "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        if self.auth == "bearer":
            return header == "Bearer tok-123"
        return True

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.calls.append(f"{method} {path}")
        if path == "/token":
            ok = request.headers.get("authorization", "").startswith("Basic ")
            return httpx.Response(200 if ok else 401, json={"token": "tok-123"})
        if not self._authorised(request):
            challenge = (
                'Basic realm="r"'
                if self.auth == "basic"
                else 'Bearer realm="https://reg.test/token",service="reg",scope="x"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if path == "/v2/":
            return httpx.Response(200)
        query = parse_qs(request.url.query.decode())
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/", path):
            repo = m[1]
            if "mount" in query:
                src = self.blobs.get(query["from"][0], {})
                if query["mount"][0] in src:
                    self.blobs.setdefault(repo, {})[query["mount"][0]] = src[query["mount"][0]]
                    return httpx.Response(201)
            uid = f"u{len(self.uploads)}"
            self.uploads[uid] = repo
            return httpx.Response(
                202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=a%3D"}
            )
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/(\w+)", path):
            if query.get("_state") != ["a="]:
                return httpx.Response(404)
            if method == "DELETE":
                return httpx.Response(204)
            body = request.read()
            digest = query["digest"][0]
            assert oci.sha256_digest(body) == digest
            self.blobs.setdefault(m[1], {})[digest] = body
            return httpx.Response(201)
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:\w+)", path):
            body = self.blobs.get(m[1], {}).get(m[2])
            return httpx.Response(404) if body is None else httpx.Response(200, content=body)
        if m := re.fullmatch(r"/v2/(.+)/manifests/(.+)", path):
            repo, ref = m[1], m[2]
            store = self.manifests.setdefault(repo, {})
            if method == "PUT":
                body = request.read()
                store[ref] = store[oci.sha256_digest(body)] = (
                    body,
                    request.headers["content-type"],
                )
                return httpx.Response(201)
            if ref not in store:
                return httpx.Response(404)
            body, media = store[ref]
            headers = {"Docker-Content-Digest": oci.sha256_digest(body), "Content-Type": media}
            return httpx.Response(200, content=b"" if method == "HEAD" else body, headers=headers)
        if m := re.fullmatch(r"/v2/(.+)/tags/list", path):
            tags = [t for t in self.manifests.get(m[1], {}) if not t.startswith("sha256:")]
            return httpx.Response(200, json={"name": m[1], "tags": tags})
        return httpx.Response(405)

    def client(self, **kwargs) -> RegistryClient:
        return RegistryClient("reg.test", transport=httpx.MockTransport(self.handler), **kwargs)


def test_blob_upload_then_head_then_mount(tmp_path):
    fake = FakeRegistry()
    data = b"layer-bytes" * 100
    digest = oci.sha256_digest(data)
    (tmp_path / "blob").write_bytes(data)
    with fake.client() as client:
        assert client.ensure_blob("ns/a", digest, tmp_path / "blob") == len(data)
        assert client.ensure_blob("ns/a", digest, tmp_path / "blob") == 0
        assert client.ensure_blob("ns/b", digest, tmp_path / "blob", mount_from=("ns/a",)) == 0
        assert fake.blobs["ns/b"][digest] == data
        assert client.ensure_blob("ns/c", digest, data, mount_from=("ns/nothere",)) == len(data)
    assert "DELETE /v2/ns/c/blobs/uploads/u1" in fake.calls  # the unused mount session is closed


def test_manifests_tags_and_digests():
    fake = FakeRegistry()
    body = oci.canonical_json({"schemaVersion": 2, "mediaType": oci.MEDIA_MANIFEST})
    digest = oci.sha256_digest(body)
    with fake.client() as client:
        assert client.head_manifest("ns/a", digest) is None
        assert client.put_manifest("ns/a", digest, body, oci.MEDIA_MANIFEST) == digest
        client.put_manifest("ns/a", "dev", body, oci.MEDIA_MANIFEST)
        assert client.head_manifest("ns/a", "dev") == digest
        assert client.get_manifest("ns/a", "dev") == (body, oci.MEDIA_MANIFEST, digest)
        assert client.list_tags("ns/a") == ["dev"]
        assert client.list_tags("ns/none") == []


def test_basic_auth_from_docker_config(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"auths": {"reg.test": {"auth": base64.b64encode(b"u:p").decode()}}})
    )
    assert docker_config_auth("reg.test", config) == ("u", "p")
    assert docker_config_auth("other.test", config) is None
    fake = FakeRegistry(auth="basic")
    with fake.client(credentials=docker_config_auth("reg.test", config)) as client:
        assert client.list_tags("ns/a") == []


def test_bearer_token_flow():
    fake = FakeRegistry(auth="bearer")
    with fake.client(credentials=("u", "p")) as client:
        assert client.blob_exists("ns/a", "sha256:" + "0" * 64) is False
    assert "GET /token" in fake.calls


def test_refusal_names_docker_login_and_no_secret():
    fake = FakeRegistry(auth="basic", user=("u", "secret"))
    with fake.client(credentials=("u", "wrong-password")) as client:
        with pytest.raises(RegistryError, match="docker login reg.test") as err:
            client.list_tags("ns/a")
    assert "wrong-password" not in str(err.value)


def test_copy_image_keeps_digest(tmp_path):
    src, dst = FakeRegistry(), FakeRegistry()
    layer, config = b"L" * 10, b"{}"
    manifest = oci.canonical_json(
        oci.image_manifest(
            config=oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), 2),
            layers=[oci.Descriptor(oci.MEDIA_LAYER, oci.sha256_digest(layer), 10)],
        )
    )
    digest = oci.sha256_digest(manifest)
    with (
        src.client() as a,
        RegistryClient("dst.test", transport=httpx.MockTransport(dst.handler)) as b,
    ):
        for blob in (layer, config):
            a.push_blob("ns/p", oci.sha256_digest(blob), blob)
        a.put_manifest("ns/p", digest, manifest, oci.MEDIA_MANIFEST)
        assert copy_image(a, "ns/p", b, "prod/p", digest, tags=("prod",), workdir=tmp_path) == 12
        assert b.head_manifest("prod/p", "prod") == digest
        assert copy_image(a, "ns/p", b, "prod/p", digest, workdir=tmp_path) == 0
    assert hashlib.sha256(dst.blobs["prod/p"][oci.sha256_digest(layer)]).hexdigest()


def _push_platform_image(client, repo: str, salt: bytes) -> tuple[str, bytes]:
    layer, config = b"L" * 10 + salt, b'{"a":"' + salt + b'"}'
    for blob in (layer, config):
        client.push_blob(repo, oci.sha256_digest(blob), blob)
    manifest = oci.canonical_json(
        oci.image_manifest(
            config=oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), len(config)),
            layers=[oci.Descriptor(oci.MEDIA_LAYER, oci.sha256_digest(layer), len(layer))],
        )
    )
    client.put_manifest(repo, oci.sha256_digest(manifest), manifest, oci.MEDIA_MANIFEST)
    return oci.sha256_digest(manifest), manifest


def test_copy_image_copies_an_index_with_each_platform_manifest_by_digest(tmp_path):
    from spawner.image.index import PlatformManifest, image_index

    src, dst = FakeRegistry(), FakeRegistry()
    with (
        src.client() as a,
        RegistryClient("dst.test", transport=httpx.MockTransport(dst.handler)) as b,
    ):
        amd = _push_platform_image(a, "ns/p", b"amd")
        arm = _push_platform_image(a, "ns/p", b"arm")
        index = image_index([PlatformManifest("linux-64", amd[0], len(amd[1])),
                             PlatformManifest("linux-aarch64", arm[0], len(arm[1]))])
        digest = oci.sha256_digest(index)
        a.put_manifest("ns/p", digest, index, oci.MEDIA_INDEX)
        sent = copy_image(a, "ns/p", b, "prod/p", digest, tags=("prod",), workdir=tmp_path)
        assert sent == sum(len(x) for x in dst.blobs["prod/p"].values()) > 0
        assert b.head_manifest("prod/p", "prod") == digest
        data, media_type, found = b.get_manifest("prod/p", digest)
        assert (data, media_type, found) == (index, oci.MEDIA_INDEX, digest)
        for child_digest, child in (amd, arm):
            assert b.get_manifest("prod/p", child_digest)[0] == child
            for blob in (d["digest"] for d in [json.loads(child)["config"],
                                               *json.loads(child)["layers"]]):
                assert b.blob_exists("prod/p", blob)
        assert copy_image(a, "ns/p", b, "prod/p", digest, workdir=tmp_path) == 0
    assert not list(tmp_path.iterdir())


def test_blobs_go_up_concurrently_bounded_and_in_order():
    import threading
    import time

    from spawner.image.registry import PUSH_WORKERS, for_each_blob

    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def upload(n: int) -> int:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return n * 10

    assert for_each_blob(upload, list(range(20))) == [n * 10 for n in range(20)]
    assert 1 < state["most"] <= PUSH_WORKERS

    def failing(n: int) -> int:
        if n == 3:
            raise RegistryError("blob 3 refused")
        return n

    with pytest.raises(RegistryError, match="blob 3"):
        for_each_blob(failing, list(range(8)))
