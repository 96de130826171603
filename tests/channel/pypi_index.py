"""A local PyPI index for the tests: real pinned wheels plus a few made here, over loopback.

``PINS`` are real wheels from PyPI, pinned by URL and sha256; they are downloaded once
into ``~/.cache/lockstep/wheels/index-<key>/`` (``key`` = hash of the pin list), so a warm
suite needs no network. ``MADE`` are built here, byte-identical every time: a package
with only a source distribution and one with only a Windows wheel (the refusals).
``serve_index`` lays out a PEP 503 simple index (``/simple/<name>/`` with ``#sha256=``
links) and serves it with ``http.server`` on 127.0.0.1; nothing here imports rattler.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import io
import re
import shutil
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FILES = "https://files.pythonhosted.org/packages"
PINS = (
    ("requests-toolbelt", f"{FILES}/3f/51/d4db610ef29373b879047326cbf6fa98b6c1969d6f6dc423279de2b1be2c/requests_toolbelt-1.0.0-py2.py3-none-any.whl",  # noqa: E501
     "cccfdd665f0a24fcf4726e690f65639d272bb0637b9b92dfd91a5568ccf6bd06"),
    ("msgpack", f"{FILES}/03/41/ed5517a107628f6f7f3a1f46f19de3aca979bd1fc95861cb56ce0e4bcc02/msgpack-1.2.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",  # noqa: E501
     "a45ceb5f199d5e388f28b550ba881096a3740d4bda10e661d77f59d9a2e8187a"),
    ("requests", f"{FILES}/1e/db/4254e3eabe8020b458f1a747140d32277ec7a271daf1d235b70dc0b4e6e3/requests-2.32.5-py3-none-any.whl",  # noqa: E501
     "2462f94637a34fd532264295e186976db0f5d453d1cdd31473c85a6a161affb6"),
    ("flit-core", f"{FILES}/d9/f0/e546c28b937f094b354ca29b9060c5f1dd5043a332b2905049a51420b7a2/flit_core-4.2.0-py3-none-any.whl",  # noqa: E501
     "2bee22dc8ba89c2e35b4e1ad575e596aac945c85672dd8f3cad21b629036e044"),
)
"""(name, URL, sha256): a pure wheel (depends on requests), a compiled one, requests,
which the jupyter test channel also has as a conda package, and flit_core, the build
backend of the made-here sdist ``sdistdemo``."""

SDIST_SPEC = """\
name: withsdist
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip:
    - flit_core
    - sdistdemo
"""
"""A pip package with only a pure-Python sdist (flit_core backend, locked beside it)."""

MIXED_SPEC = """\
name: mixed
channels:
  - conda-forge
dependencies:
  - python=3.11
  - requests
  - pip:
    - requests-toolbelt
    - msgpack>=1.0
    - requests
"""
"""conda packages and a pip section: one pure-Python package (requests-toolbelt), one with
compiled wheels (msgpack) and one conda already provides (requests)."""

CACHE = Path.home() / ".cache" / "lockstep" / "wheels"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class IndexUnavailable(Exception):
    """The pinned wheels are not cached and PyPI cannot be reached."""


def pins_key() -> str:
    return hashlib.sha256(repr(PINS).encode()).hexdigest()[:16]


def ensure_wheels() -> Path:
    """The folder with every pinned wheel, verified (downloaded when missing)."""
    folder = CACHE / f"index-{pins_key()}"
    folder.mkdir(parents=True, exist_ok=True)
    for _name, url, sha in PINS:
        path = folder / url.rsplit("/", 1)[-1]
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha:
            continue
        try:
            import httpx

            data = httpx.get(url, timeout=60, follow_redirects=True).raise_for_status().content
        except Exception as exc:  # noqa: BLE001 - any network failure: skip with the reason
            raise IndexUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise IndexUnavailable(f"{url}: sha256 is not the pinned {sha}")
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return folder


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in sorted(files.items()):
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), text)


def bench_wheels(folder: Path, count: int) -> list[str]:
    """``count`` small pure wheels ``lockstep-bench-NNN`` (each needs the one before it);
    returns their names. For ``benchmarks/lock.py``: a pip section without the network."""
    names = []
    for i in range(count):
        name = f"lockstep-bench-{i:03d}"
        dist = name.replace("-", "_")
        info = f"{dist}-1.0.dist-info"
        needs = f"Requires-Dist: lockstep-bench-{i - 1:03d}\n" if i % 5 else ""
        _zip(folder / f"{dist}-1.0-py3-none-any.whl", {
            f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{needs}",
            f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            f"{info}/RECORD": "",
            f"{dist}/__init__.py": f"VALUE = {i}\n",
        })
        names.append(name)
    return names


def tar_gz(path: Path, files: dict[str, str]) -> None:
    """A reproducible ``.tar.gz`` of ``files`` (name -> text): sorted, mtime 0, USTAR."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0,
                                                 filename="") as gz:
        gz.write(buffer.getvalue())


SDISTDEMO = {
    "sdistdemo-1.0/PKG-INFO": "Metadata-Version: 2.2\nName: sdistdemo\nVersion: 1.0\n"
                              "Summary: lockstep test sdist\n",
    "sdistdemo-1.0/pyproject.toml": (
        '[build-system]\nrequires = ["flit_core>=3.4,<5"]\nbuild-backend = "flit_core.buildapi"'
        '\n\n[project]\nname = "sdistdemo"\nversion = "1.0"\n'
        'description = "lockstep test sdist"\ndependencies = []\n'
    ),
    "sdistdemo-1.0/sdistdemo/__init__.py": '"""A pure-Python package published only as an '
                                           'sdist."""\n\nANSWER = 42\n',
}


def make_files(folder: Path) -> None:
    """The made-here packages: ``sdistonly`` (sdist only, no build system uv can read),
    ``sdistdemo`` (sdist only, flit_core), ``sdistsetup`` (sdist only, setuptools, which
    no test environment holds) and ``winonly`` (win_amd64 wheel only)."""
    tar_gz(folder / "sdistdemo-1.0.tar.gz", SDISTDEMO)
    tar_gz(folder / "sdistsetup-1.0.tar.gz", {
        k.replace("sdistdemo", "sdistsetup"): v.replace("sdistdemo", "sdistsetup").replace(
            '["flit_core>=3.4,<5"]', '["setuptools>=61"]').replace(
            "flit_core.buildapi", "setuptools.build_meta")
        for k, v in SDISTDEMO.items()
    })
    meta = "Metadata-Version: 2.1\nName: {0}\nVersion: 1.0\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        data = meta.format("sdistonly").encode()
        info = tarfile.TarInfo("sdistonly-1.0/PKG-INFO")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    (folder / "sdistonly-1.0.tar.gz").write_bytes(buffer.getvalue())
    info = "winonly-1.0.dist-info"
    _zip(folder / "winonly-1.0-cp311-cp311-win_amd64.whl", {
        f"{info}/METADATA": meta.format("winonly"),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-win_amd64\n",
        f"{info}/RECORD": "",
        "winonly.py": "",
    })


def build_index(root: Path) -> Path:
    """``root/files`` (the wheels) and ``root/simple`` (PEP 503 pages); returns ``root``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    for path in sorted(ensure_wheels().iterdir()):
        if path.suffix == ".whl":
            shutil.copy2(path, files / path.name)
    make_files(files)
    return write_pages(root)


def write_pages(root: Path) -> Path:
    """PEP 503 pages in ``root/simple`` for every file in ``root/files``; returns ``root``."""
    files = root / "files"
    projects: dict[str, list[Path]] = {}
    for path in sorted(files.iterdir()):
        name = re.sub(r"[-_.]+", "-", re.split(r"-\d", path.name, maxsplit=1)[0]).lower()
        projects.setdefault(name, []).append(path)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(projects))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    for name, paths in projects.items():
        (simple / name).mkdir(exist_ok=True)
        anchors = "".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256='
            f'{hashlib.sha256(p.read_bytes()).hexdigest()}">{html.escape(p.name)}</a>\n'
            for p in paths
        )
        (simple / name / "index.html").write_text(
            f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n"
        )
    return root


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D401 - keep pytest output clean
        pass


@contextlib.contextmanager
def serve_index(root: Path):
    """Serve ``root`` on 127.0.0.1; yields the simple index URL (``http://.../simple``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
