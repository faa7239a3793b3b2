"""DINO (Caron et al. 2021): student/EMA-teacher self-distillation with multi-crop, centring and sharpening."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.batched_augment import BatchedMultiCrop
from multissl.modalities.image.multicrop import MultiCropAugment, MultiCropCollator
from multissl.modalities.image.views import EvalImageCollator, split_backend
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.ema import ema_update, make_teacher
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, set_backbone_fields
from multissl.objectives.distillation import dino_loss, update_center
from multissl.schedules import cosine_ramp, linear_warmup_value


class DINOConfig(MethodConfig):
    """Head sizes, temperatures (student; teacher warm-up start -> end), centre and teacher momenta, multi-crop."""

    model_type = "multissl_dino"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 head_hidden_dim: int = 256, bottleneck_dim: int = 64, out_dim: int = 512,
                 student_temperature: float = 0.1, teacher_temperature_start: float = 0.04, teacher_temperature: float = 0.07,
                 teacher_temperature_warmup_steps: int = 100, center_momentum: float = 0.9, base_momentum: float = 0.996,
                 gather_distributed: bool = True, multicrop: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.head_hidden_dim, self.bottleneck_dim, self.out_dim = head_hidden_dim, bottleneck_dim, out_dim
        self.student_temperature, self.teacher_temperature_start, self.teacher_temperature = student_temperature, teacher_temperature_start, teacher_temperature
        self.teacher_temperature_warmup_steps, self.center_momentum = teacher_temperature_warmup_steps, center_momentum
        self.base_momentum, self.gather_distributed = base_momentum, gather_distributed
        allowed = {f.name for f in fields(MultiCropAugment)} - {"global_size"} | {"backend"}
        unknown = set(multicrop or {}) - allowed
        if unknown:
            raise ValueError(f"multicrop: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        self.multicrop = dict(multicrop or {})
        super().__init__(**kwargs)


@dataclass
class DINOOutput(ModelOutput):
    """loss: DINO cross-entropy; teacher_entropy: mean entropy of the sharpened teacher (0 = collapse to one-hot)."""

    loss: torch.Tensor | None = None
    teacher_entropy: torch.Tensor | None = None


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> weight-normalised linear layer with unit norms (DINO's fixed g = 1)."""

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        self.last = nn.Parameter(torch.randn(out_dim, bottleneck_dim) * bottleneck_dim ** -0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Features [N, D] -> logits [N, K]."""
        x = F.normalize(self.mlp(h), dim=-1)
        return F.linear(x, F.normalize(self.last, dim=-1))


def make_dino_collator(config: DINOConfig, train: bool = True):
    """2 global + N local crops for training; one resized image for embed()."""
    if not train:
        return EvalImageCollator(config.image_size)
    backend, multicrop = split_backend(config.multicrop, "multicrop")
    augment = MultiCropAugment(global_size=config.image_size, **multicrop)
    batched = BatchedMultiCrop.from_policy(augment) if backend == "batched" else None
    return MultiCropCollator(augment, backend=backend, batched=batched)


def tiny_dino_config() -> DINOConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return DINOConfig(backbone_config=TINY_RESNET, image_size=16, head_hidden_dim=16, bottleneck_dim=8, out_dim=32,
                      multicrop={"local_size": 8, "num_local": 2})


class DINOModel(MethodModel):
    """Student (backbone + DINO head) and EMA teacher; forward(global_views [B, 2, 3, G, G], local_views [B, N, 3, L, L])."""

    config_class = DINOConfig
    tiny_config = staticmethod(tiny_dino_config)
    make_collator = staticmethod(make_dino_collator)
    base_model_prefix = "dino"
    main_input_name = "global_views"

    def __init__(self, config: DINOConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.head = DINOHead(dim, config.head_hidden_dim, config.bottleneck_dim, config.out_dim)
        self.teacher_backbone = make_teacher(self.backbone)
        self.teacher_head = make_teacher(self.head)
        self.register_buffer("center", torch.zeros(config.out_dim))
        # Optimizer steps done, as a saved buffer: the teacher temperature is a function of it, so a run resumed at
        # step S (accelerate load_state) or a reloaded model uses the scheduled value, not the warm-up start.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.post_init()
        self._sync_teacher()

    @property
    def teacher_temperature_now(self) -> float:
        """Teacher temperature for the next forward: linear warm-up start -> end as a function of steps_done."""
        c = self.config
        return linear_warmup_value(int(self.steps_done), c.teacher_temperature_warmup_steps, c.teacher_temperature_start,
                                   c.teacher_temperature)

    @torch.no_grad()
    def _sync_teacher(self) -> None:
        """The teacher starts as an exact copy of the student."""
        ema_update(self.teacher_backbone, self.backbone, 0.0, copy_buffers=True)
        ema_update(self.teacher_head, self.head, 0.0)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Student backbone features [B, D]."""
        return vision_features(self.backbone, pixel_values)

    def _device_crops(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """multicrop.backend: device: DINO's crops of uint8 [B, 3, G, G] made on the model's device (cached policy)."""
        if getattr(self, "_crops", None) is None:
            _, multicrop = split_backend(self.config.multicrop, "multicrop")
            self._crops = BatchedMultiCrop.from_policy(MultiCropAugment(global_size=self.config.image_size, **multicrop))
        return self._crops(images)

    def forward(self, global_views: torch.Tensor | None = None, local_views: torch.Tensor | None = None,
                images: torch.Tensor | None = None, **_: object) -> DINOOutput:
        if images is not None:  # views made here, on the device; the loop seeded its generator for this step
            crops = self._device_crops(images)
            global_views, local_views = crops["global_views"], crops.get("local_views")
        if global_views is None:
            raise ValueError("expected global_views [B, 2, C, G, G] (crops made by the collator) or images uint8 "
                             "[B, 3, G, G] (multicrop.backend: device)")
        if global_views.dim() != 5 or global_views.shape[1] != 2:
            raise ValueError(f"global_views must be [B, 2, C, G, G]; got {tuple(global_views.shape)}")
        b = global_views.shape[0]
        glob = global_views.transpose(0, 1).flatten(0, 1)  # view-major: [2B, C, G, G]
        student = [self.head(self.embed(glob))]  # one pass per crop size
        if local_views is not None and local_views.shape[1] > 0:
            student.append(self.head(self.embed(local_views.transpose(0, 1).flatten(0, 1))))  # [N*B, K]
        student_out = torch.cat(student).view(-1, b, self.config.out_dim)  # [2 + N, B, K]
        with torch.no_grad():
            teacher_out = self.teacher_head(vision_features(self.teacher_backbone, glob)).view(2, b, -1)  # [2, B, K]
        t = self.teacher_temperature_now
        loss = dino_loss(student_out, teacher_out, self.center, self.config.student_temperature, t)
        with torch.no_grad():
            probs = F.softmax((teacher_out - self.center) / t, dim=-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
            if self.training:  # after the loss: the centre used above is this step's, as in DINO
                update_center(self.center, teacher_out, self.config.center_momentum, self.config.gather_distributed)
        return DINOOutput(loss=loss, teacher_entropy=entropy)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """After each optimizer step: teacher EMA (cosine base -> 1) and the teacher temperature warm-up."""
        m = cosine_ramp(step, max_steps, self.config.base_momentum, 1.0)
        ema_update(self.teacher_backbone, self.backbone, m)
        ema_update(self.teacher_head, self.head, m)
        self.steps_done.fill_(step + 1)  # teacher_temperature_now follows from it

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone (student)."""
        return self.backbone
