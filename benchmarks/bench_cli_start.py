"""CLI start-up time: `multissl --help` and `multissl list` against `python -c "import yaml"`, alternated, medians.

    python benchmarks/bench_cli_start.py --repeats 15

Each command is a fresh interpreter (what a user waits for). The ratio is the point: both sides pay the
same interpreter start on the same machine in the same run. Goal: `multissl --help` <= 3x the yaml import.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import yaml'": [sys.executable, "-c", "import yaml"],
    "multissl --help": [sys.executable, "-m", "multissl.cli", "--help"],
    "multissl list": [sys.executable, "-m", "multissl.cli", "list"],
    "multissl train --help": [sys.executable, "-m", "multissl.cli", "train", "--help"],
}


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache once
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # alternated, so load changes hit every command alike
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c 'import yaml'"])
    print(f"{'command':<28} {'median ms':>10} {'ratio':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<28} {med * 1e3:>10.1f} {med / base:>6.2f}x")


if __name__ == "__main__":
    main()
