"""sdists that fail, attack the host, or embed their build path: the build sandbox holds.

Real parts only: a python 3.11 environment locked and installed with real rattler from the
test channel, sdists made here with in-tree PEP 517 backends (``backend-path``, no build
requirement) served from a local index over loopback, fetched and hash-checked by
``install_wheels``, built under real bubblewrap. The hostile backend really tries to reach
a listener this test opened, to write outside its scratch folder and to read a 0600 file
under the real home; it writes what it saw into the wheel, so a backend that never ran
cannot pass for a sandbox that held.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import uuid
import zipfile
from pathlib import Path

import pytest

from spawner import cli
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pipbuild import SdistBuildError, build_system, build_wheel, extract
from spawner.lock.pipinstall import BUILT, Wheel, install_wheels
from spawner.lock.pypi import PipInputs
from tests.channel.pypi_index import ensure_wheels, serve_index, tar_gz, write_pages

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SITE = "lib/python3.11/site-packages"
BWRAP = shutil.which("bwrap")
pytestmark = pytest.mark.skipif(
    BWRAP is None, reason="bwrap is not installed (apt-get install bubblewrap)"
)
FLIT = "flit_core-4.2.0-py3-none-any.whl"
WHEEL_WRITER = """
import os
import zipfile

def _wheel(out, name, files):
    dist = name + "-1.0"
    info = dist + ".dist-info"
    files = dict(files)
    files[info + "/METADATA"] = "Metadata-Version: 2.1\\nName: %s\\nVersion: 1.0\\n" % name
    files[info + "/WHEEL"] = ("Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true"
                              "\\nTag: py3-none-any\\n")
    files[info + "/RECORD"] = "".join(n + ",,\\n" for n in sorted(files))
    wheel = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(out, wheel), "w") as archive:
        for member, text in sorted(files.items()):
            archive.writestr(member, text)
    return wheel
"""


def make_sdist(folder: Path, name: str, backend: str) -> Path:
    """``<name>-1.0.tar.gz``: PKG-INFO (2.2, so uv reads it without building), an in-tree
    backend ``testbackend`` (``backend-path = ["."]``, no requirement) and its package."""
    top = f"{name}-1.0"
    files = {
        f"{top}/PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: 1.0\n",
        f"{top}/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "testbackend"'
        '\nbackend-path = ["."]\n',
        f"{top}/testbackend.py": WHEEL_WRITER + backend,
        f"{top}/{name}/__init__.py": "",
    }
    path = folder / "files" / f"{top}.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    tar_gz(path, files)
    write_pages(folder)
    return path


FAILING = """
def build_wheel(out, config_settings=None, metadata_directory=None):
    for n in range(60):
        print("building step %d of sdistfail" % n)
    raise RuntimeError("error: command 'gcc' failed: No such file or directory")
"""
EMBEDDING = """
def build_wheel(out, config_settings=None, metadata_directory=None):
    source = "BUILT_IN = %r\\nBACKEND = %r\\n" % (os.getcwd(), __file__)
    return _wheel(out, "@NAME@", {"@NAME@/__init__.py": source})
"""


def embedding(name: str) -> str:
    """A backend that writes its build folder (``os.getcwd()``) into ``name``."""
    return EMBEDDING.replace("@NAME@", name)


HOSTILE = """
import json
import socket

def attempt(action):
    try:
        return "done: " + repr(action())
    except BaseException as exc:
        return "failed: " + type(exc).__name__ + ": " + str(exc)

def write(path):
    with open(path, "w") as out:
        out.write("pwned")

def build_wheel(out, config_settings=None, metadata_directory=None):
    targets = @TARGETS@
    report = {"connect": attempt(
        lambda: socket.create_connection(("127.0.0.1", @PORT@), timeout=3).close())}
    for key, path in sorted(targets.items()):
        report["write " + key] = attempt(lambda: write(path))
    report["read secret"] = attempt(lambda: open(@SECRET@).read())
    report["uid"] = os.getuid()
    text = "REPORT = " + repr(json.dumps(report, sort_keys=True)) + "\\n"
    return _wheel(out, "hostile", {"hostile/__init__.py": text})
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A local index (module's own) with the pinned flit_core wheel; (root, files URL)."""
    root = tmp_path_factory.mktemp("sdist-index")
    (root / "files").mkdir()
    shutil.copy2(ensure_wheels() / FLIT, root / "files" / FLIT)
    write_pages(root)
    with serve_index(root) as url:
        yield root, url.rsplit("/", 1)[0] + "/files"


def served(index, path: Path, name: str, version: str = "1.0") -> Wheel:
    """The lock entry ``install_wheels`` gets for a file the index serves."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Wheel(name=name, version=version, url=f"{index[1]}/{path.name}", sha256=sha)


def lock(folder: Path, text: str, channel: Path, pip: PipInputs | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text(text)
    inputs = LockInputs(
        channel_urls={"conda-forge": channel.as_uri()},
        virtual_packages={"linux-64": LINUX},
        pip=pip,
    )
    lock_environment(folder, inputs, progress=None)
    return folder / "conda-lock.yml"


def cli_site(index, channel: Path, tmp_path: Path, package: str, extra: str = "") -> tuple:
    """(lock of python 3.11 + pip ``package`` from the test index, a lockstep config file
    that allows sdists, caches under ``tmp_path`` and adds ``extra``)."""
    pip = PipInputs(
        index_url=index[1].rsplit("/", 1)[0] + "/simple",
        insecure_hosts=("127.0.0.1",),
        cache_dir=tmp_path / "uv",
        allow_sdists=True,
    )
    spec = (
        f"name: {package}\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
        f"  - pip:\n    - {package}\n"
    )
    lockfile = lock(tmp_path / package, spec, channel, pip)
    config = tmp_path / "lockstep_config.py"
    config.write_text(
        "c.Lockstep.pip_allow_sdists = True\n"
        f"c.Lockstep.cache_dir = {str(tmp_path / 'cache')!r}\n{extra}"
    )
    return lockfile, config


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_channel) -> Path:
    """A real python 3.11 environment (no pip packages), installed for /opt/env."""
    root = tmp_path_factory.mktemp("sdist-env")
    spec = "name: plain\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
    lockfile = lock(root / "plain", spec, tiny_channel)
    install_lock(
        lockfile,
        root / "env",
        platform="linux-64",
        target_prefix="/opt/env",
        cache_dir=root / "pkgs",
    )
    return root / "env"


def copy_env(env: Path, dest: Path) -> Path:
    """A hard-linked copy (``unpack`` replaces files, never writes into them)."""
    shutil.copytree(env, dest, symlinks=True, copy_function=os.link)
    return dest


def snapshot(prefix: Path) -> dict[str, object]:
    """Every path under ``prefix``: a folder, a link target, or a file's mode and sha256."""
    found: dict[str, object] = {}
    for path in sorted(prefix.rglob("*")):
        rel = str(path.relative_to(prefix))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = "folder"
        else:
            found[rel] = (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def install(wheels, prefix: Path, cache: Path, sandbox: str = "bwrap") -> list[str]:
    return install_wheels(
        wheels, prefix, target_prefix="/opt/env", cache_dir=cache, mirrors={}, sandbox=sandbox
    )


def test_a_failing_sdist_build_names_everything_and_leaves_the_prefix_as_it_was(
    env, index, tmp_path
):
    prefix = copy_env(env, tmp_path / "prefix")
    flit = served(index, index[0] / "files" / FLIT, "flit-core", "4.2.0")
    install([flit], prefix, tmp_path / "pkgs")  # a pip package from an earlier install
    (prefix / "notes.txt").write_text("the user's own file\n")
    before = snapshot(prefix)
    failing = served(index, make_sdist(index[0], "sdistfail", FAILING), "sdistfail")
    fine = served(index, make_sdist(index[0], "sdistaok", embedding("sdistaok")), "sdistaok")
    wheels = [flit, failing, fine]  # sdistaok builds and unpacks before sdistfail fails
    with pytest.raises(SdistBuildError) as err:
        install(wheels, prefix, tmp_path / "pkgs")
    message = str(err.value)
    assert "pip package sdistfail 1.0" in message
    assert "backend testbackend" in message
    assert "error: command 'gcc' failed: No such file or directory" in message  # last line
    assert "building step 59 of sdistfail" in message
    assert "building step 10 of sdistfail" not in message  # the tail, not everything
    assert "Pin a version with a wheel" in message and "conda package" in message
    assert "make the build possible" in message and "Traceback" in message
    assert str(tmp_path) not in message  # the sandbox's /build, not the host scratch path
    assert snapshot(prefix) == before  # sdistaok removed, the earlier flit_core kept
    assert not list((tmp_path / "pkgs" / "sdist-builds").iterdir())


def test_the_cli_exits_2_on_a_failing_sdist_and_installs_no_pip_package(
    index, tiny_channel, tmp_path, capsys
):
    make_sdist(index[0], "sdistfail", FAILING)
    lockfile, config = cli_site(index, tiny_channel, tmp_path, "sdistfail")
    prefix = tmp_path / "prefix"
    assert cli.main(["--config", str(config), "install", str(lockfile), str(prefix)]) == 2
    err = capsys.readouterr().err
    assert "lockstep install: error: pip package sdistfail 1.0" in err
    assert "error: command 'gcc' failed" in err and "make the build possible" in err
    assert "spawner/" not in err  # the build's own output, no lockstep traceback
    assert not list((prefix / SITE).glob("sdistfail*"))
    assert not (prefix / SITE / "sdistfail").exists()


class Listener:
    """A loopback TCP listener that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def secret():
    """A 0600 file under the real home, as a registry credential would be; removed after."""
    path = Path.home() / f".lockstep-test-secret-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    path.write_text(token)
    path.chmod(0o600)
    yield path, token
    path.unlink(missing_ok=True)


def test_a_hostile_sdist_reaches_no_listener_writes_nothing_outside_and_reads_no_secret(
    env, index, tmp_path, secret
):
    prefix, cache = copy_env(env, tmp_path / "prefix"), tmp_path / "pkgs"
    listener = Listener()
    try:
        socket.create_connection(("127.0.0.1", listener.port), timeout=3).close()  # control
        deadline = threading.Event()
        while listener.accepted < 1 and not deadline.wait(0.05):
            pass
        assert listener.accepted == 1
        mark = uuid.uuid4().hex
        targets = {
            "home": str(Path.home() / f".lockstep-pwned-{mark}"),
            "host tmp": f"/tmp/lockstep-pwned-{mark}",
            "staging prefix (host path)": str(prefix / f"pwned-{mark}"),
            "staging prefix (inside)": f"/opt/env/pwned-{mark}",
            "package cache": str(cache / f"pwned-{mark}"),
            "scratch parent": str(cache / "sdist-builds" / f"pwned-{mark}"),
            "test folder": str(tmp_path / f"pwned-{mark}"),
        }
        backend = (
            HOSTILE.replace("@TARGETS@", repr(targets))
            .replace("@PORT@", str(listener.port))
            .replace("@SECRET@", repr(str(secret[0])))
        )
        hostile = served(index, make_sdist(index[0], "hostile", backend), "hostile")
        install([hostile], prefix, cache)
    finally:
        listener.close()
    report = json.loads(_module_value(prefix / SITE / "hostile/__init__.py", "REPORT"))
    assert listener.accepted == 1, report["connect"]  # only the control connected
    assert report["connect"].startswith("failed: "), report
    assert "refused" in report["connect"] or "unreachable" in report["connect"], report
    assert report["read secret"].startswith("failed: FileNotFoundError"), report
    assert report["uid"] == 65534
    for key, path in targets.items():
        assert not Path(path).exists(), (key, report[f"write {key}"])
        if key != "host tmp":  # /tmp inside is the sandbox's own tmpfs: writable, thrown away
            assert report[f"write {key}"].startswith("failed: "), (key, report)
    assert not list(tmp_path.rglob(f"pwned-{mark}"))
    assert secret[0].read_text() == secret[1]
    installed = b"".join(p.read_bytes() for p in (prefix / SITE).rglob("*") if p.is_file())
    assert secret[1].encode() not in installed


def _module_value(path: Path, name: str) -> str:
    namespace: dict[str, str] = {}
    exec(path.read_text(), namespace)  # noqa: S102 - the test's own generated module
    return namespace[name]


def test_the_build_path_is_fixed_so_two_scratch_folders_give_one_wheel(env, index, tmp_path):
    path = make_sdist(index[0], "pathembed", embedding("pathembed"))
    wheel = served(index, path, "pathembed")
    records = []
    for n, cache in enumerate((tmp_path / "a", tmp_path / "some-other-scratch-place")):
        prefix = copy_env(env, tmp_path / f"prefix{n}")
        install([wheel], prefix, cache)
        info = prefix / SITE / "pathembed-1.0.dist-info"
        records.append(json.loads((info / BUILT).read_text()))
        built_in = _module_value(prefix / SITE / "pathembed/__init__.py", "BUILT_IN")
        assert built_in == "/build/src/pathembed-1.0"
        assert str(tmp_path) not in (prefix / SITE / "pathembed/__init__.py").read_text()
    assert records[0]["wheel"] == records[1]["wheel"]
    # control: unsandboxed, the same backend embeds the host scratch path, and the wheel
    # differs with the folder (so the test above can fail)
    shas = set()
    for name in ("x", "yy"):
        work = tmp_path / "plain" / name
        root = extract(path, work / "src", label="pathembed 1.0")
        built = build_wheel(
            root,
            build_system(root),
            label="pathembed 1.0",
            name="pathembed",
            version="1.0",
            prefix=env,
            target_prefix="/opt/env",
            python="3.11",
            sandbox="none",
            work=work,
        )
        shas.add(hashlib.sha256(built.read_bytes()).hexdigest())
    assert len(shas) == 2


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """``<name>-<version>-py3-none-any.whl`` served by the index: ``files`` plus a
    ``<name>`` console script, so an upgrade replaces files in and out of site-packages."""
    info = f"{name}-{version}.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name} = {name}:main\n",
    }
    members[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in sorted(members))
    path = folder / "files" / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in sorted(members.items()):
            archive.writestr(member, text)
    write_pages(folder)
    return path


def test_a_failed_upgrade_puts_the_replaced_version_back_byte_for_byte(env, index, tmp_path):
    prefix = copy_env(env, tmp_path / "prefix")
    files = {"upgr/__init__.py": "V = 1\ndef main():\n    print(V)\n", "upgr/old.py": "OLD = 1\n"}
    v1 = served(index, make_wheel(index[0], "upgr", "1.0", files), "upgr", "1.0")
    new = {"upgr/__init__.py": "V = 2\ndef main():\n    print(V)\n", "upgr/new.py": "NEW = 2\n"}
    v2 = served(index, make_wheel(index[0], "upgr", "2.0", new), "upgr", "2.0")
    install([v1], prefix, tmp_path / "pkgs")
    info = prefix / SITE / "upgr-1.0.dist-info"
    outside = tmp_path / "outside.txt"  # a RECORD line and a link that lead out of the prefix
    outside.write_text("not the prefix's\n")
    (prefix / SITE / "upgr" / "link.txt").symlink_to(outside)
    with (info / "RECORD").open("a") as record:
        record.write("../../../../outside.txt,,\nupgr/link.txt,,\n")
    before, record_bytes = snapshot(prefix), (info / "RECORD").read_bytes()
    failing = served(index, make_sdist(index[0], "sdistfail", FAILING), "sdistfail")
    with pytest.raises(SdistBuildError, match="pip package sdistfail 1.0"):
        install([v2, failing], prefix, tmp_path / "pkgs")  # v2 replaces v1, then the build fails
    assert snapshot(prefix) == before  # v1's files, script, RECORD and dist-info, link: back
    assert (info / "RECORD").read_bytes() == record_bytes
    assert not (prefix / SITE / "upgr-2.0.dist-info").exists()
    assert not (prefix / SITE / "upgr" / "new.py").exists()
    assert outside.read_text() == "not the prefix's\n"  # never followed, moved or removed
    assert not list((tmp_path / "pkgs" / "sdist-builds").iterdir())
    install([v2], prefix, tmp_path / "pkgs")  # control: a successful upgrade does replace v1
    assert not info.exists() and (prefix / SITE / "upgr-2.0.dist-info").is_dir()
    assert not (prefix / SITE / "upgr" / "old.py").exists()
    assert outside.read_text() == "not the prefix's\n"


def test_an_unsandboxed_sdist_build_says_its_wheel_may_hold_the_host_path(
    index, tiny_channel, tmp_path, capsys
):
    from spawner.settings import Lockstep

    help_text = " ".join(Lockstep.class_traits()["build_sandbox"].help.split())
    assert "not reproducible for pip sdists" in help_text
    assert "built at the fixed path ``/build``" in help_text
    make_sdist(index[0], "pathtold", embedding("pathtold"))
    lockfile, config = cli_site(index, tiny_channel, tmp_path, "pathtold",
                                "c.Lockstep.build_sandbox = 'none'\n")  # fmt: skip
    prefix = tmp_path / "prefix"
    assert cli.main(["--config", str(config), "install", str(lockfile), str(prefix)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    built_in = _module_value(prefix / SITE / "pathtold/__init__.py", "BUILT_IN")
    scratch = built_in.split("/src/")[0]  # the host folder the backend really saw
    assert scratch.startswith(str(tmp_path / "cache"))  # so the claim below is true
    assert "pip package pathtold 1.0: building its sdist UNSANDBOXED" in out
    assert f"in {scratch};" in out and "puts that host path into the wheel" in out
    assert "Use 'bwrap' for builds that reproduce" in out
