"""Ctrl-C before the training loop has installed its handlers (while imports, model or data are being prepared): exit
130 and one line that says the run was stopped, with nothing created. In-process: the test presses Ctrl-C for the user
(SIGINT to this process) at a chosen moment of `multissl train`. The signals sent to a training subprocess are in
test_process_faults.py."""
import os
import signal

import pytest

from multissl.training import run_dir
from tests.reliability import one_line_error, recipe, write_recipe


def test_ctrl_c_while_the_run_starts_is_one_line_saying_so(cli, tmp_path, monkeypatch):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this test process")
    real = run_dir.check_writable

    def press_ctrl_c(out, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt at the next bytecode: here
        return real(out, *args, **kwargs)

    monkeypatch.setattr(run_dir, "check_writable", press_ctrl_c)
    out = tmp_path / "run"
    result = cli("train", write_recipe(tmp_path / "r.yaml", recipe()), "--output-dir", out)
    try:
        line = one_line_error(result, "train", code=130, kind="interrupted")
        assert line.split(": interrupted: ", 1)[1].strip(), f"the line says nothing: {line!r}"
    finally:
        assert not out.exists(), "nothing is created when Ctrl-C comes before the run folder is locked"
