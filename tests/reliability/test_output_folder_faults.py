"""Output-folder faults: training into a finished run, --overwrite, a file where the folder should be, a folder the
user may not write, temp leftovers of a killed run, a run that diverges. Nothing the user had is lost."""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.reliability import Result, assert_untouched, contents, litter, one_line_error, recipe, replaced, run_cli, snapshot, write_recipe


def test_a_finished_run_is_refused_and_every_file_stays_byte_identical(cli, finished_run):
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir)
    one_line_error(result, "train", f"{finished_run.dir} already holds a run", "--resume", "--overwrite")
    assert_untouched(finished_run.dir, finished_run.before)


def test_a_finished_run_without_checkpoints_is_refused_saying_resume_is_impossible(cli, finished_run):
    shutil.rmtree(finished_run.dir / "checkpoints")
    before = snapshot(finished_run.dir)
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir)
    one_line_error(result, "train", "already holds a run", "no complete checkpoint to --resume", "--overwrite")
    assert_untouched(finished_run.dir, before)


def test_overwrite_moves_the_old_run_aside_intact(cli, finished_run):
    old = contents(finished_run.dir)
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--overwrite", "--set", "train.seed=1")
    assert result.code == 0, result.err[-2000:]
    [aside] = replaced(finished_run.dir)
    assert f"moved the previous run to {aside}" in result.out
    assert contents(aside) == old, "the old run is complete and unchanged in its new place"
    moved = {k: v for k, v in finished_run.before.items() if k != "."}
    assert snapshot(aside) | {".": None} == moved | {".": None}, "the move kept modes and mtimes (a rename, not a rewrite)"
    new = contents(finished_run.dir)
    assert new["final/model.safetensors"] != old["final/model.safetensors"] and not litter(finished_run.dir)


@pytest.mark.parametrize("under", [False, True], ids=["is-a-file", "under-a-file"])
def test_an_output_path_that_is_a_file_is_one_line_and_the_file_is_kept(cli, tmp_path, under):
    path = tmp_path / "results.csv"
    path.write_text("epoch,acc\n1,0.9\n")
    out = path / "run" if under else path
    result = cli("train", write_recipe(tmp_path / "r.yaml", recipe()), "--output-dir", out, "--overwrite")
    one_line_error(result, "train", f"output folder {out}", f"{path} is a file, not a folder")
    assert path.read_text() == "epoch,acc\n1,0.9\n" and sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml", "results.csv"]


def _cli_as_nobody(*argv: str) -> Result:
    """`multissl ARGV` in a forked child that first drops to uid/gid 65534 when run as root (root may write anywhere).

    A fork, not a subprocess: the interpreter lives under /root, which `nobody` cannot execute.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports through the pipe and never returns into pytest
        code = 1
        try:
            from multissl.cli import main

            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            sys.stdout = open(os.devnull, "w")
            sys.stderr = os.fdopen(w, "w")
            code = main(list(argv))
            sys.stderr.flush()
        except BaseException as err:  # noqa: BLE001 - reported as a traceback-free line the test will reject
            os.write(w, f"child failed: {type(err).__name__}: {err}".encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return Result(os.waitstatus_to_exitcode(status), "", err)


def test_a_read_only_parent_folder_is_one_line_before_anything_is_built():
    base = Path(tempfile.mkdtemp())  # not under pytest's tmp folder, which only its owner may enter
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        path = write_recipe(base / "r.yaml", recipe())
        path.chmod(0o644)
        result = _cli_as_nobody("train", str(path), "--output-dir", str(ro / "run"))
        one_line_error(result, "train", f"output folder {ro / 'run'}", f"{ro} is not writable")
        assert list(ro.iterdir()) == []
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base)


def test_temp_leftovers_of_a_killed_run_are_cleaned_and_the_run_resumes(cli, finished_run):
    out = finished_run.dir
    (out / "checkpoints" / "step_5.tmp").mkdir()  # killed mid-save
    (out / "checkpoints" / "step_5.tmp" / "model.safetensors").write_bytes(b"half a checkpoint")
    (out / ".final.tmp-k1ll3d").mkdir()  # killed while atomic_dir wrote final/
    (out / ".final.tmp-k1ll3d" / "config.json").write_text("{")
    (out / ".eval.json.tmp-x7y8z9").write_text('{"knn": ')  # killed in atomic_write_text
    (out / "notes.txt").write_text("my own notes")  # not a run artefact: never touched
    result = cli("train", finished_run.recipe, "--output-dir", out, "--resume")
    assert result.code == 0, result.err[-2000:]
    assert not litter(out), litter(out)
    assert (out / "notes.txt").read_text() == "my own notes"
    assert (out / "final" / "model.safetensors").is_file() and not replaced(out)


def test_a_diverging_run_stops_with_one_line_and_keeps_its_good_checkpoints(cli, tmp_path):
    out = tmp_path / "run"
    data = recipe(**{"train.max_steps": 40, "train.learning_rate": 1e30, "train.max_grad_norm": None, "train.save_every": 1,
                     "train.keep_checkpoints": 100})
    result = cli("train", write_recipe(tmp_path / "r.yaml", data), "--output-dir", out)
    line = one_line_error(result, "train", "became NaN/inf at or before step", "last good checkpoint")
    kept = sorted((out / "checkpoints").iterdir())
    assert kept and str(kept[-1]) in line and not (out / "final").exists() and not litter(out)

    def no_constants(name):
        raise AssertionError(f"metrics.jsonl holds {name}: not strict JSON")

    rows = [json.loads(line, parse_constant=no_constants) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))




@pytest.mark.parametrize("part", ["run-artefacts", "checkpoints"])
def test_outputs_get_the_users_umask(tmp_path, capsys, part):
    old = os.umask(0o027)
    try:
        result = run_cli(capsys, "train", write_recipe(tmp_path / "r.yaml", recipe(**{"train.save_every": 3})), "--output-dir",
                         tmp_path / "run")
    finally:
        os.umask(old)
    assert result.code == 0, result.err[-2000:]
    run = tmp_path / "run"
    paths = [p for p in run.rglob("*") if (p.relative_to(run).parts[0] == "checkpoints") == (part == "checkpoints")]
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in paths}
    wrong = {k: oct(m) for k, m in modes.items() if m != (0o750 if (run / k).is_dir() else 0o640)}
    assert modes and not wrong, f"umask 027 should give 0o640 files and 0o750 folders: {wrong}"
