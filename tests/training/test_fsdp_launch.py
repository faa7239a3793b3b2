"""`multissl train ... --accelerate-config FILE` for real: it relaunches under `accelerate launch --config_file FILE`.

A MULTI_CPU (DDP) config trains 2 processes; an FSDP config on this CPU-only machine is refused with the reason
(Accelerate would start 2 processes that each train alone) instead of training the same run twice.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gloo import free_port

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None

RECIPE = """
method: simclr
dataset: digits
model:
  image_size: 16
  projection_hidden_dim: 16
  projection_dim: 8
  backbone_config: {model_type: resnet, num_channels: 3, embedding_size: 8, hidden_sizes: [8, 16], depths: [1, 1], layer_type: basic}
train: {max_steps: 2, batch_size: 8, log_every: 1, progress: false}
"""

CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: {kind}
num_machines: 1
num_processes: 2
machine_rank: 0
main_process_port: {port}
mixed_precision: 'no'
use_cpu: true
rdzv_backend: static
same_network: true
{extra}"""
FSDP = """fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: NO_WRAP
  fsdp_reshard_after_forward: true
"""


def _train(tmp_path: Path, kind: str, extra: str = "") -> subprocess.CompletedProcess:
    recipe, config = tmp_path / "r.yaml", tmp_path / f"{kind}.yaml"
    recipe.write_text(RECIPE)
    config.write_text(CONFIG.format(kind=kind, port=free_port(), extra=extra))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "multissl.cli", "train", str(recipe), "--output-dir", str(tmp_path / "run"),
           "--accelerate-config", str(config)] + (["--report-to", "tensorboard"] if HAS_TENSORBOARD else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_a_ddp_config_trains_two_processes(tmp_path):
    res = _train(tmp_path, "MULTI_CPU")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # one log, from the main process
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    if HAS_TENSORBOARD:  # --report-to went through the relaunch too
        assert any((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_an_fsdp_config_on_cpu_is_refused_with_the_reason(tmp_path):
    res = _train(tmp_path, "FSDP", FSDP)
    assert res.returncode != 0
    # On CPU the processes form a gloo group (MULTI_CPU, multissl asks for it), and Accelerate 1.15 gives FSDP only on
    # GPUs/XPUs/NPUs: the run is refused before any step, naming both.
    assert "asks for FSDP" in res.stderr and "only on GPUs" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
