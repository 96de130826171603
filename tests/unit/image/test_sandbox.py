"""The build sandbox (bubblewrap) and the host-kept .pyc cache it never sees (issue 11)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spawner.image import pyccache
from spawner.image.sandbox import SandboxError, require_sandbox, sandboxed

BWRAP = shutil.which("bwrap")
needs_bwrap = pytest.mark.skipif(
    BWRAP is None, reason="bubblewrap is not installed (scripts/setup.sh installs it)"
)


def test_argv_isolates_everything_and_binds_only_what_is_named(tmp_path):
    argv, env = sandboxed(
        ["/usr/bin/true"],
        bwrap="/usr/bin/bwrap",
        read_only=[tmp_path / "env"],
        writable=[tmp_path / "out"],
        env={"PYTHONHASHSEED": "0"},
    )
    assert env == {}
    for flag in ("--unshare-all", "--unshare-user", "--clearenv", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--uid") + 1] == "65534"
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [str(tmp_path / "out")]
    assert ["--ro-bind", str(tmp_path / "env"), str(tmp_path / "env")] == argv[
        argv.index(str(tmp_path / "env")) - 1 : argv.index(str(tmp_path / "env")) + 2
    ]
    assert ["--setenv", "PATH", "/usr/bin:/bin"] == argv[argv.index("PATH") - 1 :][:3]
    assert argv[-1] == "/usr/bin/true"


def test_unsandboxed_still_gets_an_empty_environment():
    argv, env = sandboxed(["python"], bwrap=None, env={"PYTHONHASHSEED": "0"})
    assert argv == ["python"] and env == {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}


def test_missing_bwrap_is_an_error_that_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        require_sandbox("bwrap")
    assert require_sandbox("none") is None


@needs_bwrap
def test_sandboxed_shell_cannot_touch_the_host(tmp_path, monkeypatch):
    """A real bwrap run: host files, the network and the caller's environment are out of reach."""
    monkeypatch.setenv("LOCKSTEP_SECRET", "registry-password")
    out, ro = tmp_path / "out", tmp_path / "ro"
    out.mkdir()
    ro.mkdir()
    (ro / "file").write_text("x")
    script = (
        f"echo pwned > {tmp_path}/marker; echo pwned > /tmp/lockstep-sandbox-marker; "
        f"echo pwned > {ro}/file; env > {out}/env; id -u > {out}/uid; "
        f"ls /root > {out}/root 2>&1; "
        "/usr/bin/python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 22), 1)' "
        f"> {out}/net 2>&1; echo done >> {out}/net"
    )
    argv, env = sandboxed(["/bin/sh", "-c", script], bwrap=BWRAP, read_only=[ro], writable=[out])
    subprocess.run(argv, env=env, check=True, timeout=60)
    assert not (tmp_path / "marker").exists()
    assert not Path("/tmp/lockstep-sandbox-marker").exists()
    assert (ro / "file").read_text() == "x"
    assert "LOCKSTEP_SECRET" not in (out / "env").read_text()
    assert (out / "uid").read_text().strip() == "65534"
    assert "No such file" in (out / "root").read_text()
    assert (
        "Network is unreachable" in (out / "net").read_text()
        or "refused" in (out / "net").read_text()
    )


def meta(prefix: Path, name: str, files: list[str], depends=(), sha="0" * 64) -> None:
    record = {
        "name": name,
        "version": "1",
        "build": "0",
        "sha256": sha,
        "files": files,
        "depends": list(depends),
    }
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    (prefix / "conda-meta" / f"{name}-1-0.json").write_text(json.dumps(record))


def identity_with(tmp_path: Path, extra: list[tuple[str, list[str]]]) -> str:
    prefix = tmp_path / f"env{len(list(tmp_path.iterdir()))}"
    meta(prefix, "python", ["bin/python3.11", "lib/python3.11/os.py"], depends=["openssl >=3"])
    meta(prefix, "openssl", ["lib/libcrypto.so.3", "ssl/openssl.cnf"])
    for name, files in extra:
        meta(prefix, name, files, sha="1" * 64)
    return pyccache.interpreter_identity(prefix, "3.11")


def test_identity_ignores_site_packages_only_packages_and_catches_the_rest(tmp_path):
    base = identity_with(tmp_path, [])
    site = "lib/python3.11/site-packages/"
    assert identity_with(tmp_path, [("numpy", [f"{site}numpy/__init__.py", "bin/f2py"])]) == base
    assert identity_with(tmp_path, [("evil", [f"{site}evil.pth"])]) == base
    for hostile in (
        ["lib/python3.11/hashlib.py"],  # shadows the stdlib
        ["lib/python311.zip"],  # earlier on sys.path than the stdlib
        ["bin/python3.11"],  # overwrites the interpreter
        ["lib/libcrypto.so.3"],  # overwrites a library python loads
        ["ssl/openssl.cnf"],  # overwrites openssl's config (can load modules)
    ):
        assert identity_with(tmp_path, [("evil", hostile)]) != base, hostile


def test_cached_pyc_served_by_the_host_and_links_out_never_cached(tmp_path):
    staging = tmp_path / "staging"
    lib = staging / "lib" / "python3.11"
    lib.mkdir(parents=True)
    (lib / "a.py").write_text("A = 1\n")
    secret = tmp_path / "secret.py"
    secret.write_text("S = 1\n")
    os.symlink(secret, lib / "leak.py")
    store = pyccache.store_for(tmp_path / "cache", "0" * 32)
    key = pyccache.source_key("lib/python3.11/a.py", b"A = 1\n", "/opt/env")
    store.put([(key, b"cached")])
    total, hits, missing = pyccache.serve_hits(staging, "3.11", store=store, prefix="/opt/env")
    assert total == 2
    assert hits == {"lib/python3.11/a.py": b"cached"}
    assert missing == [pyccache.Source("lib/python3.11/leak.py", "")]
    store.put([(m.key, b"compiled") for m in missing])  # what the build files after a run
    assert store.get([key, ""]) == {key: b"cached"}  # the link out was never filed
