"""Atomic writes: a folder or file appears complete or not at all (an interrupted save never half-writes), with the
permissions the user's umask implies (tempfile would leave them private to the owner)."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_dir(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Run write(tmp_dir) then rename tmp_dir to `target`, replacing an older `target` only once the new one is complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old = None
    try:
        write(tmp)
        apply_umask(tmp)  # mkdtemp made it 0o700: the result gets the modes the user's umask implies, like any file
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)  # interrupted between the two renames: put the previous copy back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file through a temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        apply_umask(tmp)  # mkstemp made it 0o600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc/self/status), else set-and-restore.

    The fallback (os.umask twice) leaves a short window in which a file another thread creates gets umask 0o077
    instead of the real one (more private, never less); call it from the main thread, before worker threads start.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the most restrictive value, so the window can only make files more private
    os.umask(mask)
    return mask


def apply_umask(path: str | Path) -> Path:
    """Give `path` and everything under it the modes the umask implies: 0o666 & ~umask for files (0o777 if
    owner-executable), 0o777 & ~umask for folders. For tempfile-made folders (0o700/0o600), e.g. inside atomic_dir's
    write callback. Symbolic links are skipped, not followed."""
    path = Path(path)
    mask = current_umask()

    def fix(p: str, is_dir: bool) -> None:
        mode = os.lstat(p).st_mode
        want = (0o777 if is_dir or mode & 0o100 else 0o666) & ~mask
        if mode & 0o7777 != want:
            os.chmod(p, want)

    if path.is_symlink():
        return path
    if not path.is_dir():
        fix(str(path), False)
        return path
    fix(str(path), True)
    for root, dirs, files in os.walk(path):  # os.walk does not follow links to folders
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                fix(os.path.join(root, name), True)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                fix(os.path.join(root, name), False)
    return path
