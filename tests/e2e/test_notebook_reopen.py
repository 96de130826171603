"""Notebooks remember their environment, and reopen on it (issue 12, "Must show": a notebook
saved in a server carries its digest; reopening it lands on that digest).

A real hub + proxy + the lockstep service + the registry + Docker (``conftest.hub``), and
the e2e image ``D1`` built by ``lockstep build`` (so the image's own Jupyter hook writes the
metadata, and it has JupyterLab from the default server packages). ``e2e-alpha``'s folder
holds the lock D1 was built from, so the spawner gives D1's servers the root ``/`` and
Lab (``launch.landing``). alice's server of ``e2e-alpha`` (stage dev = D1) saves
``workspace/reopen-me.ipynb`` (and a home notebook) through the contents API; read back,
``metadata.lockstep`` names the digest the server's container runs, the project, the stage
and the lock hash. Then dev moves to another image ``D2`` (the trail records that D1 was
promoted to qa, so D1 is a digest a stage held), and the project is relocked: its folder's
``conda-lock.yml`` is no longer D1's, so only D1's own label ``org.lockstep.jupyterlab``
(written by its build) says that D1 serves JupyterLab: the old-digest case, months later.

The service lists the notebooks with D1; a reopen through the API starts the named server
``e2e-alpha-<12 hex of D1>`` whose container and environment run D1, not dev's D2, and
answers ``lab/tree/workspace/reopen-me.ipynb``, which that server serves; a home notebook
lands on the server's start page with a note saying the new server's home is separate
(its home does not hold the notebook). A forged notebook naming a digest no stage held is
refused (403) and starts nothing; carol (not a member) gets 404; a form post without the
hub's XSRF token is refused. In headless Chromium alice clicks "reopen on this exact image"
on the notebooks page and lands in JupyterLab with the notebook open (screenshots under
``artifacts/e2e/``).
"""

from __future__ import annotations

import json

import httpx
import pytest

from spawner.image.registry import RegistryClient
from spawner.labels import JUPYTERLAB
from spawner.launch.projectfacts import read_facts
from spawner.promote.trail import AuditRecord, AuditTrail
from tests.docker.synthetic_image import env_files, push_image
from tests.e2e import reopentools as rt
from tests.e2e.hubtools import PASSWORD, REPO_ROOT, run_code
from tests.support.engine import missing

pytestmark = pytest.mark.e2e
PROJECT = "e2e-alpha"
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
BOGUS = "sha256:" + "ab" * 32
NOTEBOOK, IN_HOME, FORGED = "reopen-me.ipynb", "in-home.ipynb", "forged.ipynb"


def server_of(digest: str) -> str:
    return f"{PROJECT}-{digest[7:19]}"


@pytest.fixture(scope="module")
def saved(hub, e2e_image, locked_project, docker_api):
    """alice saved ``workspace/reopen-me.ipynb``, ``in-home.ipynb`` and a forged notebook on
    dev = D1 (a server with Lab, root ``/``); then dev -> D2."""
    rt.use_lock_of(hub, PROJECT, locked_project("e2e-image", ["python=3.11"]))
    tokens = {
        u: hub.api("POST", f"/users/{u}/tokens", {"note": "reopen"}).json()["token"]
        for u in ("alice", "carol")
    }
    response, _ = hub.spawn("alice", {"project": PROJECT, "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    running = rt.container_of(docker_api, "alice", "")["Labels"]["org.lockstep.digest"]
    assert {"workspace", "home"} <= rt.names_at(hub, "alice", ""), "the root is not /"
    rt.save_notebook(hub, "alice", f"workspace/{NOTEBOOK}", rt.notebook("print('hi')"))
    rt.save_notebook(hub, "alice", f"{rt.HOME_PATH}/{IN_HOME}", rt.notebook("1 + 1"))
    forged = rt.notebook("1", {"lockstep": {"project": PROJECT, "stage": "dev", "digest": BOGUS}})
    rt.save_raw(hub, "alice", f"workspace/{FORGED}", json.dumps(forged))
    back = rt.read_notebook(hub, "alice", f"workspace/{NOTEBOOK}")
    hub.stop_server("alice")
    AuditTrail(hub.root / "state" / "audit.jsonl").append(
        AuditRecord(
            time="2026-01-02T10:00:00.000Z",
            action="promote",
            project=PROJECT,
            user="alice",
            to_stage="qa",
            outcome="promoted",
            digest=e2e_image.digest,
            from_stage="dev",
        )
    )
    with RegistryClient.for_host(e2e_image.registry, insecure_registries=("127.0.0.1",)) as c:
        moved = push_image(
            c,
            f"lockstep/{PROJECT}",
            project=PROJECT,
            lock_hash="sha256:" + "0" * 64,
            files=env_files(),
            tag="dev",
            salt=rt.SERVICE,
        )
    assert moved != e2e_image.digest
    lock = hub.root / "environments" / PROJECT / "conda-lock.yml"  # relocked since D1
    lock.write_bytes(lock.read_bytes() + b"# relocked after D1: the lock is another one\n")
    return {"tokens": tokens, "metadata": back["metadata"], "d2": moved, "running": running}


def test_a_saved_notebook_carries_the_digest_of_its_server(saved, e2e_image):
    meta = saved["metadata"]["lockstep"]
    assert meta["digest"] == saved["running"] == e2e_image.digest  # what the container ran
    assert (meta["project"], meta["stage"]) == (PROJECT, "dev")
    assert meta["image"].endswith("@" + e2e_image.digest)
    assert meta["lock_hash"].startswith("sha256:")


def test_d1_is_of_an_older_lock_and_its_own_label_says_it_has_lab(hub, saved, e2e_image):
    """The project's current lock is not D1's (the facts rule alone would not give Lab),
    and D1's image config carries the JupyterLab version its lock installed."""
    facts = read_facts(hub.root / "environments" / PROJECT)
    assert facts.lock_hash and facts.lock_hash != saved["metadata"]["lockstep"]["lock_hash"]
    assert not facts.serves_lab(saved["metadata"]["lockstep"]["lock_hash"])
    with RegistryClient.for_host(e2e_image.registry, insecure_registries=("127.0.0.1",)) as c:
        manifest = json.loads(c.get_manifest(e2e_image.repo, e2e_image.digest)[0])
        config = json.loads(c.get_blob(e2e_image.repo, manifest["config"]["digest"]))
    assert config["config"]["Labels"][JUPYTERLAB][:1].isdigit(), config["config"]["Labels"]


def test_reopen_starts_the_notebooks_digest_not_the_stages_current_one(
    hub, saved, e2e_image, docker_api
):
    alice, server = saved["tokens"]["alice"], server_of(e2e_image.digest)
    listed = rt.service(hub, "GET", f"api/projects/{PROJECT}/notebooks", alice)
    assert listed.status_code == 200, listed.text
    rows = {(r["location"], r["path"]): r for r in listed.json()["notebooks"]}
    mine = rows[("workspace", NOTEBOOK)]
    assert (mine["digest"], mine["held"]) == (e2e_image.digest, True)
    assert rows[("home", IN_HOME)]["digest"] == e2e_image.digest
    assert (rows[("workspace", FORGED)]["digest"], rows[("workspace", FORGED)]["held"]) == (
        BOGUS,
        False,
    )

    refused = rt.reopen(hub, alice, "workspace", FORGED)
    assert refused.status_code == 403 and "never on a stage" in refused.json()["message"]
    hidden = rt.reopen(hub, saved["tokens"]["carol"], "workspace", NOTEBOOK)
    assert hidden.status_code == 404, hidden.text
    assert hub.server("alice", server) is None and hub.server("carol", server) is None

    from_home = rt.reopen(hub, alice, "home", IN_HOME)
    assert from_home.status_code == 202, from_home.text
    home = from_home.json()
    assert (home["server"], home["url"], home["opens"]) == (
        server,
        f"/user/alice/{server}/",
        "start page",
    )
    assert "home of its own" in home["note"], home
    opened = rt.reopen(hub, alice, "workspace", NOTEBOOK)
    assert opened.status_code == 202, opened.text
    answer = opened.json()
    assert (answer["server"], answer["digest"], answer["opens"]) == (
        server,
        e2e_image.digest,
        "notebook",
    )
    assert answer["user_options"] == {"project": PROJECT, "digest": e2e_image.digest}
    assert answer["url"] == f"/user/alice/{server}/lab/tree/workspace/{NOTEBOOK}"
    rt.wait_ready(hub, "alice", server)
    labels = rt.container_of(docker_api, "alice", server)["Labels"]
    assert labels["org.lockstep.digest"] == e2e_image.digest != saved["d2"]
    out = run_code(hub, "alice", "import os; print(os.environ['LOCKSTEP_IMAGE'])", server)
    assert out["stdout"].strip().endswith("@" + e2e_image.digest), out
    # the address names what the server shows: the workspace notebook, not the home one
    there = rt.read_notebook(hub, "alice", f"workspace/{NOTEBOOK}", server)
    assert there["metadata"]["lockstep"]["digest"] == e2e_image.digest
    assert IN_HOME not in rt.names_at(hub, "alice", rt.HOME_PATH, server)
    hub.stop_server("alice", server)


def test_the_page_button_opens_the_notebook_in_lab_on_the_exact_image(
    hub, saved, e2e_image, docker_api
):
    browser = pytest.importorskip("tests.e2e.browser", reason="needs selenium")
    if not browser.available():
        missing("needs /usr/bin/chromium and /usr/bin/chromedriver")
    by, server = browser.By, server_of(e2e_image.digest)
    lab = f"/user/alice/{server}/lab/tree/workspace/{NOTEBOOK}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser.Browser() as chrome:
        chrome.login(hub.url, "alice", PASSWORD, f"/services/lockstep/?project={PROJECT}")
        assert chrome.driver.find_elements(by.CSS_SELECTOR, "#sessions form.reopen")
        chrome.driver.get(f"{hub.url}/services/lockstep/notebooks?project={PROJECT}")
        row = chrome.driver.find_element(
            by.CSS_SELECTOR, f'tr[data-location="workspace"][data-path="{NOTEBOOK}"]'
        )
        assert e2e_image.digest[:19] in row.text and "JupyterLab" in row.text, row.text
        home_row = chrome.driver.find_element(by.CSS_SELECTOR, f'tr[data-path="{IN_HOME}"]')
        assert "home is separate" in home_row.text, home_row.text
        chrome.save(ARTIFACTS / "service-notebooks.png")
        forged = httpx.post(
            f"{hub.url}/services/lockstep/api/reopen",
            timeout=60,
            data={"project": PROJECT, "location": "workspace", "path": NOTEBOOK},
            cookies=chrome.cookies(),
            follow_redirects=False,
        )
        assert forged.status_code == 403 and hub.server("alice", server) is None
        row.find_element(by.CSS_SELECTOR, "form.reopen button").click()
        rt.wait_ready(hub, "alice", server)
        wait = browser.WebDriverWait(chrome.driver, 240)
        wait.until(lambda d: lab in d.current_url)
        panel = rt.notebook_panel(chrome.driver, wait, "print('hi')")
        assert NOTEBOOK in rt.current_tab(chrome.driver), rt.current_tab(chrome.driver)
        assert panel.is_displayed() and "JupyterLab" in chrome.driver.title
        assert "Python 3" in rt.kernel_idle(chrome.driver, wait)
        chrome.save(ARTIFACTS / "service-reopened.png")
    labels = rt.container_of(docker_api, "alice", server)["Labels"]
    assert labels["org.lockstep.digest"] == e2e_image.digest
    hub.stop_server("alice", server)
