"""benchmarks/bench_vision_glyphs.py: `--set` overrides per method or for all, and the page names its command."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_vision_glyphs import drop_option, glyphs_recipe, method_overrides, page  # noqa: E402


def test_set_items_apply_to_their_method_and_all_items_to_every_method():
    items = ["all:train.max_steps=600", "simclr:model.loss_temperature=0.5", "moco:train.learning_rate=1e-3"]
    assert method_overrides(items, "simclr") == ["train.max_steps=600", "model.loss_temperature=0.5"]
    assert method_overrides(items, "byol") == ["train.max_steps=600"]
    recipe = glyphs_recipe("byol", 1, method_overrides(items, "byol"))
    assert (recipe.train.max_steps, recipe.train.seed) == (600, 1)


@pytest.mark.parametrize("item", ["train.max_steps=2400", "simclr:train.max_steps"])
def test_a_malformed_set_item_is_one_line_naming_it(item):
    with pytest.raises(SystemExit) as exit_:
        method_overrides([item], "simclr")
    assert item in str(exit_.value.code) and "\n" not in str(exit_.value.code)


def test_the_page_names_the_command_that_wrote_it_without_where_it_went():
    argv = ["--methods", "simclr", "--docs", "/tmp/x", "--set", "all:train.max_steps=2400", "--docs=/tmp/y",
            "--name", "vision-2400"]
    kept = drop_option(argv, "--docs")
    assert kept == ["--methods", "simclr", "--set", "all:train.max_steps=2400", "--name", "vision-2400"]
    rows = [{"method": "simclr", "seed": 0, "steps": 2400, "batch_size": 256}]
    text = page("| table |", rows, " ".join(kept), "vision-2400")
    assert "bench_vision_glyphs.py --methods simclr --set all:train.max_steps=2400 --name vision-2400`" in text
    assert "(vision-2400.png)" in text and "2400 steps x 256 images" in text and "the command's `--set` overrides" in text
    plain = page("| table |", rows)
    assert "bench_vision_glyphs.py` (do not edit" in plain and "`--set`" not in plain  # no arguments: the recipes as shipped


def test_an_unknown_method_or_a_malformed_set_stops_before_any_data_is_read():
    import subprocess

    for args, expected in ((["--methods", "simclr", "nope"], "--methods: unknown nope"),
                           (["--set", "train.max_steps=5"], "expected METHOD:KEY=VALUE")):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_vision_glyphs.py"), *args,
                               "--out", "/nonexistent/never-made"], capture_output=True, text=True)
        assert done.returncode != 0 and expected in done.stderr.strip().splitlines()[-1]
        assert not Path("/nonexistent/never-made").exists()
