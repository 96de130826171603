"""Tiny fixture packages for solver and installer unit tests (pure: specs only).

What the set guarantees, and tests may rely on:

* ``alpha`` 1.0 and 2.0 (noarch generic): ``share/alpha/VERSION`` holds the version.
* ``beta`` 1.0 depends on ``alpha <2``; ``gamma`` 1.0 depends on ``alpha >=2``:
  ``beta`` + ``gamma`` together are unsolvable, and the solver's message names both.
* ``delta`` 1.0 (linux-64): ``etc/delta/prefix.txt`` and the script ``bin/delta`` hold
  the prefix placeholder, so an install shows whether the prefix was rewritten.
* ``hello`` 1.0 (noarch generic): a python-less package with a ``bin/hello`` shell script.
"""

from __future__ import annotations

from .conda_pkg import PLACEHOLDER, PackageSpec, PkgFile


def _generic(name: str, version: str, files: tuple[PkgFile, ...], depends=()) -> PackageSpec:
    return PackageSpec(
        name=name,
        version=version,
        build="0",
        subdir="noarch",
        noarch="generic",
        files=files,
        depends=tuple(depends),
        license="BSD-3-Clause",
        summary=f"lockstep test fixture {name}",
    )


def tiny_specs() -> list[PackageSpec]:
    """Return the tiny fixture packages, sorted by file name."""
    specs = [
        _generic(
            "alpha", version, (PkgFile(path="share/alpha/VERSION", data=f"{version}\n".encode()),)
        )
        for version in ("1.0", "2.0")
    ]
    specs.append(
        _generic("beta", "1.0", (PkgFile("share/beta/README", b"needs alpha <2\n"),), ["alpha <2"])
    )
    specs.append(
        _generic(
            "gamma", "1.0", (PkgFile("share/gamma/README", b"needs alpha >=2\n"),), ["alpha >=2"]
        )
    )
    specs.append(
        PackageSpec(
            name="delta",
            version="1.0",
            build="h_lockstep_0",
            subdir="linux-64",
            license="MIT",
            summary="lockstep test fixture with the prefix placeholder",
            files=(
                PkgFile(
                    "etc/delta/prefix.txt",
                    f"prefix={PLACEHOLDER}\n".encode(),
                    has_prefix=True,
                ),
                PkgFile(
                    "bin/delta",
                    f"#!/bin/sh\necho {PLACEHOLDER}\n".encode(),
                    mode=0o755,
                    has_prefix=True,
                ),
            ),
        )
    )
    specs.append(
        _generic("hello", "1.0", (PkgFile("bin/hello", b"#!/bin/sh\necho hello\n", mode=0o755),))
    )
    return sorted(specs, key=lambda s: s.filename)
