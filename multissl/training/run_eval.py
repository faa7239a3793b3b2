"""The recipe's `eval:` section: checked against the data before the first step, run on final/ after the last."""
from __future__ import annotations

from pathlib import Path

from multissl.training.config import Recipe


def eval_jobs(recipe: Recipe, dataset_name: str) -> list[tuple[str, str, dict]]:
    """(protocol, dataset, evaluate_model kwargs) for each entry of the recipe's `eval:` section."""
    jobs = []
    for protocol, kwargs in recipe.eval.items():
        kwargs = dict(kwargs or {})
        data = kwargs.pop("dataset", dataset_name)
        if data == dataset_name:  # evaluate on the data the run was trained on, with the same loader arguments
            kwargs.setdefault("dataset_args", dict(recipe.dataset_args))
        jobs.append((protocol, data, kwargs))
    return jobs


def check_eval(recipe: Recipe, dataset_name: str) -> None:
    """Fail before the first step if the `eval:` section cannot run on its data (missing split or label column)."""
    if not recipe.eval:
        return
    from multissl.evaluation.protocols import check_evaluation

    for protocol, data, kwargs in eval_jobs(recipe, dataset_name):
        check_evaluation(data, protocol, **kwargs)


def evaluate_run(recipe: Recipe, final_dir: Path, dataset_name: str) -> dict:
    """End-of-run evaluation declared in the recipe's `eval:` section (k-NN / linear probe)."""
    if not recipe.eval:
        return {}
    from multissl.evaluation import evaluate_model

    return {protocol: evaluate_model(str(final_dir), data, protocol, **kwargs)
            for protocol, data, kwargs in eval_jobs(recipe, dataset_name)}
