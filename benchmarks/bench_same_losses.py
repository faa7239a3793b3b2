"""Same seed, same losses: train every method a few steps at this checkout and at another one, and compare.

A refactor that must not change behaviour (the method contract, the loop) is checked with it:

    git worktree add /tmp/multissl_before <rev>
    python benchmarks/bench_same_losses.py --other /tmp/multissl_before

Each side runs in its own interpreter with its checkout first on sys.path, on the method's tiny config and
default dataset (6 steps, batch 16, seed 3). It prints, per method, whether the loss curves are identical.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r'''
import inspect, json, sys, tempfile
import torch
torch.set_num_threads(1)
from multissl.registry import get_method
from multissl.training import recipe_from_dict, train
out = {}
for name in sys.argv[1:]:
    spec = get_method(name)
    tiny = spec.tiny_config() if hasattr(spec, "tiny_config") else spec.model_class.tiny_config()  # older checkouts: on the spec
    params = inspect.signature(spec.config_class.__init__).parameters
    model = {k: v for k, v in tiny.to_diff_dict().items() if k in params}
    recipe = {"method": name, "model": model,
              "train": {"max_steps": 6, "batch_size": 16, "log_every": 1, "progress": False, "seed": 3}}
    with tempfile.TemporaryDirectory() as d:
        out[name] = train(recipe_from_dict(recipe), d + "/run").losses
print("LOSSES", json.dumps(out))
'''


def losses(checkout: Path, methods: list[str]) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, *methods], capture_output=True, text=True, env=env, cwd="/")
    line = next((x for x in res.stdout.splitlines() if x.startswith("LOSSES ")), None)
    if line is None:
        raise SystemExit(f"{checkout}: the run failed:\n{res.stderr[-3000:]}")
    return json.loads(line[len("LOSSES "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other", required=True, help="another checkout of multissl (e.g. a git worktree of the previous commit)")
    p.add_argument("--methods", nargs="*", default=None, help="default: every method of this checkout")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from multissl.registry import METHODS

    methods = args.methods or sorted(METHODS)
    ours, theirs = losses(ROOT, methods), losses(Path(args.other).resolve(), methods)
    print(f"{'method':<16} {'identical':<10} {'last loss here':>15} {'last loss other':>16}")
    for m in methods:
        print(f"{m:<16} {str(ours[m] == theirs[m]):<10} {ours[m][-1]:>15.6f} {theirs[m][-1]:>16.6f}")


if __name__ == "__main__":
    main()
