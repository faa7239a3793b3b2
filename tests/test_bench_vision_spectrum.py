"""benchmarks/bench_vision_spectrum.py: its columns on features whose content is known, and its refusal without runs."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_vision_spectrum import COLUMNS, measure  # noqa: E402


def _split(n: int, seed: int, polarity_only: bool) -> tuple[tuple[torch.Tensor, None], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    dark, texture = rng.random(n) < 0.5, rng.integers(0, 3, n)
    x = rng.normal(size=(n, 16)) * (0.01 if polarity_only else 1.0)
    x[:, 0] += 5.0 * dark  # one feature: the polarity
    return (torch.tensor(x, dtype=torch.float32), None), {"letter_dark": dark, "texture": texture}


def test_columns_on_features_that_hold_only_the_polarity_or_noise():
    for polarity_only in (True, False):
        (tr, nu_tr), (va, nu_va) = _split(400, 0, polarity_only), _split(300, 1, polarity_only)
        m = measure({"train": tr, "validation": va}, {"train": nu_tr, "validation": nu_va})
        assert list(m) == COLUMNS and m["polarity probe"] > 0.98  # 5 noise std apart: all but ~1% separable
        assert m["texture probe"] < 0.5  # texture is not in the features: about chance (1/3)
        if polarity_only:
            assert m["polarity share"] > 0.99 and m["top-PC share"] > 0.99 and m["effective rank"] < 3
        else:  # the polarity is one direction among 16 of noise: it keeps the largest share, far from all of it
            assert 0.2 < m["polarity share"] < 0.7 and m["effective rank"] > 10


def test_refuses_clearly_without_finished_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_vision_spectrum.py"), "--runs", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and f"no finished runs for seeds [0, 1, 2] in {tmp_path}" in out.stderr


def test_the_page_names_its_command():
    assert "python benchmarks/bench_vision_spectrum.py`" in (ROOT / "docs" / "results" / "vision-spectrum.md").read_text()
