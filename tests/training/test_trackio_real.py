"""`report_to: [trackio]` against the real trackio package: what lands in its local store, read back through trackio.

Skipped where trackio is not installed (it is not in the dev environment: trackio 0.43 pins pillow<13; the calls
multissl makes are also checked against a stand-in module in test_trackio.py, which always runs).

trackio reads $TRACKIO_DIR once, when it is imported, so the `trackio_dir` fixture imports a fresh copy of trackio
with TRACKIO_DIR pointing into tmp_path (as a user's `TRACKIO_DIR=... multissl train ...` does) and puts the
previously imported one back afterwards. Offline: trackio logs locally unless a Space / server / bucket is named
(none is: those variables are removed), and every socket connection or name lookup is refused and recorded, so
a test fails if anything tried the network (trackio's username lookup, the Hub, a dashboard). What was stored is
read with trackio's public readers: `trackio.Api()` (runs, their config) and its `list metrics` / `get metric --json`
commands (run in this process), not with SQL on its file.
"""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("trackio")

import huggingface_hub.constants  # noqa: E402

import tests.training.toy  # noqa: E402,F401  (registers the test_toy method and dataset)
from multissl.training import train  # noqa: E402
from tests.training.test_trackio import _recipe  # noqa: E402  (the tiny test_toy recipe, 4 steps)

# Variables that send trackio (or the Hub client it uses) somewhere other than the local store.
_REMOTE_VARS = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_WRITE_TOKEN", "TRACKIO_BUCKET_ID",
                "TRACKIO_DATASET_ID", "TRACKIO_WEBHOOK_URL", "SPACE_REPO_NAME", "SPACE_ID", "SYSTEM", "HF_TOKEN",
                "HF_OIDC_RESOURCE")


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every socket connection and name lookup; the Hub client in offline mode."""
    attempts: list[str] = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append(f"{what}{args[1:] if what == 'connect' else args[:2]}")
            raise OSError(f"test_trackio_real: no network ({what})")
        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read when huggingface_hub was imported
    for name in _REMOTE_VARS:
        monkeypatch.delenv(name, raising=False)
    yield attempts
    assert attempts == []


@pytest.fixture
def trackio_dir(tmp_path, monkeypatch, no_network):
    """$TRACKIO_DIR = tmp_path/trackio, with trackio imported afresh so it reads it; the old import is put back."""
    store = tmp_path / "trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(store))
    old = {k: m for k, m in sys.modules.items() if k == "trackio" or k.startswith("trackio.")}
    for name in old:
        del sys.modules[name]
    try:
        import trackio

        assert Path(trackio.utils.TRACKIO_DIR) == store
        yield store
    finally:
        for name in [k for k in sys.modules if k == "trackio" or k.startswith("trackio.")]:
            del sys.modules[name]
        sys.modules.update(old)


def _trackio_cli(capsys, monkeypatch, *args: str) -> dict | list:
    """`trackio <args> --json`, run in this process (so against this test's store); its parsed output."""
    import trackio.cli

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["trackio", *args, "--json"])
    trackio.cli.main()
    return json.loads(capsys.readouterr().out)


def _stored(capsys, monkeypatch, project: str, run: str) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} of `run`, read back with trackio's CLI (`list metrics`, `get metric`)."""
    metrics = _trackio_cli(capsys, monkeypatch, "list", "metrics", "--project", project, "--run", run)["metrics"]
    out = {}
    for metric in metrics:
        got = _trackio_cli(capsys, monkeypatch, "get", "metric", "--project", project, "--run", run, "--metric", metric)
        out[metric] = [(v["step"], v["value"]) for v in got["values"]]
    return out


def _numeric_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in rows]


def test_trackio_store_holds_every_metrics_row(trackio_dir, tmp_path, capsys, monkeypatch):
    train(_recipe(report_to=["trackio"]), tmp_path / "run")
    import trackio

    runs = list(trackio.Api().runs("test_toy"))  # project = the method
    assert [r.name for r in runs] == ["run"]  # run = the run folder's name
    assert runs[0].config["train.max_steps"] == 4 and runs[0].config["method"] == "test_toy"

    rows, stored = _numeric_rows(tmp_path / "run"), _stored(capsys, monkeypatch, "test_toy", "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert stored.keys() == {k for r in rows for k in r} - {"step"} >= {"loss", "lr", "samples_per_s"}
    for key, values in stored.items():
        assert values == [(r["step"], r[key]) for r in rows if key in r]
    assert sorted(p.name for p in trackio_dir.glob("*.db")) == ["test_toy.db"]


def test_resume_continues_the_same_trackio_run(trackio_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    train(_recipe(report_to=["trackio"], stop_after_steps=2), out)  # time-boxed: a checkpoint at step 2
    import trackio

    (first,) = trackio.Api().runs("test_toy")
    train(_recipe(report_to=["trackio"]), out, resume=True)
    (again,) = trackio.Api().runs("test_toy")  # one run, not a second one under a generated name
    assert (again.name, again.id) == ("run", first.id)

    rows, stored = _numeric_rows(out), _stored(capsys, monkeypatch, "test_toy", "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [step for step, _ in stored["loss"]] == [1, 2, 3, 4]
    for key, values in stored.items():
        assert values == [(r["step"], r[key]) for r in rows if key in r]
