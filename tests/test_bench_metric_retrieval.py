"""benchmarks/bench_metric_retrieval.py: its pure parts (run naming, --set parsing, chance level, the table), every
row's settings are a valid recipe, and the commands docs/results/metric.md and the docstring show parse."""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results" / "metric.md"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_metric_retrieval", ROOT / "benchmarks" / "bench_metric_retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _argv(command: str) -> list[str]:
    """`OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval.py ARGS` -> ARGS."""
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    return words[words.index("benchmarks/bench_metric_retrieval.py") + 1:]


def test_run_tag_names_the_settings_and_their_order(bench):
    a, b = ["model.loss=cosface", "model.margin=0.2"], ["model.loss=cosface", "model.margin=0.35"]
    assert bench.run_tag(a) == bench.run_tag(list(a)) and re.fullmatch(r"[0-9a-f]{8}", bench.run_tag(a))
    assert bench.run_tag(a) != bench.run_tag(b) and bench.run_tag(a) != bench.run_tag(a[::-1])


def test_parse_sets_groups_by_row_and_names_bad_items(bench):
    got = bench.parse_sets(["cosface:model.margin=0.2", "supcon:model.loss_temperature=0.2", "cosface:model.scale=32"])
    assert got == {"cosface": ["model.margin=0.2", "model.scale=32"], "supcon": ["model.loss_temperature=0.2"]}
    with pytest.raises(ValueError, match="unknown row 'cosfase'"):
        bench.parse_sets(["cosfase:model.margin=0.2"])
    with pytest.raises(ValueError, match="ROW:KEY=VALUE"):
        bench.parse_sets(["model.margin=0.2"])


def test_chance_recall_at_1_is_the_mean_share_of_same_class_others(bench):
    labels = [0] * 3 + [1] * 5 + [2] * 2
    naive = sum(sum(1 for j, b in enumerate(labels) if j != i and b == a) / (len(labels) - 1)
                for i, a in enumerate(labels)) / len(labels)
    assert bench.chance_recall_at_1([3, 5, 2]) == pytest.approx(naive)
    assert bench.chance_recall_at_1([60] * 10) == pytest.approx(59 / 599)
    with pytest.raises(ValueError, match="counts"):
        bench.chance_recall_at_1([1])


def test_summarise_orders_rows_and_gives_mean_and_std_over_seeds(bench):
    def r(row, seed, r1, steps=400, batch=64):
        return {"row": row, "seed": seed, "recall_at_1": r1, "recall_at_8": 1.0, "map_at_r": r1 / 2,
                "train_s": 60.0, "steps": steps, "batch": batch}

    results = [r("supcon", 1, 0.7), r("arcface", 0, 0.9), r("supcon", 0, 0.5), r(bench.RANDOM, 0, 0.2)]
    md, plot = bench.summarise(results, [bench.RANDOM, "arcface", "cosface", "supcon"])
    lines = md.splitlines()
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| random init", "| arcface", "| supcon"]  # cosface: no runs
    assert "| supcon | 0.600 ± 0.141 | 1.000 ± 0.000 | 0.300 ± 0.071 |" in md  # std with ddof=1 over seeds 0, 1
    assert "400 × 64" in lines[3] and "400 × 64" not in lines[2]  # no budget for the untrained row
    assert plot["supcon"]["R@1"] == [0.5, 0.7] and set(plot) == {"random init", "arcface", "supcon"}


def test_near_random_flags_rows_no_better_than_random_init(bench):
    rows = [{"row": bench.RANDOM, "recall_at_1": v} for v in (0.18, 0.22)]
    rows += [{"row": "triplet", "recall_at_1": v} for v in (0.20, 0.26)] + [{"row": "arcface", "recall_at_1": 0.26}]
    assert bench.near_random(rows) == [bench.ROWS["triplet"][0]]  # 0.23 <= 0.20 + 0.05 < 0.26
    assert bench.near_random(rows, within=0.07) == sorted(["arcface", bench.ROWS["triplet"][0]])
    assert bench.near_random(rows[2:]) == []  # no random-init row: nothing to compare with


def test_validation_table_shows_each_setting_and_marks_the_reported_one(bench):
    tried = [*bench.ROWS["triplet"][2], "train.learning_rate=5e-4"]
    rows = [{"row": "triplet", "tag": bench.run_tag(tried), "settings": tried, "overrides": [], "seed": 0,
             "recall_at_1": 0.1, "recall_at_8": 0.5, "map_at_r": 0.02},
            {"row": "triplet", "tag": bench.default_tags()["triplet"], "settings": bench.ROWS["triplet"][2],
             "overrides": [], "seed": 0, "recall_at_1": 0.2, "recall_at_8": 0.6, "map_at_r": 0.03}]
    lines = bench.validation_table(rows).splitlines()[2:]
    assert len(lines) == 2
    for line in lines:
        assert (" | yes | " in line) == ("learning_rate" not in line) and "| triplet | `model.loss=triplet" in line


def test_every_row_is_a_valid_recipe_and_model_config(bench):
    from multissl.registry import get_method
    from multissl.training import load_recipe
    from multissl.training.loop import build_config

    for row, (_, stem, sets) in bench.ROWS.items():
        recipe = load_recipe(ROOT / "recipes" / f"{stem}.yaml", [*sets, "train.seed=1", "eval={}"])
        config = build_config(get_method(recipe.method), recipe.model, recipe.source)
        assert recipe.train.max_steps == 400 and recipe.train.batch_size * recipe.train.gradient_accumulation_steps == 64, row
        if recipe.method == "metric":
            assert config.train_classes == list(bench.TRAIN_CLASSES) and config.loss in row + "center", row


def test_the_documented_commands_parse(bench):
    commands = re.findall(r"OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval\.py(?:[^\n`\\]|\\\n)*", bench.__doc__)
    assert len(commands) == 2 and "--set cosface:model.margin=0.2" in commands[1]  # the continued line is whole
    if DOC.exists():  # written by the benchmark itself
        commands += re.findall(r"`(OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval\.py[^`]*)`", DOC.read_text())
        assert len(commands) >= 3
    for command in commands:
        args = bench.build_parser().parse_args(_argv(command))
        bench.parse_sets(args.set)
        assert args.seeds and set(args.rows) <= {bench.RANDOM, *bench.ROWS}
