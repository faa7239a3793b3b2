"""benchmarks/_report.py: a test-split job into a scratch --out never rewrites the published results page."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import page_wanted  # noqa: E402


def test_the_tables_own_folder_writes_the_page_however_it_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert page_wanted([], "runs/vision_glyphs", "runs/vision_glyphs")
    assert page_wanted(["--out", "./runs/vision_glyphs"], "./runs/vision_glyphs", "runs/vision_glyphs")
    assert page_wanted(["--out", str(tmp_path / "runs/vision_glyphs")], str(tmp_path / "runs/vision_glyphs"),
                       "runs/vision_glyphs")


@pytest.mark.parametrize("argv", [["--methods", "byol", "--seeds", "0", "--out", "runs/vg/byol-s0"],
                                  ["--out=runs/vg/byol-s0", "--named", "x"]])  # --named is not --name
def test_a_one_method_job_into_another_folder_leaves_the_page_alone(argv):
    assert not page_wanted(argv, "runs/vg/byol-s0", "runs/vision_glyphs", ("--docs", "--name"))


@pytest.mark.parametrize("flag", [["--name", "vision-600"], ["--name=vision-600"], ["--docs", "/tmp/d"]])
def test_an_explicit_page_option_writes_it_from_any_folder(flag):
    argv = ["--out", "runs/vision_glyphs_600", *flag]
    assert page_wanted(argv, "runs/vision_glyphs_600", "runs/vision_glyphs", ("--docs", "--name"))
    assert page_wanted(["--docs", "/tmp/d"], "runs/x", "runs/audio_table")  # audio / metric: --docs only
    assert not page_wanted(["--name", "n"], "runs/x", "runs/audio_table")


def test_a_skipped_page_says_so_in_one_line_naming_the_folder_and_the_way_out(capsys):
    assert not page_wanted([], "runs/vg/byol-s0", "runs/vision_glyphs", ("--name", "--docs"))
    line = capsys.readouterr().out.strip()
    assert "runs/vg/byol-s0" in line and "runs/vision_glyphs" in line and "--name or --docs" in line and "\n" not in line
    assert page_wanted([], "runs/vision_glyphs", "runs/vision_glyphs") and capsys.readouterr().out == ""


@pytest.mark.parametrize("script", ["bench_vision_glyphs.py", "bench_audio_table.py", "bench_metric_retrieval.py"])
def test_every_page_writing_table_asks_first(script):
    text = (ROOT / "benchmarks" / script).read_text()
    # the page write sits in the branch after the page_wanted check, never before it
    assert 0 <= text.find("page_wanted(") < text.index("write_text(page(")
