"""Image–caption batches for dual encoders (CLIP): pixel tensors plus tokenised captions.

Handling of awkward rows (documented in docs/clip.md):
* images of any size and PIL mode (L, P, RGBA, CMYK, ...) become RGB and are resized to S x S;
  transparent pixels are composited over white first, exactly as transformers' image processors
  do, so a model sees the same pixels in training and in the zero-shot pipeline;
* a caption may be a string or a non-empty list of strings (several captions per image, as in
  COCO): training picks one at random with the collator's generator, evaluation takes the first;
* a missing, non-string or blank caption is a ValueError naming the row and the column;
* captions longer than `max_length` tokens (special tokens included) are truncated from the
  right to `max_length`; the tokenizer keeps the final [SEP], so the sentence end is marked.
"""
from __future__ import annotations

import math

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from multissl.modalities.image.transforms import MEAN, STD, to_rgb
from multissl.modalities.text.sentences import load_tokenizer


def flatten_alpha(image):
    """PIL images with transparency -> RGB over a white background (transformers' convert_to_rgb); others unchanged."""
    if not isinstance(image, Image.Image):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image


def random_square_crop(image: torch.Tensor, scale: tuple[float, float], generator: torch.Generator | None) -> torch.Tensor:
    """A random square crop covering a fraction in `scale` of the shorter side squared: [C, H, W] -> [C, s, s]."""
    _, h, w = image.shape
    lo, hi = scale
    frac = lo + (hi - lo) * float(torch.rand((), generator=generator))
    side = max(1, min(h, w, round(math.sqrt(frac) * min(h, w))))
    top = int(torch.randint(0, h - side + 1, (), generator=generator))
    left = int(torch.randint(0, w - side + 1, (), generator=generator))
    return image[:, top : top + side, left : left + side]


def pick_caption(row: dict, index: int, column: str, train: bool, generator: torch.Generator | None) -> str:
    """The row's caption (one of several at random when training); ValueError naming row/column when unusable."""
    if column not in row or row[column] is None:
        raise ValueError(f"row {index}: missing caption column {column!r} (columns: {sorted(row)}); "
                         f"every image-text row needs a caption string")
    value = row[column]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"row {index}: column {column!r} is an empty list of captions")
        pick = int(torch.randint(0, len(value), (), generator=generator)) if train else 0
        value = value[pick]
    if not isinstance(value, str):
        raise ValueError(f"row {index}: column {column!r} must be a string or a list of strings, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"row {index}: column {column!r} is blank; drop rows without captions before training")
    return value


class ImageCaptionCollator:
    """Rows {image, caption} -> {"pixel_values" [B, 3, S, S], "input_ids" [B, T], "attention_mask" [B, T]}.

    train=True: random square crops (area fraction in crop_scale; None = no crop) before the resize.
    include_text=False: images only ({"pixel_values"}), for image feature extraction.
    """

    def __init__(self, tokenizer_path: str | None, image_size: int, max_length: int, train: bool = True,
                 crop_scale: tuple[float, float] | None = (0.8, 1.0), image_column: str = "image",
                 caption_column: str = "caption", include_text: bool = True):
        if image_size < 1 or max_length < 2:
            raise ValueError(f"image_size must be >= 1 and max_length >= 2; got {image_size} and {max_length}")
        if crop_scale is not None and not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1; got {crop_scale}")
        if include_text and not tokenizer_path:
            raise ValueError("a tokenizer_path is needed to tokenise captions")
        self.tokenizer_path, self.image_size, self.max_length = tokenizer_path, image_size, max_length
        self.train, self.crop_scale, self.include_text = train, crop_scale, include_text
        self.image_column, self.caption_column = image_column, caption_column
        self.finish = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def pixels(self, images: list, generator: torch.Generator | None = None) -> torch.Tensor:
        """PIL images (any size/mode) -> normalised [B, 3, S, S]."""
        out = []
        for i, im in enumerate(images):
            x = TF.pil_to_tensor(to_rgb(flatten_alpha(im), field=f"row {i}: {self.image_column!r}"))  # [3, H, W] uint8
            if self.train and self.crop_scale is not None:
                x = random_square_crop(x, tuple(self.crop_scale), generator)
            x = TF.resize(x, [self.image_size, self.image_size], antialias=True)
            out.append(self.finish(x))
        return torch.stack(out)

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Captions -> {"input_ids", "attention_mask"} [B, T], T <= max_length (longer captions are truncated)."""
        enc = load_tokenizer(self.tokenizer_path)(captions, padding=True, truncation=True, max_length=self.max_length,
                                                  return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        batch = {"pixel_values": self.pixels([r.get(self.image_column) for r in rows], generator)}
        if self.include_text:
            captions = [pick_caption(r, i, self.caption_column, self.train, generator) for i, r in enumerate(rows)]
            batch.update(self.tokenize(captions))
        return batch
