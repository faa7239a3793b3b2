"""One style: `ruff check` (rules in pyproject.toml) passes on the package, the tests and the benchmarks."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "multissl", "tests", "benchmarks"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"ruff check found problems (run `ruff check --fix` first):\n{res.stdout[-4000:]}{res.stderr[-1000:]}"
