"""Wheel file names and tags: which file of a release a platform installs, and stand-ins.

Guarantees: pure apart from ``stub_wheel`` (which writes one small zip): ``best_file``
picks, of a release's files as uv's ``pylock.toml`` lists them, the wheel whose tags rank
first for the platform (CPython of the solved version, the platform's manylinux /
macOS / Windows tags, then pure wheels), or refuses naming the package, the platform and
the fix; ``stub_wheel`` writes a byte-identical empty wheel for a name and version (it
stands for a distribution conda already provides and is never installed). It must not
import rattler, conda-lock or uv.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from spawner.lock.spec import SpecError

WHEEL_NAME_RE = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")
SDIST_NAME_RE = re.compile(r"^[A-Za-z0-9_.+!-]+\.(tar\.gz|zip)$")
MAC = {"osx-64": ("x86_64", (10, 13)), "osx-arm64": ("arm64", (11, 0))}
LINUX_ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def locked_sdist(package) -> bool:
    """Whether a locked package is a pip source distribution (by its URL's file name)."""
    name = str(package.url).split("#")[0].rsplit("/", 1)[-1]
    return package.manager == "pip" and SDIST_NAME_RE.match(name) is not None


def platform_tags(platform: str, *, glibc: int = 17, macos: tuple[int, int] | None = None):
    """The platform part of wheel tags a conda platform installs, best first."""
    if platform in LINUX_ARCH:
        arch = LINUX_ARCH[platform]
        names = [f"manylinux_2_{m}_{arch}" for m in range(glibc, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        for minor, alias in legacy.items():
            if minor <= glibc:
                names.insert(names.index(f"manylinux_2_{minor}_{arch}") + 1, f"{alias}_{arch}")
        return names + [f"linux_{arch}"]
    if platform in MAC:
        arch, default = MAC[platform]
        return list(tags.mac_platforms(macos or default, arch))
    if platform == "win-64":
        return ["win_amd64"]
    return []


def supported_tags(platform: str, python: str, *, glibc: int = 17) -> list[tags.Tag]:
    """Every wheel tag CPython ``python`` on ``platform`` installs, best first."""
    major, minor = (int(x) for x in python.split(".")[:2])
    plats = platform_tags(platform, glibc=glibc)
    abis = [f"cp{major}{minor}", "abi3", "none"]
    return [*tags.cpython_tags((major, minor), abis, plats),
            *tags.compatible_tags((major, minor), f"cp{major}{minor}", plats)]


def best_file(
    package: Mapping, *, platform: str, python: str, glibc: str, allow_sdists: bool, source: str
) -> dict:
    """``{"url", "sha256", "kind"}`` of the file ``platform`` installs from a pylock package."""
    name, version = package["name"], package["version"]
    minor = int(re.search(r"manylinux_2_(\d+)", glibc)[1]) if "manylinux" in glibc else 17
    ranking = {t: i for i, t in enumerate(supported_tags(platform, python, glibc=minor))}
    best: tuple[int, dict] | None = None
    for wheel in package.get("wheels", []):
        filename = wheel["url"].rsplit("/", 1)[-1]
        try:
            _n, _v, _b, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        rank = min((ranking[t] for t in wheel_tags if t in ranking), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, wheel)
    if best is not None:
        return {"url": best[1]["url"], "sha256": best[1]["hashes"]["sha256"], "kind": "wheel"}
    sdist = package.get("sdist")
    if sdist and allow_sdists:
        return {"url": sdist["url"], "sha256": sdist["hashes"]["sha256"], "kind": "sdist"}
    what = "only a source distribution" if sdist else "no file"
    raise SpecError(
        f"{source}: pip package {name} {version} has {what} for {platform} (no wheel for "
        f"CPython {python} there), and lockstep installs wheels only. Pin a version of {name} "
        f"that has a {platform} wheel, use the conda package of {name} instead, or drop "
        f"{platform} from platforms:."
    )


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """An empty, dependency-free wheel standing for ``name`` ``version`` (conda's)."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    path = Path(folder) / f"{dist}-{version}-py3-none-any.whl"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: lockstep\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/RECORD": "",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(zipfile.ZipInfo(member, ZIP_DATE), text)
    return path
