"""Run folders are owned: a lock other live processes cannot take (and a killed holder cannot keep), refusal to
write over a run, move-aside that deletes nothing, stale temp cleanup, fail-fast checks and umask modes."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from multissl.atomic import atomic_dir, atomic_write_text
from multissl.errors import RunDirLockedError
from multissl.training import run_dir
from multissl.training.run_dir import (
    LOCK_FILE,
    RUN_ARTEFACTS,
    RunLock,
    apply_umask,
    check_run_dir,
    check_writable,
    clean_stale_temps,
    current_umask,
    existing_artefacts,
    move_aside,
    prepare_run_dir,
)

ROOT = Path(__file__).resolve().parents[2]
# Children load run_dir.py (and multissl.atomic) alone: multissl.training's __init__ imports torch, seconds per child.
PREAMBLE = f"""
import importlib.util, sys
sys.path.insert(0, {str(ROOT)!r})
spec = importlib.util.spec_from_file_location("run_dir", {str(ROOT / "multissl/training/run_dir.py")!r})
run_dir = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_dir)
"""


def _start_holder(out: Path) -> subprocess.Popen:
    """A live process that holds RunLock(out) until its stdin closes or it is killed."""
    code = PREAMBLE + "lock = run_dir.RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\nsys.stdin.read()\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n", "the holder process did not take the lock"
    return proc


def _tree(path: Path) -> dict:
    """Every entry under `path` with its mode, mtime and (for files) bytes: equal snapshots mean nothing changed."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(path))] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() else None)
    return out


def _finished_run(out: Path, with_checkpoint: bool = True) -> None:
    """A run folder as the loop leaves it, plus a user's own file and a held-lock file."""
    if with_checkpoint:
        (out / "checkpoints/step_4").mkdir(parents=True)
        (out / "checkpoints/step_4/state.json").write_text(json.dumps({"step": 4}))
    (out / "final").mkdir(parents=True)
    (out / "final/model.safetensors").write_bytes(b"old weights")
    (out / "metrics.jsonl").write_text('{"step": 4, "loss": 1.0}\n')
    (out / "recipe.yaml").write_text("method: simclr\n")
    (out / "eval.json").write_text('{"knn": {"accuracy": 0.5}}')
    (out / "notes.txt").write_text("my notes")  # not a run artefact


# --- RunLock -----------------------------------------------------------------------------------------------------

def test_lock_held_by_a_live_process_refuses_at_once_naming_its_pid_and_a_killed_holder_frees_it(tmp_path):
    out = tmp_path / "run"
    holder = _start_holder(out)
    try:
        with pytest.raises(RunDirLockedError) as info:
            RunLock(out).acquire()
        msg = str(info.value)
        assert f"pid {holder.pid}" in msg and str(out) in msg and "\n" not in msg
        assert info.value.holder["pid"] == holder.pid and isinstance(info.value, FileExistsError)
    finally:
        holder.kill()  # SIGKILL: no finally/atexit in the holder runs
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    with RunLock(out) as lock:  # the kernel dropped the dead holder's flock
        assert lock.held and json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_lock_creates_the_folder_is_exclusive_within_a_process_and_released_by_the_context_manager(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with RunLock(out) as first:
        assert out.is_dir() and first.held
        record = json.loads((out / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["hostname"] and record["started"].endswith("+00:00")
        with pytest.raises(RunDirLockedError, match=f"pid {os.getpid()}"):
            RunLock(out).acquire()  # a second open file of the same lock conflicts even in one process
    assert not first.held and (out / LOCK_FILE).exists()
    second = RunLock(out).acquire()
    second.release()
    second.release()  # a no-op


def test_a_holder_that_exits_without_releasing_leaves_the_folder_free(tmp_path):
    code = PREAMBLE + "run_dir.RunLock(sys.argv[1]).acquire()\nraise SystemExit(3)\n"
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert res.returncode == 3
    with RunLock(tmp_path):
        pass


def test_lock_on_a_file_path_is_one_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        RunLock(tmp_path / "f").acquire()


# --- refusal, resume, overwrite / move-aside ---------------------------------------------------------------------

def test_new_empty_or_unrelated_folders_are_accepted(tmp_path):
    assert check_run_dir(tmp_path / "new", resume=False, overwrite=False) == []
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("x")
    (tmp_path / "mine" / LOCK_FILE).write_text("")
    assert check_run_dir(tmp_path / "mine", resume=False, overwrite=False) == []
    assert prepare_run_dir(tmp_path / "mine", resume=False, overwrite=True) is None


def test_a_folder_with_a_run_is_refused_listing_what_is_there_and_nothing_changes(tmp_path):
    out = tmp_path / "run"
    _finished_run(out)
    (out / "reconstructions.png").write_bytes(b"png")
    assert existing_artefacts(out) == ["checkpoints", "metrics.jsonl", "recipe.yaml", "final", "eval.json", "reconstructions.png"]
    before = _tree(tmp_path)
    with pytest.raises(ValueError) as info:
        prepare_run_dir(out, resume=False, overwrite=False)
    msg = str(info.value)
    assert "\n" not in msg and str(out) in msg and "--resume" in msg and "--overwrite" in msg
    assert "checkpoints, metrics.jsonl, recipe.yaml, final, eval.json, reconstructions.png" in msg
    assert _tree(tmp_path) == before


def test_resume_needs_a_complete_checkpoint_and_cannot_be_combined_with_overwrite(tmp_path):
    out = tmp_path / "run"
    _finished_run(out, with_checkpoint=False)
    (out / "checkpoints/step_2.tmp").mkdir(parents=True)  # an interrupted save is not a checkpoint
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        check_run_dir(out, resume=True, overwrite=False)
    with pytest.raises(ValueError, match="no complete checkpoint to --resume from"):
        check_run_dir(out, resume=False, overwrite=False)
    with pytest.raises(ValueError, match="cannot be combined"):
        check_run_dir(out, resume=True, overwrite=True)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        check_run_dir(tmp_path / "missing", resume=True, overwrite=False)
    assert _tree(tmp_path) == before
    (out / "checkpoints/step_2").mkdir()
    (out / "checkpoints/step_2/state.json").write_text('{"step": 2}')
    assert prepare_run_dir(out, resume=True, overwrite=False) is None and (out / "final").is_dir()


def test_overwrite_moves_every_artefact_aside_and_leaves_user_files_and_the_lock_untouched(tmp_path):
    out = tmp_path / "run"
    _finished_run(out)
    with RunLock(out):
        artefacts = {name: _tree(out / name) if (out / name).is_dir() else (out / name).read_bytes() for name in existing_artefacts(out)}
        kept = {name: (out / name).stat() for name in ("notes.txt", LOCK_FILE)}
        found = check_run_dir(out, resume=False, overwrite=True)  # check early ...
        assert found == ["checkpoints", "metrics.jsonl", "recipe.yaml", "final", "eval.json"] and (out / "final").exists()
        now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
        aside = move_aside(out, found, now=now)  # ... move late
        assert aside == out.resolve().with_name("run.replaced-20240506T070809Z")
        assert existing_artefacts(out) == [] and sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "notes.txt"]
        for name, was in artefacts.items():  # moved whole, not copied-and-changed
            assert (_tree(aside / name) if (aside / name).is_dir() else (aside / name).read_bytes()) == was
        for name, st in kept.items():
            now_st = (out / name).stat()
            assert (now_st.st_ino, now_st.st_mtime_ns, now_st.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
        # a second overwrite in the same second gets its own folder
        (out / "metrics.jsonl").write_text("new\n")
        again = prepare_run_dir(out, resume=False, overwrite=True)
        assert again is not None and again != aside and re.fullmatch(r"run\.replaced-\d{8}T\d{6}Z(-\d+)?", again.name)
        assert (again / "metrics.jsonl").read_text() == "new\n"
        assert move_aside(out) is None  # nothing left to move
        (out / "eval.json").write_text("{}")
        third = move_aside(out, ["eval.json"], now=now)
        assert third.name == "run.replaced-20240506T070809Z-1" and (third / "eval.json").read_text() == "{}"
        assert (aside / "eval.json").read_text() == '{"knn": {"accuracy": 0.5}}'


def test_move_aside_rejects_names_that_are_not_run_artefacts(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="names"):
        move_aside(out, ["notes.txt"])
    assert (out / "notes.txt").read_text() == "x" and os.listdir(tmp_path) == ["run"]


# --- stale temps -------------------------------------------------------------------------------------------------

def test_stale_temps_of_a_killed_process_are_removed_and_only_those(tmp_path):
    out = tmp_path / "run"
    # a real atomic_dir killed mid-write leaves its real hidden temp folder
    code = (f"import os, signal, sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom multissl.atomic import atomic_dir, atomic_write_text\n"
            "def write(tmp):\n    (tmp / 'model.safetensors').write_bytes(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "atomic_dir(sys.argv[1], write)\n")
    assert subprocess.run([sys.executable, "-c", code, str(out / "final")]).returncode == -signal.SIGKILL
    [tmp_final] = [p for p in out.iterdir() if p.name.startswith(".final.tmp-")]
    (out / "checkpoints/step_3").mkdir(parents=True)
    (out / "checkpoints/step_3/state.json").write_text('{"step": 3}')
    (out / "checkpoints/step_6.tmp").mkdir()
    (out / "checkpoints/step_6.tmp/model.safetensors").write_bytes(b"half")
    (out / ".metrics.jsonl.tmp-abc123xy").write_text("half")  # an atomic_write_text temp file
    keep = ["checkpoints/step_3", "checkpoints/step_x.tmp", "checkpoints/mystep_1.tmp", "checkpoints/step_6.tmpx",
            ".mydata.tmp-abc12345", ".final.tmp", "step_2.tmp", "notes.tmp"]
    for name in keep[1:]:
        (out / name).mkdir()
    with pytest.raises(RuntimeError, match="RunLock"):
        clean_stale_temps(out)  # without the lock a live process may be writing them
    assert tmp_final.exists()
    with RunLock(out):
        removed = clean_stale_temps(out)
        assert sorted(removed) == sorted([tmp_final, out / "checkpoints/step_6.tmp", out / ".metrics.jsonl.tmp-abc123xy"])
        assert all(not p.exists() for p in removed) and all((out / name).exists() for name in keep)
        assert clean_stale_temps(out) == []


def test_the_previous_copy_atomic_dir_was_replacing_is_restored_not_removed_when_it_is_the_only_copy(tmp_path):
    (tmp_path / ".final.old-123").mkdir()
    (tmp_path / ".final.old-123/model.safetensors").write_bytes(b"good")
    (tmp_path / ".eval.json.old-77").write_text("{}")
    (tmp_path / "eval.json").write_text('{"new": 1}')
    with RunLock(tmp_path):
        assert clean_stale_temps(tmp_path) == [tmp_path / ".eval.json.old-77"]
    assert (tmp_path / "final/model.safetensors").read_bytes() == b"good" and not (tmp_path / ".final.old-123").exists()
    assert (tmp_path / "eval.json").read_text() == '{"new": 1}'


# --- fail fast: writable, free space -----------------------------------------------------------------------------

def test_check_writable_accepts_a_new_folder_and_refuses_too_little_space(tmp_path):
    check_writable(tmp_path / "not" / "yet" / "there")
    check_writable(tmp_path, min_free_bytes=1)
    total = shutil.disk_usage(tmp_path).total
    with pytest.raises(OSError, match="free on its filesystem, the run needs at least") as info:
        check_writable(tmp_path / "new", min_free_bytes=total + 1)
    assert "\n" not in str(info.value) and not (tmp_path / "new").exists()
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="min_free_bytes"):
            check_writable(tmp_path, min_free_bytes=bad)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_writable(tmp_path / "f" / "run")


def _check_writable_as_nobody(path: Path) -> str:
    """check_writable(path) in a forked child; as root it first becomes `nobody` (root may write anywhere)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one line through the pipe, never return into pytest
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            check_writable(path)
            msg = "ok"
        except BaseException as err:
            msg = f"{type(err).__name__}: {err}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        msg = f.read()
    os.waitpid(pid, 0)
    return msg


def test_check_writable_refuses_a_folder_the_user_cannot_write(tmp_path):
    base = Path(tempfile.mkdtemp())  # not under pytest's folder, which is private to its owner
    ro = base / "ro"
    try:
        base.chmod(0o755)
        ro.mkdir(mode=0o555)
        why = "is not writable (permissions or a read-only filesystem)"
        assert _check_writable_as_nobody(ro / "run") == f"PermissionError: output folder {ro / 'run'}: {ro} {why}"
        as_nobody = "ok" if os.geteuid() != 0 else f"PermissionError: output folder {base / 'run'}: {base} {why}"
        assert _check_writable_as_nobody(base / "run") == as_nobody  # the owner may write into base
    finally:
        ro.chmod(0o755)
        shutil.rmtree(base)


# --- umask -------------------------------------------------------------------------------------------------------

@pytest.fixture
def umask():
    """Set the process umask for one test and restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _write_model(tmp: Path) -> None:
    (tmp / "config.json").write_text("{}")
    (tmp / "sub").mkdir()
    fd, name = tempfile.mkstemp(dir=tmp / "sub")  # mode 0600, as tempfile makes it
    os.close(fd)
    (tmp / "run.sh").write_text("#!/bin/sh\n")
    (tmp / "run.sh").chmod(0o700)


def _modes(path: Path) -> dict:
    return {str(p.relative_to(path)): p.lstat().st_mode & 0o7777 for p in [path, *sorted(path.rglob("*"))]}


@pytest.mark.parametrize("mask, file_mode, dir_mode, exe_mode", [(0o022, 0o644, 0o755, 0o755), (0o027, 0o640, 0o750, 0o750)])
def test_apply_umask_gives_atomic_dir_results_the_modes_the_umask_implies(tmp_path, umask, mask, file_mode, dir_mode, exe_mode):
    umask(mask)
    assert current_umask() == mask and current_umask() == mask  # reading it leaves it as it was
    private = Path(tempfile.mkdtemp(dir=tmp_path))  # 0o700, as tempfile makes it
    _write_model(private)
    assert private.stat().st_mode & 0o777 == 0o700
    outside = tmp_path / "secret"
    outside.write_text("x")
    outside.chmod(0o600)
    (private / "link").symlink_to(outside)
    assert apply_umask(private) == private
    [tmp_file] = [p for p in (private / "sub").iterdir()]
    modes = _modes(private)
    assert modes.pop(".") == dir_mode and modes.pop("sub") == dir_mode and modes.pop("run.sh") == exe_mode
    modes.pop("link")
    assert modes == {"config.json": file_mode, f"sub/{tmp_file.name}": file_mode}
    assert outside.stat().st_mode & 0o777 == 0o600  # links are not followed
    # atomic_dir applies it itself: the folder appears with its final modes at once (the fault was tempfile's 0o700)
    atomic = atomic_dir(tmp_path / "final", _write_model)
    assert _modes(atomic)["."] == dir_mode and _modes(atomic)["config.json"] == file_mode
    text = atomic_write_text(tmp_path / "eval.json", "{}")
    assert text.stat().st_mode & 0o777 == file_mode
    single = Path(tempfile.mkstemp(dir=tmp_path)[1])
    assert apply_umask(single).stat().st_mode & 0o777 == file_mode


def test_module_needs_no_torch():
    code = PREAMBLE + "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert set(RUN_ARTEFACTS) >= {"checkpoints", "final", "metrics.jsonl", "recipe.yaml", "eval.json"}
    assert run_dir.LOCK_FILE == ".multissl.lock"
