"""A run folder is owned by one process: a lock, refusal to overwrite a finished run, move-aside, stale temp cleanup.

Order of use in the training loop (main process only, except where said):
    check_writable(out, min_free_bytes=...)         # creates nothing
    lock = RunLock(out).acquire()                   # fails at once if another live process trains into `out`
    clean_stale_temps(out)                          # leftovers of killed runs (needs the lock)
    artefacts = check_run_dir(out, resume=..., overwrite=...)   # refuses, changing nothing
    ... build data, model, first batch ...
    aside = move_aside(out) if overwrite else None   # only now is anything moved
    ... train; atomic_dir(out / "final", lambda tmp: (save(tmp), apply_umask(tmp))) ...
    lock.release()                                  # or `with RunLock(out):`; process exit also releases it

POSIX only (fcntl.flock); elsewhere RunLock raises a clear OSError. Stdlib only: importing this module needs no torch.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from multissl.atomic import apply_umask, current_umask  # noqa: F401  (re-exported: the loop and tests use them here)
from multissl.errors import RunDirLockedError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".multissl.lock"
# Everything the loop (and a method's on_train_end) writes into a run folder, in the order a listing shows them.
RUN_ARTEFACTS = ("checkpoints", "metrics.jsonl", "recipe.yaml", "loss_curve.png", "final", "eval.json", "reconstructions.png",
                 "tensorboard")
_STEP_TMP = re.compile(r"step_\d+\.tmp")
# multissl.atomic's temp names: tempfile's `.{name}.tmp-XXXXXXXX` and the replaced copy `.{name}.old-{pid}`.
_ATOMIC_TMP = re.compile(r"\.(?P<name>.+)\.tmp-[A-Za-z0-9_]+")
_ATOMIC_OLD = re.compile(r"\.(?P<name>.+)\.old-\d+")
_HELD: dict[Path, RunLock] = {}  # folders whose lock this process holds (clean_stale_temps requires it)


class RunLock:
    """An exclusive flock on `<out>/.multissl.lock` (which holds the holder's pid, hostname and start time as JSON).

    The kernel drops a flock when the last descriptor of its open file goes away, so the lock is free again however
    the holder ends, SIGKILL included; the file itself stays (deleting a lock file races with a process that has
    just opened it). Forked children (e.g. DataLoader workers) share the descriptor, so the lock lasts until they
    are gone too. Works on local filesystems and on Linux NFS (flock is emulated with fcntl locks there).
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (creating `out` if needed) or raise RunDirLockedError naming the holder's pid; never waits."""
        if fcntl is None:
            raise OSError(f"locking a run folder needs a POSIX system (fcntl.flock), not available on {sys.platform}")
        if self._fd is not None:
            raise RuntimeError(f"RunLock({self.out}) is already held by this object")
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"output folder {self.out} is a file, not a folder")
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f"pid {holder['pid']} on {holder.get('hostname', '?')}, since {holder.get('started', '?')}" if holder else "pid unknown"
            err = RunDirLockedError(f"{self.out} is in use by another multissl process ({who}); wait for it to end or choose another --output-dir")
            err.holder = holder
            raise err from None
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise OSError(f"{self.out}: its filesystem does not support file locks ({err.strerror}); use a local folder") from err
            raise
        info = json.dumps({"pid": os.getpid(), "hostname": socket.gethostname(),
                           "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
        os.pwrite(fd, info, 0)
        os.ftruncate(fd, len(info))  # after the write: a reader never sees an empty file while we hold it
        self._fd = fd
        _HELD[self.out.resolve()] = self
        return self

    def release(self) -> None:
        """Give the lock back (a no-op when not held); the lock file stays."""
        if self._fd is None:
            return
        _HELD.pop(self.out.resolve(), None)
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # while still locked: a stale holder record never outlives the holder
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict | None:
    """The holder's JSON record, or None while it is still being written / unreadable."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "pid" in info else None


def existing_artefacts(out: str | Path) -> list[str]:
    """The names in RUN_ARTEFACTS present in `out` (a broken link counts), in RUN_ARTEFACTS order."""
    out = Path(out)
    return [name for name in RUN_ARTEFACTS if os.path.lexists(out / name)]


def check_run_dir(out: str | Path, *, resume: bool, overwrite: bool) -> list[str]:
    """Decide whether a run may write into `out`, changing nothing; returns the run artefacts found there.

    Empty/new folder: fine. Artefacts present: refused with one ValueError line unless `resume` (then it must hold a
    complete checkpoint) or `overwrite` (the caller later calls move_aside). Files that are not run artefacts never
    block a run. `resume` without a checkpoint is refused too.
    """
    from multissl.training.checkpoint import CHECKPOINTS, checkpoint_dirs  # here: the package __init__ imports torch

    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite cannot be combined: --resume continues the run in the folder, --overwrite moves it aside")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} is a file, not a folder")
    found = existing_artefacts(out)
    has_ckpt = bool(checkpoint_dirs(out))
    if resume:
        if not has_ckpt:
            raise ValueError(f"--resume: {out} holds no complete checkpoint ({CHECKPOINTS}/step_N with state.json); "
                             f"found {', '.join(found) if found else 'no run artefacts'}")
        return found
    if found and not overwrite:
        cont = "pass --resume to continue it" if has_ckpt else "it has no complete checkpoint to --resume from"
        raise ValueError(f"{out} already holds a run ({', '.join(found)}); {cont}, pass --overwrite to move it aside "
                         f"into {out.name}.replaced-<UTC time>/ beside it, or choose another --output-dir")
    return found


def move_aside(out: str | Path, names: Sequence[str] | None = None, *, now: datetime | None = None) -> Path | None:
    """Move the run artefacts of `out` (default: all present) into a new sibling `<out>.replaced-<UTC time>[-n]/`.

    Nothing is deleted; the lock file and files that are not run artefacts stay where they are, untouched. Returns
    the new folder, or None when there was nothing to move. If a move fails, the ones already moved are put back.
    `now` (UTC) names the folder; tests pass it, callers leave it None.
    """
    out = Path(out).resolve()  # a sibling needs a real name ("." has none); next to the real folder = same filesystem
    names = existing_artefacts(out) if names is None else list(names)
    unknown = [n for n in names if n not in RUN_ARTEFACTS]
    if unknown:
        raise ValueError(f"names: {unknown} are not run artefacts; expected some of {list(RUN_ARTEFACTS)}")
    names = [n for n in names if os.path.lexists(out / n)]
    if not names:
        return None
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        aside = out.with_name(f"{out.name}.replaced-{stamp}" + (f"-{n}" if n else ""))
        try:
            aside.mkdir()  # atomic claim of the name: two callers never share a folder
            break
        except FileExistsError:
            continue
        except OSError as err:
            raise OSError(f"cannot create {aside} to move the old run into ({err.strerror}); move or delete it by hand") from err
    else:
        raise FileExistsError(f"{out.name}.replaced-{stamp}-0..999 all exist beside {out}")
    moved: list[str] = []
    try:
        for name in names:
            shutil.move(out / name, aside / name)  # a rename on one filesystem; a copy only if `out` is a mount point
            moved.append(name)
    except OSError as err:
        try:
            for back in reversed(moved):
                shutil.move(aside / back, out / back)
            aside.rmdir()
        except OSError:
            raise OSError(f"could not move {out / name} aside ({err}); {', '.join(moved)} are now in {aside}") from err
        raise OSError(f"could not move {out / name} aside into {aside} ({err}); nothing was moved") from err
    return aside


def prepare_run_dir(out: str | Path, *, resume: bool, overwrite: bool) -> Path | None:
    """check_run_dir then, with `overwrite`, move_aside: returns where the old run went (None if nowhere)."""
    found = check_run_dir(out, resume=resume, overwrite=overwrite)
    return move_aside(out, found) if overwrite else None


def clean_stale_temps(out: str | Path) -> list[Path]:
    """Remove temp folders/files of killed runs; call while holding RunLock(out), so no save is in flight.

    Removed: `checkpoints/step_N.tmp` (an interrupted checkpoint save) and multissl.atomic's `.{artefact}.tmp-*`
    (an interrupted atomic_dir/atomic_write_text of a run artefact). `.{artefact}.old-PID` (the previous copy
    atomic_dir was replacing) is removed only when `{artefact}` exists; otherwise it is the only copy and is renamed
    back. Everything else is left alone. Returns the removed paths.
    """
    out = Path(out)
    if out.resolve() not in _HELD:
        raise RuntimeError(f"clean_stale_temps({out}): take RunLock({out}) first, so no live process is writing these temps")
    removed: list[Path] = []
    ckpts = out / "checkpoints"
    candidates = [p for p in ckpts.iterdir() if _STEP_TMP.fullmatch(p.name)] if ckpts.is_dir() else []
    for p in out.iterdir():
        tmp, old = _ATOMIC_TMP.fullmatch(p.name), _ATOMIC_OLD.fullmatch(p.name)
        if tmp and tmp["name"] in RUN_ARTEFACTS:
            candidates.append(p)
        elif old and old["name"] in RUN_ARTEFACTS:
            if os.path.lexists(out / old["name"]):
                candidates.append(p)
            else:
                os.replace(p, out / old["name"])  # killed between atomic_dir's two renames
    for p in sorted(candidates):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(p)
    return removed


def check_writable(out: str | Path, min_free_bytes: int = 0) -> None:
    """Fail fast (one line) if `out`, or its nearest existing parent, is not a writable folder or has < min_free_bytes free."""
    if isinstance(min_free_bytes, bool) or not isinstance(min_free_bytes, int) or min_free_bytes < 0:
        raise ValueError(f"min_free_bytes: expected an int >= 0, got {min_free_bytes!r}")
    out = Path(out)
    existing = out.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"output folder {out}: {existing} is a file, not a folder")
    kw = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if not os.access(existing, os.W_OK | os.X_OK, **kw):  # access(2) also says no on a read-only filesystem
        raise PermissionError(f"output folder {out}: {existing} is not writable (permissions or a read-only filesystem)")
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise OSError(f"output folder {out}: only {_size(free)} free on its filesystem, the run needs at least {_size(min_free_bytes)}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
