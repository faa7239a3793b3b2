"""The one Accelerate loop (train), recipes, schedules, checkpoints and metrics."""
from multissl.training.config import Recipe, RecipeError, TrainArgs, load_recipe, recipe_from_dict
from multissl.training.loop import TrainingDivergedError, TrainResult, build_config, build_model, train

__all__ = ["Recipe", "RecipeError", "TrainArgs", "TrainResult", "TrainingDivergedError", "build_config", "build_model",
           "load_recipe", "recipe_from_dict", "train"]
