"""The Docker spawner's choices and request checks, against a behavioural fake registry.

The fake speaks the distribution API reads lockstep uses (HEAD/GET manifests by tag or
digest, GET config blobs), so ``spawner.launch.stages`` runs unchanged. No Docker engine needed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

from spawner.docker.spawner import LockstepDockerSpawner
from spawner.launch.options import options_from_form, parse_user_options
from spawner.launch.stages import available_stages, resolve_stage
from spawner.launch.state import LaunchState
from spawner.sessions import Session, append_event, start_event
from tests.unit.hubfakes import Group, User

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class FakeRegistry:
    """repo -> {tag: digest}, digest -> manifest bytes, blob digest -> bytes."""

    def __init__(self):
        self.tags: dict[str, dict[str, str]] = {}
        self.blobs: dict[str, bytes] = {}

    def push(self, repo: str, lock_hash: str, tags: list[str], salt: str = "") -> str:
        config = json.dumps({"config": {"Labels": {"org.lockstep.lock-hash": lock_hash}},
                             "salt": salt}).encode()
        cdig = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"digest": cdig, "size": len(config)},
                               "layers": []}).encode()
        mdig = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self.blobs[cdig], self.blobs[mdig] = config, manifest
        for tag in tags:
            self.tags.setdefault(repo, {})[tag] = mdig
        return mdig

    def handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: bytes | None, digest: str = ""):
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def do_GET(self):
                path = self.path.removeprefix("/v2/")
                name, kind, ref = path.rsplit("/", 2)
                if kind == "manifests":
                    digest = ref if ref.startswith("sha256:") else \
                        registry.tags.get(name, {}).get(ref, "")
                    return self._answer(registry.blobs.get(digest), digest)
                return self._answer(registry.blobs.get(ref))

            do_HEAD = do_GET

        return Handler


@pytest.fixture
def registry():
    fake = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.host = f"127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()


PROJECTS = {
    "iris": "members: {users: [alice], groups: [iris-team]}\n",
    "wine": "members: {users: [carol]}\ngpu: {count: 1}\n",
    "empty": "members: {users: [alice]}\n",
}


@pytest.fixture
def site(tmp_path, registry):
    env = tmp_path / "environments"
    for name, body in PROJECTS.items():
        (env / name).mkdir(parents=True)
        (env / name / "project.yaml").write_text(f"name: {name}\n{body}")
    (env / "broken").mkdir()
    (env / "broken" / "project.yaml").write_text("name: other-name\n")
    c = Config()
    c.Lockstep.environments_dir = str(env)
    c.Lockstep.data_dir = str(tmp_path / "state")
    c.Lockstep.registry = f"{registry.host}/lockstep"
    digests = {
        "iris-dev": registry.push("lockstep/iris", "l1" * 32, ["dev"]),
        "iris-prod": registry.push("lockstep/iris", "l2" * 32, ["qa", "prod"], salt="p"),
        "wine-dev": registry.push("lockstep/wine", "l3" * 32, ["dev"]),
    }
    return c, digests, tmp_path


def make(config, user: User, options=None) -> LockstepDockerSpawner:
    spawner = LockstepDockerSpawner(user=user, config=config)
    spawner.user_options = options or {}
    return spawner


async def choices(spawner):
    mine, available = await spawner.choices()
    return {p.name: available.get(p.name, {}) for p in mine}


async def test_choices_filtered_by_membership(site):
    config, digests, _ = site
    got = await choices(make(config, User("alice")))
    assert set(got) == {"iris", "empty"}  # 'wine' is not hers
    assert got["empty"] == {}
    assert set(got["iris"]) == {"dev", "qa", "prod"}
    assert got["iris"]["prod"].digest == digests["iris-prod"]
    assert set(await choices(make(config, User("bob", groups=[Group("iris-team")])))) == {"iris"}
    assert set(await choices(make(config, User("root", admin=True)))) == {"iris", "wine", "empty"}
    assert await choices(make(config, User("mallory"))) == {}


async def test_form_lists_only_allowed(site):
    config, _, _ = site
    form = await make(config, User("alice")).get_options_form()
    assert 'value="iris/dev"' in form and 'value="iris/prod" checked' in form
    assert "wine" not in form and "empty/" not in form and "GPU" not in form
    carol = await make(config, User("carol")).get_options_form()
    assert 'value="wine/dev"' in carol and 'name="no_gpu"' in carol


async def test_non_member_gets_the_404_of_a_missing_project(site):
    config, _, _ = site
    with pytest.raises(SpawnException) as err:
        await make(config, User("carol"), {"project": "iris"}).resolve_request()
    assert err.value.status_code == 404
    hidden = err.value.message
    assert "No project you may launch is called 'iris'" in hidden and "alice" not in hidden
    with pytest.raises(SpawnException) as err:
        await make(config, User("carol"), {"project": "nope"}).resolve_request()
    assert err.value.status_code == 404
    assert err.value.message == hidden.replace("'iris'", "'nope'")


async def test_stage_resolution(site):
    config, digests, _ = site
    _, stage, image, _ = await make(config, User("alice"), {"project": "iris"}).resolve_request()
    assert (stage, image.digest, image.lock_hash) == ("prod", digests["iris-prod"], "l2" * 32)
    _, stage, image, _ = await make(config, User("alice"),
                                    {"project": "iris", "stage": "dev"}).resolve_request()
    assert (stage, image.digest) == ("dev", digests["iris-dev"])
    with pytest.raises(SpawnException, match="no image at stage 'prod'") as err:
        await make(config, User("carol"), {"project": "wine", "stage": "prod"}).resolve_request()
    assert err.value.status_code == 409
    with pytest.raises(SpawnException, match="unknown stage .staging.; this site.s stages") as err:
        await make(config, User("alice"), {"project": "iris", "stage": "staging"}
                   ).resolve_request()
    assert err.value.status_code == 400


async def test_pinned_digest_and_unknown_digest(site):
    config, digests, _ = site
    spawner = make(config, User("alice"), {"project": "iris", "digest": digests["iris-dev"]})
    _, stage, image, _ = await spawner.resolve_request()
    assert (stage, image.digest, image.lock_hash) == ("pinned", digests["iris-dev"], "l1" * 32)
    with pytest.raises(SpawnException, match="was never on a stage of 'iris'") as err:
        await make(config, User("alice"), {"project": "iris", "digest": "sha256:" + "0" * 64}
                   ).resolve_request()
    assert err.value.status_code == 403
    config.Lockstep.allow_any_digest = True  # the site's choice: then only the registry asks
    with pytest.raises(SpawnException, match="no image .*lockstep sessions"):
        await make(config, User("alice"), {"project": "iris", "digest": "sha256:" + "0" * 64}
                   ).resolve_request()


async def test_a_pinned_digest_must_be_one_a_stage_held(site, registry):
    from spawner.promote.trail import AuditRecord, AuditTrail

    config, digests, tmp = site
    old = registry.push("lockstep/iris", "l4" * 32, [], salt="old")  # in the repo, no stage
    bad = registry.push("lockstep/iris", "l5" * 32, [], salt="bad")  # failed its gates
    trail = AuditTrail(tmp / "state" / "audit.jsonl")
    for digest, outcome, previous in ((old, "promoted", None), (bad, "refused", None),
                                      (digests["iris-prod"], "promoted", old)):
        trail.append(AuditRecord(time="2026-01-01T00:00:00Z", action="promote",
                                 project="iris", user="alice", to_stage="qa",
                                 outcome=outcome, digest=digest, previous_digest=previous))
    spawner = make(config, User("alice"), {"project": "iris", "digest": old})
    _, stage, image, _ = await spawner.resolve_request()  # qa held it before prod's image
    assert (stage, image.digest) == ("pinned", old)
    with pytest.raises(SpawnException, match="never on a stage") as err:
        await make(config, User("alice"), {"project": "iris", "digest": bad}).resolve_request()
    assert err.value.status_code == 403 and "allow_any_digest" in err.value.message
    with pytest.raises(SpawnException, match="never on a stage"):  # another project's trail
        await make(config, User("carol"), {"project": "wine", "digest": old}).resolve_request()


async def test_session_respawn(site):
    """A recorded session runs again on the exact image it ran, even after its stage moved."""
    config, digests, tmp = site
    log = tmp / "state" / "sessions.jsonl"
    ran = f"{config.Lockstep.registry}/iris@{digests['iris-prod']}"
    append_event(log, start_event(Session(
        id="s1", user="alice", project="iris", stage="dev", digest=digests["iris-prod"],
        image=ran, lock_hash="l2" * 32)))
    project, stage, image, _ = await make(config, User("alice"), {"session": "s1"}
                                          ).resolve_request()
    assert (project.name, stage, image.reference) == ("iris", "dev", ran)
    assert image.lock_hash == "l2" * 32
    with pytest.raises(SpawnException) as err:
        await make(config, User("alice"), {"session": "no-such"}).resolve_request()
    assert err.value.status_code == 404
    with pytest.raises(SpawnException) as err:
        await make(config, User("bob", groups=[Group("iris-team")]), {"session": "s1"}
                   ).resolve_request()
    assert err.value.status_code == 403


async def test_gpu_option_checked(site):
    config, _, _ = site
    with pytest.raises(SpawnException, match="has no GPUs to give"):
        await make(config, User("alice"), {"project": "iris", "gpu": True}).resolve_request()
    *_, gpu = await make(config, User("carol"), {"project": "wine", "gpu": False}
                         ).resolve_request()
    assert gpu is False


def test_user_options_shape():
    assert parse_user_options({"project": "iris", "gpu": "false"}).gpu is False
    with pytest.raises(Exception, match="unknown user_options image"):
        parse_user_options({"image": "evil/image"})
    with pytest.raises(Exception, match="not a digest"):
        parse_user_options({"digest": "latest"})
    assert options_from_form({"target": ["iris/qa"], "no_gpu": ["on"]}) == {
        "project": "iris", "stage": "qa", "gpu": False}


def test_state_roundtrip(site):
    config, _, _ = site
    spawner = make(config, User("alice"))
    spawner.object_id = "abc"
    image = "r/lockstep/iris@sha256:" + "a" * 64
    spawner._launch = LaunchState(project="iris", image=image, session="s1", stage="dev",
                                  engine={"network": "lockstep-iris"})
    state = spawner.get_state()
    assert state["lockstep"] == {"project": "iris", "stage": "dev", "image": image,
                                 "session": "s1", "engine": {"network": "lockstep-iris"}}
    fresh = make(config, User("alice"))
    fresh.load_state(state)
    assert fresh._launch == spawner._launch and fresh._launch.digest == "sha256:" + "a" * 64
    assert (fresh.object_name, fresh.object_id, fresh.network_name) == (
        "lockstep-alice", "abc", "bridge")  # the trait stays the site's
    old = make(config, User("alice"))  # the shape written before LaunchState still loads
    old.load_state({"object_id": "abc", "lockstep": {"project": "iris", "image": image,
                                                     "network": "lockstep-iris"}})
    assert old._launch.engine == {"network": "lockstep-iris"} and old._launch.project == "iris"
    fresh.clear_state()
    assert fresh._launch is None and "lockstep" not in fresh.get_state()


def test_traits_validate_and_return(site):
    config, _, _ = site
    config.LockstepDockerSpawner.hardening = {"read_only_root": 0}
    config.LockstepDockerSpawner.gpu_mode = "cdi"
    spawner = make(config, User("alice"))
    assert spawner.hardening == {"read_only_root": False}
    assert spawner.gpu_mode == "cdi"
    with pytest.raises(Exception, match="unknown hardening keys"):
        spawner.hardening = {"privileged": True}
    with pytest.raises(Exception, match="gpu_mode must be one of"):
        spawner.gpu_mode = "magic"


def test_site_settings_come_from_hub_config(site):
    config, _, _ = site
    spawner = make(config, User("alice"))
    assert spawner.settings.environments_dir == config.Lockstep.environments_dir
    assert spawner.cmd == ["/opt/env/bin/jupyterhub-singleuser"]


def test_stage_reads(site, registry):
    config, digests, _ = site
    from spawner.settings import Lockstep

    settings = Lockstep(config=config)
    assert resolve_stage(settings, "iris", "qa").digest == digests["iris-prod"]
    assert resolve_stage(settings, "nope", "dev") is None
    assert list(available_stages(settings, "wine")) == ["dev"]
