"""The engine the suite relies on runs containers: import a one-binary image and run it.

No image can be pulled here, so the image is made from a static binary compiled on the
spot: proof that dockerd is up, can create, start, wait for and remove a container.
"""

import io
import shutil
import subprocess
import tarfile

import pytest

from tests.support.engine import missing

docker = pytest.importorskip("docker")

SOURCE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("lockstep-smoke uid=%d\n", (int)getuid()); return 0; }
"""


@pytest.fixture(scope="module")
def engine():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # the reason is stated, and the setup script starts dockerd
        missing(f"no Docker engine reachable ({exc}); run scripts/setup.sh")
    yield client
    client.close()


def test_engine_runs_a_container(engine, tmp_path):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static smoke binary")
    (tmp_path / "smoke.c").write_text(SOURCE)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp_path / "smoke"),
                    str(tmp_path / "smoke.c")], check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tmp_path / "smoke", arcname="smoke")
    result = subprocess.run(["docker", "import", "-", "lockstep-smoke:test"], input=buf.getvalue(),
                            capture_output=True, check=True)
    assert result.stdout.strip().startswith(b"sha256:")
    try:
        out = engine.containers.run("lockstep-smoke:test", ["/smoke"], user="1000",
                                    remove=True, network_disabled=True)
        assert out.decode().strip() == "lockstep-smoke uid=1000"
    finally:
        engine.images.remove("lockstep-smoke:test", force=True)
