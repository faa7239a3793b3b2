"""Jigsaw puzzles (Noroozi & Favaro 2016): 3x3 tiles with gaps and jitter, shared tile encoder, classify the permutation."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.jigsaw import maximal_hamming_permutations, shuffle_tiles
from multissl.modalities.image.patches import check_grid, grid_tiles
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields


class JigsawConfig(MethodConfig):
    """Grid (3 -> 9 tiles), gap (min blank pixels between neighbouring tiles), jitter, permutation set size/seed, head width.

    A tile is (image_size // grid) - 2 * gap pixels: the room a jitter of `gap` needs while keeping tiles >= gap apart.
    normalize_tiles standardises every training tile on its own (as Noroozi & Favaro do), so low-level statistics
    such as a tile's brightness cannot reveal its position.
    """

    model_type = "multissl_jigsaw"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 48,
                 grid: int = 3, gap: int = 2, jitter: bool = True, num_permutations: int = 100,
                 permutation_seed: int = 0, tile_hidden_dim: int = 64, head_hidden_dim: int = 256,
                 crop_scale: list[float] | None = (0.7, 1.0), normalize_tiles: bool = True, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.grid, self.gap, self.jitter, self.normalize_tiles = grid, gap, jitter, normalize_tiles
        self.num_permutations, self.permutation_seed = num_permutations, permutation_seed
        self.tile_hidden_dim, self.head_hidden_dim = tile_hidden_dim, head_hidden_dim
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)

    @property
    def tile_size(self) -> int:
        """Side of one tile in pixels, cell - 2 * gap (raises when the image is too small for the grid)."""
        return check_grid(self.image_size, self.grid, self.gap)


@dataclass
class JigsawOutput(ModelOutput):
    """loss: cross-entropy over the permutation set; accuracy: puzzles solved."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class JigsawCollator:
    """Train batch: {"tiles": [B, grid², 3, t, t] shuffled, "permutation_labels": [B]}."""

    def __init__(self, config: JigsawConfig):
        config.tile_size  # noqa: B018 - validate the grid before any data is read
        self.config = config
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)
        self.permutations = maximal_hamming_permutations(config.num_permutations, config.grid ** 2,
                                                         config.permutation_seed)  # [P, grid²]

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        c = self.config
        tiles = grid_tiles(self.batch(rows), c.grid, c.gap, c.jitter, generator=generator)  # [B, n, 3, t, t]
        if c.normalize_tiles:
            # Noroozi & Favaro normalise every tile on its own: a tile's brightness and contrast (e.g. how much
            # ink it holds) would otherwise give its position away without any shape being understood.
            mean = tiles.mean(dim=(2, 3, 4), keepdim=True)
            std = tiles.std(dim=(2, 3, 4), keepdim=True)
            tiles = (tiles - mean) / (std + 0.05)  # the floor keeps near-empty tiles from blowing up noise
        shuffled, labels = shuffle_tiles(tiles, self.permutations, generator=generator)
        return {"tiles": shuffled, "permutation_labels": labels}


def make_jigsaw_collator(config: JigsawConfig, train: bool = True):
    """Shuffled tile puzzles for training; plain resized images for embed()."""
    return JigsawCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_jigsaw_config() -> JigsawConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return JigsawConfig(backbone_config=TINY_RESNET, image_size=18, gap=1, num_permutations=8,
                        tile_hidden_dim=8, head_hidden_dim=16)


class JigsawModel(MethodModel):
    """Shared-weight tile encoder (backbone + per-tile fc) -> concat -> MLP -> permutation logits."""

    config_class = JigsawConfig
    tiny_config = staticmethod(tiny_jigsaw_config)
    make_collator = staticmethod(make_jigsaw_collator)
    base_model_prefix = "jigsaw"
    main_input_name = "tiles"

    def __init__(self, config: JigsawConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config, probe_size=config.tile_size)
        n = config.grid ** 2
        self.tile_fc = nn.Sequential(nn.Linear(dim, config.tile_hidden_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(n * config.tile_hidden_dim, config.head_hidden_dim), nn.ReLU(inplace=True),
                                        nn.Linear(config.head_hidden_dim, config.num_permutations))
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] of whole images [B, 3, S, S]."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, tiles: torch.Tensor, permutation_labels: torch.Tensor, **_: object) -> JigsawOutput:
        n = self.config.grid ** 2
        check_pixels(tiles, 5, "tiles", f"[B, {n}, C, t, t] (the shuffled tiles)")
        b = tiles.shape[0]
        h = self.tile_fc(vision_features(self.backbone, tiles.flatten(0, 1)))  # shared weights: [B*n, H]
        logits = self.classifier(h.view(b, -1))  # tiles concatenated in puzzle order: [B, P]
        loss = F.cross_entropy(logits, permutation_labels)
        acc = (logits.argmax(-1) == permutation_labels).float().mean().detach()
        return JigsawOutput(loss=loss, accuracy=acc, logits=logits)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
