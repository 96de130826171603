"""The spawn page in a real browser: headless Chromium (selenium) against the e2e hub.

What a person sees and does, not what the REST API accepts: each test user logs in through
the hub's login form and opens ``/hub/spawn``; the form must offer exactly the projects the
user may launch (``PROJECTS`` members by user or by group from ``GROUPS``; the admin sees
every project), each only at the stages whose pointer tag exists in the registry right now,
and the "start without GPUs" box only when one of those projects has GPUs. A GPU project
submitted without that box, on a host without GPUs, must come back as a refusal on the page
with nothing started. Then one member picks a project that is not the preselected one,
ticks that box and presses Start; the progress page must land on the running server, which
answers the browser's own cookies (after the OAuth round trip through the hub), and the hub
must report the chosen project in the server's ``user_options`` and spawner state. The
server is stopped at the end.

Screenshots of every spawn page and of the spawned server are kept in ``artifacts/e2e/``.
Uses Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``scripts/setup.sh``
installs both); skips only where they are missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import yaml

from spawner.launch.state import from_state
from tests.e2e import hubtools
from tests.e2e.hubtools import GROUPS, PASSWORD, REPO_ROOT, RUN_ID, TOKEN

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
USERS = ("alice", "bob", "carol", "admin")  # hubtools' GROUPS members, plus the hub admin
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))

_missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(_missing), reason=f"{' and '.join(_missing)} not installed "
                       "(apt-get install chromium chromium-driver; scripts/setup.sh does)"),
]


# ---- the browser ---------------------------------------------------------------------
@pytest.fixture
def browser():
    """A fresh headless Chromium (own profile, so no cookies carry over between users)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox",  # root: the setuid sandbox refuses to run
                "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
                "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        text = driver.find_element("tag name", "body").text[:2000]
        raise AssertionError(f"{what}: not after {timeout}s; at {driver.current_url}:\n{text}"
                             ) from None


def log_in(driver, hub, user: str, admin: bool = False) -> None:
    """Through the hub's own login form (username + password fields, any authenticator).

    SharedPasswordAuthenticator lets admins in only with their own password
    (``hubtools.ADMIN_PASSWORD``); DummyAuthenticator takes ``PASSWORD`` from everyone."""
    from selenium.webdriver.common.by import By

    password = getattr(hubtools, "ADMIN_PASSWORD", PASSWORD) if admin else PASSWORD
    driver.get(f"{hub.url}/hub/login")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_for(driver, lambda d: "/hub/login" not in d.current_url, 30, f"login of {user}")
    assert any(c["name"].startswith("jupyterhub-session") for c in driver.get_cookies()), \
        driver.get_cookies()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def form_options(driver) -> dict[str, str]:
    """value -> "project (stage)" of the spawn form's ``target`` radio buttons: the project
    from the group's legend, the stage from the button's own label."""
    return driver.execute_script(
        "const out = {};"
        "for (const r of document.querySelectorAll('#spawn_form input[name=target]')) {"
        "  const group = r.closest('fieldset.lockstep-project');"
        "  const label = document.querySelector(`label[for='${r.id}']`);"
        "  out[r.value] = `${group.querySelector('legend').textContent.trim()} "
        "(${label.textContent.trim()})`; }"
        "return out;")


def choose(driver, value: str) -> None:
    """Pick ``value`` on the form by clicking its label, as a person would."""
    from selenium.webdriver.common.by import By

    radio = driver.find_element(By.CSS_SELECTOR, f"#spawn_form input[value='{value}']")
    driver.find_element(By.CSS_SELECTOR, f"label[for='{radio.get_attribute('id')}']").click()
    assert radio.is_selected(), value


# ---- what the page should show, from the test's own definitions and the registry -------
def hub_settings(hub):
    from spawner.settings import load_settings

    return load_settings(str(hub.root / "jupyterhub_config.py"))


def stage_digests(settings, project: str) -> dict[str, str]:
    """stage -> digest for each configured stage whose pointer tag is in the registry."""
    from spawner.launch.stages import split_repository, stage_repository

    found = {}
    for stage in settings.stages:
        host, name = split_repository(stage_repository(settings, project, stage))
        reply = httpx.head(f"http://{host}/v2/{name}/manifests/{stage}", timeout=30,
                           headers={"Accept": MANIFEST_TYPES})
        assert reply.status_code in (200, 404), (project, stage, reply.status_code)
        if reply.status_code == 200:
            found[stage] = reply.headers["docker-content-digest"]
    return found


def site_projects(hub) -> dict[str, dict]:
    """name -> project.yaml, as the ``site`` fixture wrote them from conftest's PROJECTS."""
    found = {p.parent.name: yaml.safe_load(p.read_text())
             for p in sorted((hub.root / "environments").glob("*/project.yaml"))}
    assert len(found) >= 2, found
    return found


def expected_projects(projects: dict[str, dict], user: str, admin: bool) -> set[str]:
    """Members by user name, or by a group of hubtools' GROUPS; the admin: every project."""
    groups = {g for g, names in GROUPS.items() if user in names}
    mine = set()
    for name, spec in projects.items():
        members = spec.get("members") or {}
        if admin or user in (members.get("users") or ()) or groups & set(
                members.get("groups") or ()):
            mine.add(name)
    return mine


# ---- tests ---------------------------------------------------------------------------
@pytest.mark.parametrize("user", USERS)
def test_spawn_page_lists_exactly_my_projects_at_stages_with_a_digest(hub, e2e_image, browser,
                                                                      user):
    from selenium.webdriver.common.by import By

    model = hub.api("GET", f"/users/{user}").json()
    assert model["name"] == user, model
    projects = site_projects(hub)
    mine = expected_projects(projects, user, admin=model["admin"])
    assert mine, f"{user} is a member of no e2e project; the page would show no choice"
    settings = hub_settings(hub)
    digests = {name: stage_digests(settings, name) for name in projects}
    for name in projects:  # the site fixture points every project's dev at the e2e image
        assert digests[name].get("dev") == e2e_image.digest, (name, digests[name])
    without = [(p, s) for p in sorted(mine) for s in settings.stages if s not in digests[p]]
    assert without, "every stage has a digest: nothing shows that stages without one are hidden"

    log_in(browser, hub, user, admin=model["admin"])
    browser.get(f"{hub.url}/hub/spawn")
    wait_for(browser, lambda d: d.find_elements(By.ID, "spawn_form"), 60,
             f"the spawn form for {user}")
    shown = form_options(browser)
    screenshot(browser, f"spawn-page-{user}")

    wanted = {f"{p}/{s}" for p in mine for s in digests[p]}
    assert set(shown) == wanted, (user, sorted(shown))
    assert len(shown) == len(wanted), shown  # no project/stage listed twice
    for value, text in shown.items():
        project, stage = value.split("/")
        assert text.startswith(f"{project} ({stage})"), (value, text)
    assert all(f"{p}/{s}" not in shown for p, s in without), shown
    others = set(projects) - mine
    page = browser.find_element(By.ID, "spawn_form").text
    assert not any(name in page for name in others), (others, page)
    gpu_boxes = browser.find_elements(By.CSS_SELECTOR, "#spawn_form input[name=no_gpu]")
    assert len(gpu_boxes) == int(any(projects[p].get("gpu") for p in mine)), (user, len(gpu_boxes))


def test_gpu_project_without_the_box_is_refused_on_the_page(hub, browser, docker_api):
    """On a host that cannot give GPUs, the form can submit e2e-vision with GPUs; the
    person must get the refusal, with the way out, on the spawn page, and nothing starts."""
    from selenium.webdriver.common.by import By

    info = docker_api.info()
    if "nvidia" in (info.get("Runtimes") or {}) or info.get("CDISpecDirs"):
        pytest.skip("this Docker host can give GPUs, so the spawn would not be refused")
    log_in(browser, hub, "carol")
    browser.get(f"{hub.url}/hub/spawn")
    choose(browser, "e2e-vision/dev")
    assert not browser.find_element(By.CSS_SELECTOR, "input[name=no_gpu]").is_selected()
    browser.find_element(By.CSS_SELECTOR, "#spawn_form button[type=submit]").click()
    alert = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".spawn-error-msg"),
                     60, "the refusal on the spawn page")[0].text
    screenshot(browser, "spawn-page-carol-gpu-refused")
    assert "e2e-vision" in alert and "cannot give containers GPUs" in alert, alert
    assert "without a GPU" in alert, alert  # the way out: the "Start without GPUs" box
    assert browser.find_elements(By.ID, "spawn_form")  # the form is back, to choose again
    assert hub.server("carol") is None, hub.server("carol")
    assert not docker_api.containers(all=True, filters={
        "name": "lockstep-carol", "label": f"org.lockstep-e2e.run={RUN_ID}"})


def test_member_starts_chosen_project_from_the_form(hub, e2e_image, browser, docker_api):
    """carol picks e2e-vision (not the preselected e2e-beta), ticks "Start without GPUs"
    and presses Start; the browser ends on her running server."""
    from selenium.webdriver.common.by import By

    user, project = "carol", "e2e-vision"
    projects = site_projects(hub)
    assert project in expected_projects(projects, user, admin=False), projects
    assert projects[project].get("gpu"), projects[project]
    assert hub.server(user) is None, hub.server(user)
    log_in(browser, hub, user)
    browser.get(f"{hub.url}/hub/spawn")
    preselected = browser.find_element(
        By.CSS_SELECTOR, "#spawn_form input[name=target]:checked").get_attribute("value")
    assert preselected != f"{project}/dev", preselected  # the choice below must matter
    choose(browser, f"{project}/dev")
    box = browser.find_element(By.CSS_SELECTOR, "#spawn_form input[name=no_gpu]")
    box.click()
    assert box.is_selected()
    began = time.monotonic()
    try:
        browser.find_element(By.CSS_SELECTOR, "#spawn_form button[type=submit]").click()
        server_prefix = f"{hub.url}/user/{user}/"
        wait_for(browser, lambda d: d.current_url.startswith(server_prefix), 300,
                 f"the progress page sending {user} to her server")
        took = time.monotonic() - began
        wait_for(browser, lambda d: d.execute_script("return document.readyState") == "complete",
                 60, "the server's page to load")
        landed, title = browser.current_url, browser.title
        print(f"\nform submit -> {landed} in {took:.1f}s; title {title!r}")
        assert "Jupyter" in title, (landed, title, browser.page_source[:1000])
        screenshot(browser, f"server-{user}")

        # e2e-vision's folder holds no lock: its image's own JupyterLab label gives Lab on
        # the workspace and the root / (``launch.landing``), so the home is home/jovyan
        assert landed.startswith(f"{server_prefix}lab/tree/workspace"), landed
        # Open another authenticated page (a file, put there with the admin token) and
        # let the browser do the OAuth round trip through the hub, as a person would.
        name, text = "home/jovyan/from-the-form.txt", f"{project} started from the spawn form"
        put = httpx.put(f"{server_prefix}api/contents/{name}", timeout=30,
                        headers={"Authorization": f"token {TOKEN}"},
                        json={"type": "file", "format": "text", "content": text})
        assert put.status_code in (200, 201), put.text
        anonymous = httpx.get(f"{server_prefix}files/{name}", timeout=30)
        assert anonymous.status_code == 302 and "/hub/" in anonymous.headers["location"], \
            (anonymous.status_code, anonymous.headers)
        browser.get(f"{server_prefix}files/{name}")
        wait_for(browser, lambda d: d.current_url == f"{server_prefix}files/{name}"
                 and text in d.find_element(By.TAG_NAME, "body").text, 60,
                 "the file, after the browser's OAuth round trip through the hub")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        assert f"jupyterhub-user-{user}" in cookies, sorted(cookies)
        screenshot(browser, f"server-{user}-file")

        # the server's API answers the browser's cookies (as carol), and nobody without them
        for path in ("api/status", "api/me"):
            reply = httpx.get(f"{server_prefix}{path}", cookies=cookies, timeout=30)
            assert reply.status_code == 200, (path, reply.status_code, reply.text[:500])
            assert httpx.get(f"{server_prefix}{path}", timeout=30).status_code == 403, path
        assert reply.json()["identity"]["username"] == user, reply.text
        assert httpx.get(landed, cookies=cookies, timeout=30).status_code == 200, landed

        # the hub ran what the form asked for
        server = hub.server(user)
        assert server and server["ready"], server
        assert server["user_options"] == {"project": project, "stage": "dev", "gpu": False}, \
            server["user_options"]
        state = from_state(server["state"])  # LaunchState: the digest is in the image
        assert (state.project, state.stage, state.digest) == \
            (project, "dev", e2e_image.digest), state
        info = docker_api.inspect_container(server["state"]["object_name"])  # DockerSpawner's
        assert info["State"]["Running"], info["State"]
        assert info["Config"]["Labels"]["org.lockstep.project"] == project
        assert info["Config"]["Labels"]["org.lockstep.user"] == user
        assert not info["HostConfig"].get("DeviceRequests"), info["HostConfig"]["DeviceRequests"]
    finally:
        hub.stop_server(user)
    assert hub.server(user) is None, hub.server(user)



def test_the_form_shows_what_each_stage_holds_and_the_server_opens_jupyterlab(
        hub, e2e_image, browser, locked_project):
    """With e2e-beta's folder holding the lock its image was built from, carol's form shows
    e2e-beta's digest and main packages with their locked versions and e2e-vision's GPU;
    started from the form, her server opens JupyterLab on the project's workspace."""
    from selenium.webdriver.common.by import By

    user, project = "carol", "e2e-beta"
    folder = hub.root / "environments" / project
    image_dir = locked_project("e2e-image", ["python=3.11"])  # the lock e2e_image is built from
    lock = yaml.safe_load((image_dir / "conda-lock.yml").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"] if p["platform"] == "linux-64"}
    copied = [folder / n for n in ("environment.yml", "conda-lock.yml")]
    for path in copied:
        path.write_bytes((image_dir / path.name).read_bytes())
    try:
        log_in(browser, hub, user)
        browser.get(f"{hub.url}/hub/spawn")
        radio = browser.find_element(By.CSS_SELECTOR, f"#spawn_form input[value='{project}/dev']")
        details = browser.find_element(By.ID, radio.get_attribute("aria-describedby")).text
        screenshot(browser, "spawn-form-details")
        short = e2e_image.digest[:len("sha256:") + 12]
        assert short in details, details
        assert f"python {versions['python']}" in details.replace("\xa0", " "), details
        assert "opens in JupyterLab" in details and versions["jupyterlab"].startswith("4."), \
            (details, versions["jupyterlab"])
        vision = browser.find_element(By.CSS_SELECTOR, "fieldset[data-project='e2e-vision']").text
        assert "GPU" in vision and "nvidia" in vision, vision

        choose(browser, f"{project}/dev")
        browser.find_element(By.CSS_SELECTOR, "#spawn_form button[type=submit]").click()
        lab = f"{hub.url}/user/{user}/lab"
        wait_for(browser, lambda d: d.current_url.startswith(lab), 300,
                 f"{user}'s server opening JupyterLab")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item"),
                 120, "JupyterLab's file browser")
        assert browser.current_url.startswith(f"{lab}/tree/workspace"), browser.current_url
        assert "JupyterLab" in browser.title, browser.title
        screenshot(browser, f"jupyterlab-{user}")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        page = httpx.get(lab, cookies=cookies, timeout=60)
        assert page.status_code == 200 and "JupyterLab" in page.text, page.status_code
        listing = httpx.get(f"{hub.url}/user/{user}/api/contents/", cookies=cookies, timeout=60)
        names = {item["name"] for item in listing.json()["content"]}
        assert {"workspace", "home"} <= names, names  # the root: workspace and home in view
    finally:
        hub.stop_server(user)
        for path in copied:
            path.unlink(missing_ok=True)
    assert hub.server(user) is None, hub.server(user)
