"""Fixture packages for multi-platform and CUDA locks (pure: specs only).

What the set guarantees, and tests may rely on:

* ``zeta`` 1.0 is built once per platform lockstep locks for (linux-64, linux-aarch64,
  osx-64, osx-arm64, win-64), build ``h_lockstep_0``; ``share/zeta/PLATFORM`` holds the
  subdir. Nothing else in the channel exists for osx-*, win-64 or linux-aarch64, so a spec
  of ``zeta`` (plus noarch packages) locks for every platform in one run, and a spec with
  ``python`` does not (python is linux-64 only). The archives are real, but this machine
  only installs the linux-64 one.
* ``cudatoy`` 1.0 (noarch generic, build ``cuda120_0``) depends on ``__cuda >=12.0``: the
  solver picks it only when told the machine has CUDA 12.0 or newer (``gpu: {cuda:
  ">=12.0"}`` in project.yaml, or ``__cuda`` in ``virtual-packages.yml``).
  ``share/cudatoy/README`` says so.
"""

from __future__ import annotations

from .conda_pkg import SUBDIR_ARCH, PackageSpec, PkgFile

CUDA_MINIMUM = "12.0"


def zeta_specs() -> list[PackageSpec]:
    """``zeta`` 1.0 for each platform of :data:`SUBDIR_ARCH`."""
    return [
        PackageSpec(
            name="zeta",
            version="1.0",
            build="h_lockstep_0",
            subdir=subdir,
            license="MIT",
            summary="lockstep test fixture built for every platform",
            files=(PkgFile("share/zeta/PLATFORM", f"{subdir}\n".encode()),),
        )
        for subdir in sorted(SUBDIR_ARCH)
    ]


def cuda_spec() -> PackageSpec:
    """``cudatoy``: a package that needs a CUDA driver (``__cuda >=12.0``)."""
    return PackageSpec(
        name="cudatoy",
        version="1.0",
        build="cuda120_0",
        subdir="noarch",
        noarch="generic",
        depends=(f"__cuda >={CUDA_MINIMUM}",),
        license="MIT",
        summary="lockstep test fixture that needs CUDA >=12.0",
        files=(PkgFile("share/cudatoy/README", f"needs __cuda >={CUDA_MINIMUM}\n".encode()),),
    )


def platform_specs() -> list[PackageSpec]:
    """Every package of this set, sorted by subdir and file name."""
    return sorted([*zeta_specs(), cuda_spec()], key=lambda s: (s.subdir, s.filename))
