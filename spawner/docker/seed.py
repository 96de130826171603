"""A new project workspace is seeded with the project's notebooks, once, by the volume helper.

When ``spawner.docker.prepare`` creates a project's workspace volume (the first spawn, job
or service of that project on this engine), the one-shot ``volume-init`` container that
hands the new volumes to uid 1000 also copies the site's ``<notebooks_dir>/<project>``
folder (``c.Lockstep.notebooks_dir``, the repository's ``notebooks/<project>/``) into the
workspace root, so JupyterLab opens on the project's notebooks. This module guarantees:

* the source is bound **read-only** and non-recursively (no file system mounted below it
  is seen) at ``SEED_MOUNT``; only regular files and folders are copied, each owned by
  uid 1000; a symbolic link (to a file or a folder), a device, a FIFO or a socket is
  skipped, never followed, so a repository cannot point the copy anywhere else;
* nothing is overwritten: a name the workspace already has (from the image's mount point,
  say) is left as it is, and so is everything below it;
* it runs only for a workspace volume created now: an existing workspace is never touched
  again, so a user's edits stay;
* a project without a notebooks folder (or one that is a symbolic link) seeds nothing and
  is no error.

The helper keeps its hardening (root with CAP_CHOWN and CAP_FOWNER only, no network,
read-only root file system): it writes as root into folders root owns and hands each one
to uid 1000 only once it is filled. ``seed_source`` is the one piece of I/O here (an
``lstat``); the rest is pure. This module must not talk to the engine.
"""

from __future__ import annotations

import stat
from pathlib import Path

from spawner.launch.spec import GID, UID

SEED_MOUNT = "/run/lockstep/seed"

# Run by the helper's python, before the chown of the volume roots; ``TARGET`` is defined
# before it. Names that exist already, and whatever is not a regular file or a folder, are
# skipped and printed (the output is read only when the helper fails).
_COPY = f"""
import os, stat
src, uid, gid = {SEED_MOUNT!r}, {UID}, {GID}
os.chown(TARGET, 0, 0)  # the image's mount point may come owned by uid 1000
made = []
for top, dirs, files in os.walk(src, followlinks=False):
    dest = os.path.join(TARGET, os.path.relpath(top, src))
    for name in sorted(dirs):
        there, mode = os.path.join(dest, name), os.lstat(os.path.join(top, name)).st_mode
        try:
            if not stat.S_ISDIR(mode):
                raise OSError("not a folder (a symbolic link?)")
            os.mkdir(there, 0o755)
            made.append(there)
        except OSError as exc:
            print("skipped", there, exc)
            dirs.remove(name)
    for name in sorted(files):
        source, there = os.path.join(top, name), os.path.join(dest, name)
        try:
            if not stat.S_ISREG(os.lstat(source).st_mode):
                raise OSError("not a regular file (a symbolic link?)")
            fin = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                out = os.open(there, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                              0o600)
                with os.fdopen(out, "wb") as fout, os.fdopen(fin, "rb", closefd=False) as fsrc:
                    while chunk := fsrc.read(1 << 20):
                        fout.write(chunk)
                    fout.flush()
                    os.fchmod(out, 0o664 | (os.fstat(fin).st_mode & 0o111))
                    os.fchown(out, uid, gid)
            finally:
                os.close(fin)
        except OSError as exc:
            print("skipped", there, exc)
for folder in reversed(made):  # chmod first: a chmod by root of uid 1000's folder drops g+s
    os.chmod(folder, 0o2775)
    os.chown(folder, uid, gid)
"""


def seed_code(target: str) -> str:
    """Python (for the helper's ``python -c``) that copies ``SEED_MOUNT`` into ``target``,
    the workspace volume's mount point in the helper (pure)."""
    return f"TARGET = {target!r}\n{_COPY}"


def seed_mount(source: str) -> dict:
    """The read-only, non-recursive bind of the host folder ``source`` (pure)."""
    return {
        "Type": "bind",
        "Source": source,
        "Target": SEED_MOUNT,
        "ReadOnly": True,
        "BindOptions": {"NonRecursive": True},
    }


def seed_source(notebooks_dir: str, project: str) -> str:
    """The host folder to seed ``project``'s new workspace from: ``<notebooks_dir>/<project>``
    made absolute, or '' when there is none (no ``notebooks_dir``, no such folder, or a
    symbolic link where the folder should be). ``notebooks_dir`` is the site's (trusted, may
    itself be a link); ``project`` is a validated project name (no '/', no '..')."""
    if not notebooks_dir:
        return ""
    folder = Path(notebooks_dir).expanduser().resolve() / project
    try:
        mode = folder.lstat().st_mode
    except OSError:
        return ""
    return str(folder) if stat.S_ISDIR(mode) else ""
