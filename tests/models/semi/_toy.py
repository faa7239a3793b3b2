"""The semi-supervised tests' toy dataset: 4 colour classes, learnable in a few steps (shared, so each test file
registers the same data under its own name)."""
import datasets
import numpy as np
from PIL import Image


def toy_dataset(split: str = "train"):
    """4 classes x 24 rows of 8x8 RGB images: a class colour plus noise (learnable in a few steps)."""
    rng = np.random.default_rng(0)
    colours = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30]])
    labels = [i % 4 for i in range(96)]
    images = [Image.fromarray(np.clip(colours[y] + rng.normal(0, 40, (8, 8, 3)), 0, 255).astype(np.uint8)) for y in labels]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=4)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
