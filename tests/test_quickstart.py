"""docs/quickstart.md, run as written: every ```python block, in order, in one namespace, in a temp folder."""
import re
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "quickstart.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_has_the_four_steps():
    code = "\n".join(_python_blocks())
    for call in ("multissl.train(", "multissl.load(", "multissl.embed(", "knn_accuracy(", "AutoModel.from_pretrained("):
        assert call in code, f"docs/quickstart.md no longer shows {call}"


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    # The page runs from a clone's root: give it the recipe it names, and keep its temp folders in tmp_path.
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    namespace: dict = {"__name__": "quickstart"}
    blocks = _python_blocks()
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        exec(compile(block, f"{PAGE.name}[python block {i + 1}]", "exec"), namespace)  # noqa: S102 - our own doc
    # What the page promises, checked from outside its own asserts.
    out = namespace["out"]
    assert out.parent.parent == tmp_path / "tmp" and (out / "final" / "config.json").is_file()
    assert namespace["message"] == "recipes/simclr_digits.yaml: train.max_steps must be a whole number >= 1; got 0"
    assert not (out.parent / "bad").exists()  # refused before the run folder was touched
    assert namespace["result"].steps == 10
    assert 0.1 < namespace["acc"] <= 1.0
