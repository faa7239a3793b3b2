"""Faults that need real processes: Ctrl-C / SIGTERM during `multissl train` (exit 130 / 143, one line with the
--resume command, a checkpoint; resuming gives the weights of an uninterrupted run), a second Ctrl-C, and two
`multissl train` on one folder (the second fails at once naming the first's pid; the first finishes intact).
SIGKILL at random moments is tests/reliability/test_sigkill_loop.py."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multissl.training.checkpoint import checkpoint_dirs
from tests.reliability import Result, litter, one_line_error, recipe, replaced, write_recipe

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 40  # about 0.1 s a step: long enough to land a signal mid-run, short enough to resume in seconds
RECIPE = recipe(**{"train.max_steps": MAX_STEPS, "train.seed": 3, "train.warmup_steps": 4})
# A second `multissl train` that imports everything first, says "ready", and calls the CLI's main when told to: so its
# attempt lands while the first run is training, not 15 s of imports later.
WAITING_CLI = ("import sys; import multissl.training, multissl.models.simclr; from multissl.cli import main; "
               "print('ready', flush=True); sys.stdin.readline(); sys.exit(main(sys.argv[1:]))")
pytestmark = pytest.mark.slow


def _env() -> dict:
    # The same thread count as this process, so the subprocess's arithmetic matches the in-process reference run.
    return dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONPATH=str(ROOT))


def _start(*argv, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _train(recipe_path: Path, out: Path, *flags: str) -> subprocess.Popen:
    return _start("-m", "multissl.cli", "train", recipe_path, "--output-dir", out, *flags)


def _wait_for_steps(proc: subprocess.Popen, out: Path, steps: int) -> None:
    """Poll metrics.jsonl until `steps` rows are logged (a bounded number of polls guards against a hang)."""
    for _ in range(6000):
        log = out / "metrics.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= steps:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before logging {steps} steps: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run logged fewer than {steps} steps in 6000 polls")


def _weights(out: Path) -> dict:
    return load_file(out / "final" / "model.safetensors")


def _assert_same_weights(ours: dict, ref: dict) -> None:
    assert ours.keys() == ref.keys()
    worst = max((ours[k].double() - ref[k].double()).abs().max().item() for k in ref)
    assert worst <= 1e-6, f"weights differ from the uninterrupted run by up to {worst:.3g}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The recipe trained without interruption (in this process), and its final weights."""
    from multissl.cli import main

    base = tmp_path_factory.mktemp("reference")
    assert main(["train", str(write_recipe(base / "r.yaml", RECIPE)), "--output-dir", str(base / "run")]) == 0
    return _weights(base / "run")


def _resume_as_told(cli, line: str) -> Result:
    """Run the `multissl train ... --resume` command the interrupt line printed, as printed."""
    command = re.search(r"`multissl (train [^`]+ --resume)`", line)
    assert command, f"no --resume command in {line!r}"
    return cli(*shlex.split(command.group(1)))


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_after_the_step_saves_and_resume_matches_an_uninterrupted_run(cli, tmp_path, reference, signum, code):
    path, out = write_recipe(tmp_path / "r.yaml", RECIPE), tmp_path / "run"
    proc = _train(path, out)
    _wait_for_steps(proc, out, 2)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=600)
    line = one_line_error(Result(proc.returncode, stdout, stderr), "train", "--resume", str(out), code=code, kind="interrupted")
    step = int(re.search(r"stopped at step (\d+)", line).group(1))
    assert 2 <= step < MAX_STEPS
    assert [p.name for p in checkpoint_dirs(out)] == [f"step_{step}"] and str(out / "checkpoints" / f"step_{step}") in line
    assert (out / "loss_curve.png").is_file() and not (out / "final").exists() and not litter(out)
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == list(range(1, step + 1))

    resumed = _resume_as_told(cli, line)
    assert resumed.code == 0, resumed.err[-2000:]
    _assert_same_weights(_weights(out), reference)
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == list(range(1, MAX_STEPS + 1))
    assert not litter(out) and not replaced(out)


def test_a_second_ctrl_c_stops_at_once_and_the_run_still_resumes(cli, tmp_path, reference):
    path, out = write_recipe(tmp_path / "r.yaml", recipe(RECIPE, **{"train.save_every": 1})), tmp_path / "run"
    proc = _train(path, out)
    _wait_for_steps(proc, out, 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two separate deliveries (Python runs a handler once for signals that arrive together)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    one_line_error(Result(proc.returncode, stdout, stderr), "train", code=130, kind="interrupted")
    assert checkpoint_dirs(out), "the checkpoints saved before the signals are kept"

    resumed = cli("train", path, "--output-dir", out, "--resume")
    assert resumed.code == 0, resumed.err[-2000:]
    _assert_same_weights(_weights(out), reference)
    assert not litter(out), "a checkpoint save cut off by the second signal is cleaned up by the next run"


def test_a_second_train_on_the_same_folder_fails_at_once_and_the_first_finishes(tmp_path):
    path, out = write_recipe(tmp_path / "r.yaml", RECIPE), tmp_path / "run"
    first = _train(path, out)
    second = _start("-c", WAITING_CLI, "train", path, "--output-dir", out, stdin=subprocess.PIPE)
    try:
        assert second.stdout.readline() == "ready\n", second.stderr.read()[-2000:]
        _wait_for_steps(first, out, 1)
        stdout, stderr = second.communicate("go\n", timeout=600)
        assert first.poll() is None, "the first run was still training when the second one tried"
        one_line_error(Result(second.returncode, stdout.replace("ready\n", "", 1), stderr), "train",
                       f"{out} is in use by another multissl process (pid {first.pid} on", "choose another --output-dir")
        assert not replaced(out)
    finally:
        if second.poll() is None:
            second.kill()
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == list(range(1, MAX_STEPS + 1))
    assert (out / "final" / "model.safetensors").is_file() and not litter(out)
