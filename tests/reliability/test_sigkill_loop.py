"""SIGKILL at random moments, saves included, ten times in one run: every restart resumes, and the final weights
equal those of a run that was never interrupted."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from multissl.training.checkpoint import CHECKPOINTS, checkpoint_dirs

TINY_RESNET = {"model_type": "resnet", "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1],
               "layer_type": "basic", "downsample_in_first_stage": False}
RECIPE = {"method": "simclr", "dataset": "digits",
          "model": {"image_size": 16, "projection_hidden_dim": 16, "projection_dim": 8, "backbone_config": TINY_RESNET},
          "train": {"max_steps": 60, "batch_size": 8, "log_every": 1, "save_every": 1, "keep_checkpoints": 2,
                    "progress": False, "seed": 5}}


def _start(recipe: Path, out: Path, *flags: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "multissl.cli", "train", str(recipe), "--output-dir", str(out), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _newest_step(out: Path) -> int:
    ckpts = checkpoint_dirs(out)
    return int(ckpts[-1].name.split("_")[1]) if ckpts else 0


def _kill_at_a_random_moment(proc: subprocess.Popen, out: Path, rng: random.Random, mid_save: bool) -> bool:
    """Wait until this life has saved a new checkpoint, then SIGKILL: at once when a step_N.tmp appears (mid-save), or
    after a random delay. False if the process finished first."""
    before = _newest_step(out)
    while _newest_step(out) <= before:
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    if mid_save:
        for _ in range(10_000):  # a bounded number of polls, not a time limit
            if list((out / CHECKPOINTS).glob("step_*.tmp")) or proc.poll() is not None:
                break
            time.sleep(0.0005)
    else:
        time.sleep(rng.uniform(0.0, 0.05))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
def test_ten_sigkills_then_resume_equals_an_uninterrupted_run(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    reference = _start(recipe, tmp_path / "reference")
    assert reference.wait() == 0, reference.stderr.read()[-2000:]

    out, rng, kills, lives = tmp_path / "killed", random.Random(0), 0, 0
    while kills < 10 and lives < 40:
        lives += 1
        # No complete checkpoint yet (killed before the first save): the folder holds a partial run -> --overwrite.
        flags = ("--resume",) if checkpoint_dirs(out) else (("--overwrite",) if out.exists() else ())
        proc = _start(recipe, out, *flags)
        if _kill_at_a_random_moment(proc, out, rng, mid_save=kills % 2 == 1):
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
            break
    assert kills == 10, f"only {kills} kills landed in {lives} lives"
    final = _start(recipe, out, "--resume")
    assert final.wait() == 0, final.stderr.read()[-2000:]

    ours, ref = load_file(out / "final" / "model.safetensors"), load_file(tmp_path / "reference" / "final" / "model.safetensors")
    assert ours.keys() == ref.keys()
    different = [k for k in ref if not torch.equal(ours[k], ref[k])]
    assert not different, f"weights differ after 10 kills: {different[:5]}"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "temp folders of killed lives were cleaned"
    steps = [yaml.safe_load(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, RECIPE["train"]["max_steps"] + 1)), "metrics.jsonl reads like one clean run"
