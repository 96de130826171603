"""Progress on long work: a live line on a terminal, one plain line per step otherwise,
nothing with ``--json``; and the real ``lockstep lock``/``install`` in each form."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from spawner.progress import ERASE, Counter, Progress, human_bytes, live

REPO = Path(__file__).resolve().parents[2]
SPEC = "name: demo\nchannels:\n  - conda-forge\ndependencies:\n  - zeta\n  - delta\n"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_is_one_line_per_step_and_no_counts():
    out = io.StringIO()
    progress = Progress(out)
    counter = Counter(progress, "fetching", 3)
    progress("verifying 3 archives")
    for size in (1000, 2000, 0):
        counter.add(size)
    progress("fetched 3 packages")
    progress.close()
    assert progress.mode == "plain"
    assert out.getvalue() == "verifying 3 archives\nfetched 3 packages\n"


def test_terminal_rewrites_one_live_line_that_the_next_step_replaces():
    out = Tty()
    progress = Progress(out, prefix="lockstep build: ")
    counter = Counter(progress, "pushing", 2, "blobs")
    counter.add(1500)
    counter.add(2_500_000)
    progress("pushed 2 blobs")
    assert progress.mode == "terminal"
    assert out.getvalue() == (
        f"{ERASE}lockstep build: pushing 1/2 blobs, 1.5 KB"
        f"{ERASE}lockstep build: pushing 2/2 blobs, 2.5 MB"
        f"{ERASE}lockstep build: pushed 2 blobs\n"
    )


def test_quiet_writes_nothing_even_on_a_terminal():
    out = Tty()
    progress = Progress(out, quiet=True)
    progress("step")
    live(progress, "count")
    progress.close()
    assert out.getvalue() == "" and progress.mode == "quiet"


def test_live_is_a_no_op_for_a_plain_callable_and_bytes_read_well():
    seen: list[str] = []
    live(seen.append, "count")
    assert seen == []
    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**9)] == [
        "0 B", "999 B", "1.0 KB", "1.2 MB", "5.0 GB"]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOCKSTEP_CONFIG": str(root / "config.py")}
    return subprocess.run([sys.executable, "-m", "spawner.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_lock_and_install_not_on_a_terminal_and_with_json(tmp_path, tiny_channel):
    (tmp_path / "config.py").write_text(
        f"c.Lockstep.channel_urls = {{'conda-forge': {tiny_channel.as_uri()!r}}}\n"
        f"c.Lockstep.server_packages = []\nc.Lockstep.cache_dir = {str(tmp_path / 'c')!r}\n")
    project = tmp_path / "demo"
    project.mkdir()
    (project / "environment.yml").write_text(SPEC)
    plain = cli(tmp_path, "lock", "demo")
    assert plain.returncode == 0, plain.stderr
    assert "\r" not in plain.stdout
    assert plain.stdout.splitlines() == [
        "solving for linux-64...", "linux-64: 2 packages", "wrote demo/conda-lock.yml"]
    quiet = cli(tmp_path, "lock", "--json", "demo")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["packages"] == {"linux-64": 2}  # the whole stdout
    installed = cli(tmp_path, "install", "demo", str(tmp_path / "env"))
    assert installed.returncode == 0, installed.stderr
    lines = installed.stdout.splitlines()
    assert "\r" not in installed.stdout
    assert lines[0] == "verifying 2 archives for linux-64..."
    assert lines[1] == "fetched 2 packages: 2 downloaded (" + lines[1].split("(")[1]
    assert lines[-1].startswith("2 packages (2 fetched, 0 from cache)")
    again = cli(tmp_path, "install", "--json", "demo", str(tmp_path / "env2"))
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert (result["downloaded"], result["cached"], len(result["packages"])) == (0, 2, 2)
