"""Fixtures of the fault-injection suite: the CLI in-process, and a finished run trained once and copied per test."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability import Result, recipe, run_cli, snapshot, write_recipe


@pytest.fixture(autouse=True)
def _no_debug_tracebacks(monkeypatch):
    """MULTISSL_DEBUG=1 in a developer's shell would turn every one-line error into a traceback."""
    monkeypatch.delenv("MULTISSL_DEBUG", raising=False)


@pytest.fixture
def cli(capsys):
    """cli("train", recipe, "--output-dir", out, ...) -> Result(code, out, err) of `multissl ...` run in-process."""
    def run(*argv: str) -> Result:
        return run_cli(capsys, *argv)

    return run


@dataclass
class FinishedRun:
    """A copy of a finished tiny SimCLR run (final/, checkpoints/step_3, metrics, plot, recipe.yaml) and its recipe."""

    dir: Path
    recipe: Path
    before: dict  # snapshot(dir) right after the copy


@pytest.fixture(scope="session")
def finished_run_template(tmp_path_factory) -> tuple[Path, dict]:
    """Train the tiny recipe (3 steps, a checkpoint at step 3) once per session; tests get copies."""
    from multissl.cli import main

    base = tmp_path_factory.mktemp("finished")
    data = recipe(**{"train.save_every": 3})
    path = write_recipe(base / "recipe.yaml", data)
    assert main(["train", str(path), "--output-dir", str(base / "run")]) == 0
    return base / "run", data


@pytest.fixture
def finished_run(tmp_path, finished_run_template) -> FinishedRun:
    """A private copy of the finished run (mtimes kept) at tmp_path/run, with its recipe at tmp_path/recipe.yaml."""
    template, data = finished_run_template
    out = tmp_path / "run"
    shutil.copytree(template, out, copy_function=shutil.copy2)
    return FinishedRun(out, write_recipe(tmp_path / "recipe.yaml", data), snapshot(out))
