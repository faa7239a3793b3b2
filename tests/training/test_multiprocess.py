"""`torchrun --nproc_per_node 2 -m multissl.cli train` runs the real CLI on 2 CPU processes (NT-Xent gathers across them).

Not `accelerate launch --num_processes 2 --cpu`: Accelerate 1.15's launcher starts ONE process for --cpu, so that
command never tested two. multissl forms the gloo group itself when WORLD_SIZE > 1 and there is no GPU, and refuses
a multi-process launch that forms no group (multissl/training/fsdp.py check_launch): a green run is a 2-process run.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gloo import free_port

RECIPE = """
method: simclr
dataset: digits
model:
  image_size: 16
  projection_hidden_dim: 16
  projection_dim: 8
  backbone_config: {model_type: resnet, num_channels: 3, embedding_size: 8, hidden_sizes: [8, 16], depths: [1, 1], layer_type: basic}
train: {max_steps: 4, batch_size: 8, learning_rate: 1.0e-3, log_every: 1, save_every: 2, progress: false}
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert launcher, "torch's launcher must be installed with the package"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    port = str(free_port())
    cmd = [launcher, "--nproc_per_node", "2", "--master_port", port, "-m", "multissl.cli", "train", str(recipe),
           "--output-dir", str(tmp_path / "run")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one log (main process), not one per process
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_4").is_dir()
