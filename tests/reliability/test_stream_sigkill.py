"""Streamed runs killed for real: `multissl train` on a `streaming:` recipe (SimCLR over image shards, GPT with
`grouping: group` over JSON-lines text), 2 loader workers and a shuffle buffer, is SIGKILLed (with its loader workers:
the whole process group) after it has trained past a checkpoint, then `--resume`d to the end. The per-step losses in
metrics.jsonl and the final weights equal those of a run that was never interrupted.

tests/training/test_streaming_resume.py checks the same resume in-process (a simulated kill); this file checks it
through real processes, where the loader workers had read ahead of the checkpoint when they died.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from multissl.training.checkpoint import checkpoint_dirs
from tests.training.test_streaming_resume import _simclr, _text_recipe, _text_shards, image_shards  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _train(recipe: Path, out: Path, *flags: str) -> subprocess.Popen:
    """`multissl train` in its own session (process group), so the kill reaches its loader workers too."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "multissl.cli", "train", str(recipe), "--output-dir", str(out), *flags],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


def _logged_steps(out: Path) -> int:
    log = out / "metrics.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def _kill_past_a_checkpoint(proc: subprocess.Popen, out: Path, steps: int) -> None:
    """Once `steps` steps are logged and a checkpoint is saved, SIGKILL the process group (a bounded number of polls)."""
    for _ in range(20_000):
        if _logged_steps(out) >= steps and checkpoint_dirs(out):
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it was killed: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run logged fewer than {steps} steps in 20000 polls")
    os.killpg(proc.pid, signal.SIGKILL)  # the session id is the leader's pid
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill landed: raise max_steps"
    _assert_group_gone(proc.pid)


def _assert_group_gone(group: int) -> None:
    """No live process (dataloader workers included) is left in the killed process group; zombies do not count."""
    proc_fs = Path("/proc")
    if not proc_fs.is_dir():
        return
    for _ in range(1000):
        alive = []
        for stat in proc_fs.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
            except (OSError, IndexError):
                continue  # the process went away while we looked
            if int(fields[2]) == group and fields[0] != "Z":
                alive.append(stat.parent.name)
        if not alive:
            return
        time.sleep(0.01)
    pytest.fail(f"processes {alive} of the killed run's group still run")


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def _kill_resume_and_compare(recipe: dict, tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    _finish(_train(path, tmp_path / "reference"))
    out = tmp_path / "killed"
    _kill_past_a_checkpoint(_train(path, out), out, kill_after)
    assert not (out / "final").exists()
    saved = int(checkpoint_dirs(out)[-1].name.split("_")[1])
    assert 0 < saved < recipe["train"]["max_steps"]
    _finish(_train(path, out, "--resume"))

    ours, ref = _losses(out), _losses(tmp_path / "reference")
    assert [s for s, _ in ours] == [s for s, _ in ref] == list(range(1, recipe["train"]["max_steps"] + 1))
    assert [loss for _, loss in ours] == pytest.approx([loss for _, loss in ref], abs=1e-6)
    mine, theirs = load_file(out / "final" / "model.safetensors"), load_file(tmp_path / "reference" / "final" / "model.safetensors")
    assert mine.keys() == theirs.keys()
    worst = max((mine[k].double() - theirs[k].double()).abs().max().item() for k in theirs)
    assert worst <= 1e-6, f"weights differ from the uninterrupted run by up to {worst:.3g}"


def test_streamed_simclr_sigkilled_mid_stream_resumes_to_the_same_curve(image_shards, tmp_path):  # noqa: F811
    # 2 loader streams of 16 rows = 2 batches of 8 per stream and epoch: 16 steps cross 3 epochs; checkpoints every 2
    recipe = _simclr(image_shards, max_steps=16, save_every=2, keep_checkpoints=2).to_dict()
    assert recipe["streaming"] == {"shuffle_buffer": 6} and recipe["train"]["num_workers"] == 2
    _kill_resume_and_compare(recipe, tmp_path, kill_after=3)


def test_streamed_grouped_gpt_sigkilled_mid_stream_resumes_to_the_same_curve(tmp_path):
    # grouping: group packs each of 2 streams' texts into 32-token blocks (15-16 a stream and epoch): 16 steps of 4
    # blocks cross 2 epochs, and positions carry tokens from one shuffle window into the next
    text = _text_shards(tmp_path / "text")
    recipe = _text_recipe("gpt_lm", text, "group", 32, max_steps=16, num_workers=2, save_every=2,
                          keep_checkpoints=2).to_dict()
    assert recipe["streaming"] == {"shuffle_buffer": 4} and recipe["model"]["grouping"] == "group"
    _kill_resume_and_compare(recipe, tmp_path, kill_after=3)
