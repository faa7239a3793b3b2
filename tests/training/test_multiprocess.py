"""`accelerate launch --num_processes 2 --cpu` runs the real CLI end to end (NT-Xent gathers across processes)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
def test_accelerate_launch_two_cpu_processes(tmp_path):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert launcher, "accelerate's launcher must be installed with the package"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_PORT="29517")
    cmd = [launcher, "launch", "--num_processes", "2", "--cpu", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "multissl.cli", "train", str(recipe), "--output-dir", str(tmp_path / "run")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one log (main process), not one per process
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_4").is_dir()
