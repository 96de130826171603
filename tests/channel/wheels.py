"""Pinned PyPI wheels for the ``--jupyter`` channel: parse the lock, fill the cache.

``wheels.lock`` (next to this file) holds one wheel per line, pip requirements syntax::

    name==version --hash=sha256:HEX  # exact-file-name.whl

The cache is ``~/.cache/lockstep/wheels/``; a wheel is reused when its sha256 matches,
and the missing ones are fetched with ``pip download --no-deps --require-hashes``, so a
changed file on PyPI fails the build instead of changing the channel.

To re-pin (rarely), resolve the set on a machine with PyPI access::

    pip download --only-binary=:all: --python-version 3.11 --implementation cp \\
        --abi cp311 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux_2_28_x86_64 -d WHEELS \\
        jupyterhub==6.1.1 jupyter_server ipykernel nbclient nbformat numpy
    python tests/channel/wheels.py WHEELS > tests/channel/wheels.lock
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .conda_pkg import BuildInputMissing

LOCK_FILE = Path(__file__).with_name("wheels.lock")
CACHE_DIR = Path.home() / ".cache" / "lockstep" / "wheels"
PLATFORM_ARGS = (
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux_2_17_x86_64",
    "--platform",
    "manylinux_2_28_x86_64",
)
_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha>[0-9a-f]{64})"
    r"\s+#\s*(?P<file>\S+\.whl)\s*$"
)


@dataclass(frozen=True)
class WheelPin:
    """One pinned wheel: exact version, exact file, exact sha256."""

    name: str
    version: str
    sha256: str
    filename: str

    def requirement(self) -> str:
        """The line ``pip download --require-hashes`` reads."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def parse_lock(text: str) -> list[WheelPin]:
    """Parse ``wheels.lock`` text; blank lines and ``#`` comments are skipped."""
    pins = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise ValueError(
                f"wheels.lock line {number} is not `name==version --hash=sha256:HEX  # file.whl`:"
                f" {line!r}"
            )
        pins.append(WheelPin(match["name"], match["version"], match["sha"], match["file"]))
    return sorted(pins, key=lambda p: p.filename)


def render_lock(wheel_dir: Path) -> str:
    """Return ``wheels.lock`` text pinning every wheel in ``wheel_dir``."""
    lines = []
    for whl in sorted(wheel_dir.glob("*.whl")):
        name, version = whl.name.split("-")[:2]
        sha = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{sha}  # {whl.name}")
    return "\n".join(lines) + "\n"


def _cached(pin: WheelPin, cache_dir: Path) -> bool:
    path = cache_dir / pin.filename
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256


def ensure_wheels(pins: list[WheelPin], cache_dir: Path = CACHE_DIR) -> list[Path]:
    """Return the cached path of every pinned wheel, downloading the missing ones."""
    missing = [p for p in pins if not _cached(p, cache_dir)]
    if missing:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text("".join(p.requirement() + "\n" for p in missing))
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes"]
            cmd += [*PLATFORM_ARGS, "-d", str(cache_dir), "-r", str(req), "--quiet"]
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildInputMissing(
                f"could not download {len(missing)} pinned wheels into {cache_dir}:\n"
                f"{result.stderr[-2000:]}\nCheck PyPI access (or a PIP_INDEX_URL mirror), "
                "or copy the wheels listed in tests/channel/wheels.lock into that folder."
            )
        still = [p.filename for p in missing if not _cached(p, cache_dir)]
        if still:
            raise RuntimeError(f"pip did not produce the pinned files {still} in {cache_dir}")
    return [cache_dir / p.filename for p in pins]


if __name__ == "__main__":
    sys.stdout.write(render_lock(Path(sys.argv[1])))
