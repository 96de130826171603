"""Does an image hold its lock? The lock-hash label, the packages and the recorded files,
checked in one call for ``lockstep verify`` and for promotion's verify gate.

``lock_decision`` is pure; ``check_image`` reads the image from its registry
(``image.reader.read_image``) and the lock from disk, unless the same digest was already
checked against the same lock bytes (``spawner.verify.memo``): then it returns that result,
with ``earlier`` set to when it was computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.image.oci import parse_reference
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
from spawner.verify.memo import Remembered, memo_key, pinned_digest, recall, remember
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
    earlier: str = ""  # UTC time of the earlier check reused (memo), "" when read now


def _image_check(reference: str, path: Path, found: Remembered, *, earlier: str = "") -> ImageCheck:
    same_lock, note = lock_decision(
        label=found.label, lock_hashes=found.lock_hashes, lock_path=str(path)
    )
    return ImageCheck(
        reference,
        path,
        found.packages,
        found.installed,
        found.differences,
        same_lock,
        note,
        earlier,
    )


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None  # the check itself names what is wrong with the lock


def _recalled(settings, reference: str, path: Path, *, platform: str, files: bool):
    digest, lock_bytes = pinned_digest(reference), _read_bytes(path)
    if digest is None or lock_bytes is None:
        return None
    key = memo_key(digest=digest, lock_bytes=lock_bytes, platform=platform, files=files)
    found = recall(settings, key)
    if found is None:
        return None
    name = parse_reference(reference).name  # as read_image names what it read
    return _image_check(f"{name}@{digest}", path, found, earlier=found.checked_at or "?")


def check_image(
    settings,
    reference: str,
    lock: Path | Callable[[Mapping[str, str]], Path],
    *,
    platform: str = DEFAULT_PLATFORM,
    files: bool = True,
    reuse: bool = True,
) -> ImageCheck:
    """Compare image ``reference`` with its lock (a path, or a function of the image's labels
    that names it): installed packages, and with ``files`` every recorded file's hash.

    With ``reuse``, a reference pinned by digest whose check against these same lock bytes
    is remembered (``spawner.verify.memo``) is not read again; every check that reads the
    image is remembered under the digest it read."""
    if reuse and not callable(lock):
        found = _recalled(settings, reference, Path(lock), platform=platform, files=files)
        if found is not None:
            return found
    contents = read_image(settings, reference, hash_files=files)
    path = Path(lock(contents.labels) if callable(lock) else lock)
    before = _read_bytes(path)
    locked = locked_packages(path, platform=platform)
    installed = packages_from_meta(contents.records)
    differences = diff_packages(locked=locked, installed=installed)
    differences += diff_pip(
        locked=locked_pip(path, platform=platform), installed=pip_from_files(contents.files)
    )
    if files:
        differences += file_differences(contents.records, contents.files)
    found = Remembered(
        len(locked),
        len(installed),
        tuple(differences),
        contents.labels.get(LOCK_HASH, ""),
        tuple(lock_hashes(path, platform=platform)),
    )
    if before is not None and before == _read_bytes(path) and contents.digest:
        # the lock did not change while it was read: the result is of these bytes
        key = memo_key(digest=contents.digest, lock_bytes=before, platform=platform, files=files)
        remember(settings, key, found)
    return _image_check(contents.reference, path, found)
