"""Does an image hold its lock? The lock-hash label, the packages and the recorded files,
checked in one call for ``lockstep verify`` and for promotion's verify gate.

``lock_decision`` is pure; ``check_image`` reads the image from its registry
(``image.reader.read_image``) and the lock from disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.image.reader import read_image
from spawner.labels import LOCK_HASH
from spawner.verify.diff import (
    DEFAULT_PLATFORM,
    Difference,
    diff_packages,
    file_differences,
    lock_hashes,
    locked_packages,
    packages_from_meta,
)
from spawner.verify.pipdiff import diff_pip, locked_pip, pip_from_files


def lock_decision(*, label: str, lock_hashes: Sequence[str], lock_path: str) -> tuple[bool, str]:
    """(matches, message): is the image's lock-hash label the hash of the lock on disk?"""
    if not label:
        return False, (
            f"image has no {LOCK_HASH} label, so its lock is unknown; "
            "rebuild it with `lockstep build`"
        )
    if label not in lock_hashes:
        return False, (
            f"image was built from another lock (lock-hash {label[:16]}..), not "
            f"{lock_path} ({', '.join(h[:16] + '..' for h in lock_hashes) or 'no hash'}); "
            "build the current lock with `lockstep build` and promote that image"
        )
    return True, f"lock-hash {label[:16]}.. matches {lock_path}"


@dataclass(frozen=True)
class ImageCheck:
    """What ``check_image`` found."""

    reference: str
    lock: Path
    packages: int  # in the lock
    installed: int  # in the image's conda-meta
    differences: tuple[Difference, ...]
    same_lock: bool
    lock_note: str


def check_image(settings, reference: str, lock: Path | Callable[[Mapping[str, str]], Path], *,
                platform: str = DEFAULT_PLATFORM, files: bool = True) -> ImageCheck:
    """Compare image ``reference`` with its lock (a path, or a function of the image's labels
    that names it): installed packages, and with ``files`` every recorded file's hash."""
    contents = read_image(settings, reference, hash_files=files)
    path = Path(lock(contents.labels) if callable(lock) else lock)
    locked = locked_packages(path, platform=platform)
    installed = packages_from_meta(contents.records)
    differences = diff_packages(locked=locked, installed=installed)
    differences += diff_pip(locked=locked_pip(path, platform=platform),
                            installed=pip_from_files(contents.files))
    if files:
        differences += file_differences(contents.records, contents.files)
    same_lock, note = lock_decision(label=contents.labels.get(LOCK_HASH, ""),
                                    lock_hashes=lock_hashes(path, platform=platform),
                                    lock_path=str(path))
    return ImageCheck(contents.reference, path, len(locked), len(installed), tuple(differences),
                      same_lock, note)
