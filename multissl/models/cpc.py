"""CPC (van den Oord et al., 2018) on raw 16 kHz waveforms: strided conv encoder g_enc, autoregressive g_ar, K-step InfoNCE.

z_t = g_enc(x) is one frame per 10 ms (kernels 10,8,4,4,4 / strides 5,4,2,2,2 = hop 160);
c_t = g_ar(z_<=t) (GRU by default; LSTM or a small causal transformer); W_k c_t predicts z_{t+k}.
`CPCEncoder` (g_enc + g_ar) is our own PreTrainedModel: it loads with `transformers.AutoModel` after
`multissl.register_auto_classes()`. `multissl export` writes g_enc as a standard transformers HubertModel whose
conv feature encoder is g_enc exactly (models/cpc_export.py, docs/exports.md); g_ar stays in the multissl folder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, make_dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from multissl.modalities.audio.channel_augment import TARGET_VIEWS, ChannelAugment, ChannelViewsCollator
from multissl.modalities.audio.collators import AudioCollator
from multissl.modalities.audio.crops import conv_output_length, frame_mask, receptive_field
from multissl.models.base import MethodConfig, MethodModel, register_auto
from multissl.objectives.cpc import NEGATIVE_MODES, cpc_loss

NORMS = ("layer", "batch", "none")
CONTEXTS = ("gru", "lstm", "transformer")
EMBED_LAYERS = ("context", "encoder", "both")
# CPCOutput declares one accuracy_step{k} field per step up to this K (the paper uses 12; 64 frames = 640 ms ahead)
MAX_PREDICTION_STEPS = 64


class CPCEncoderConfig(PretrainedConfig):
    """g_enc + g_ar: conv widths/kernels/strides, norm (layer = per-frame channel norm), context network."""

    model_type = "multissl_cpc_encoder"

    def __init__(self, sampling_rate: int = 16000, conv_kernels: tuple = (10, 8, 4, 4, 4), conv_strides: tuple = (5, 4, 2, 2, 2),
                 encoder_dim: int = 128, norm: str = "layer", context_type: str = "gru", context_dim: int = 128,
                 context_layers: int = 1, transformer_heads: int = 4, **kwargs):
        if norm not in NORMS or context_type not in CONTEXTS:
            raise ValueError(f"norm must be one of {NORMS} (got {norm!r}); context_type one of {CONTEXTS} (got {context_type!r})")
        if len(conv_kernels) != len(conv_strides):
            raise ValueError(f"conv_kernels {conv_kernels} and conv_strides {conv_strides} must have the same length")
        self.sampling_rate, self.encoder_dim, self.norm = sampling_rate, encoder_dim, norm
        self.conv_kernels, self.conv_strides = list(conv_kernels), list(conv_strides)
        self.context_type, self.context_dim, self.context_layers = context_type, context_dim, context_layers
        self.transformer_heads = transformer_heads
        super().__init__(**kwargs)

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees (465 for the paper's encoder); shorter inputs are zero-padded to this."""
        return receptive_field(self.conv_kernels, self.conv_strides)


class CPCConfig(CPCEncoderConfig, MethodConfig):
    """CPC hyper-parameters: the encoder's plus K prediction steps, negatives, crop and which features embed() pools.

    channel_augment (null = off, the default): ranges of an on-the-fly channel (room, noise, level) drawn for the
    training crops ({} = spoken_words' own ranges; modalities/audio/channel_augment.py). target_view: what the
    targets z_{t+k} are encoded from: "same" (the context's input), "augmented" (the same crop under an independent
    channel) or "clean" (the crop itself); the last two need channel_augment.
    """

    model_type = "multissl_cpc"

    def __init__(self, sampling_rate: int = 16000, conv_kernels: tuple = (10, 8, 4, 4, 4), conv_strides: tuple = (5, 4, 2, 2, 2),
                 encoder_dim: int = 128, norm: str = "layer", context_type: str = "gru", context_dim: int = 128,
                 context_layers: int = 1, transformer_heads: int = 4, prediction_steps: int = 12, num_negatives: int = 32,
                 negatives: str = "batch", crop_seconds: float = 0.5, embed_layer: str = "context",
                 channel_augment: dict | None = None, target_view: str = "same", **kwargs):
        if negatives not in NEGATIVE_MODES or embed_layer not in EMBED_LAYERS:
            raise ValueError(f"negatives must be one of {NEGATIVE_MODES} (got {negatives!r}); embed_layer one of {EMBED_LAYERS} (got {embed_layer!r})")
        if not 1 <= prediction_steps <= MAX_PREDICTION_STEPS:
            raise ValueError(f"prediction_steps must be in [1, {MAX_PREDICTION_STEPS}]; got {prediction_steps}")
        if target_view not in TARGET_VIEWS:
            raise ValueError(f"target_view must be one of {TARGET_VIEWS}; got {target_view!r}")
        if channel_augment is None and target_view != "same":
            raise ValueError(f"target_view {target_view!r} needs channel_augment (e.g. {{}} for the default ranges); it is null")
        # stored resolved (every range spelled out), so config.json says exactly what was drawn from
        self.channel_augment = None if channel_augment is None else ChannelAugment.from_dict(channel_augment).to_dict()
        self.target_view = target_view
        self.prediction_steps, self.num_negatives, self.negatives = prediction_steps, num_negatives, negatives
        self.crop_seconds, self.embed_layer = crop_seconds, embed_layer
        super().__init__(sampling_rate=sampling_rate, conv_kernels=conv_kernels, conv_strides=conv_strides, encoder_dim=encoder_dim,
                         norm=norm, context_type=context_type, context_dim=context_dim, context_layers=context_layers,
                         transformer_heads=transformer_heads, **kwargs)

    def encoder_config(self) -> CPCEncoderConfig:
        """The CPCEncoderConfig part (what the exported encoder is rebuilt from)."""
        keys = ("sampling_rate", "conv_kernels", "conv_strides", "encoder_dim", "norm", "context_type", "context_dim",
                "context_layers", "transformer_heads")
        return CPCEncoderConfig(**{k: getattr(self, k) for k in keys})


class ChannelNorm(nn.Module):
    """LayerNorm over channels of [B, C, T], per frame: no statistics cross frames, so padding never leaks in."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def conv_stack(config: CPCEncoderConfig) -> nn.Sequential:
    """The strided conv encoder: [B, 1, L] -> [B, encoder_dim, T]; Conv -> norm -> ReLU per layer."""
    layers, in_ch = [], 1
    for k, s in zip(config.conv_kernels, config.conv_strides):
        norm = {"layer": ChannelNorm, "batch": nn.BatchNorm1d}.get(config.norm, lambda c: nn.Identity())(config.encoder_dim)
        layers += [nn.Conv1d(in_ch, config.encoder_dim, k, stride=s), norm, nn.ReLU()]
        in_ch = config.encoder_dim
    return nn.Sequential(*layers)


class CausalTransformer(nn.Module):
    """A small causal transformer g_ar: [B, T, D_in] -> [B, T, D]; sinusoidal positions, so any length works."""

    def __init__(self, in_dim: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        T, D = z.shape[1], self.proj.out_features
        pos = torch.arange(T, device=z.device, dtype=z.dtype)[:, None]
        freq = torch.exp(torch.arange(0, D, 2, device=z.device, dtype=z.dtype) * (-math.log(10000.0) / D))
        pe = torch.zeros(T, D, device=z.device, dtype=z.dtype)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)[:, : D // 2]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=z.device, dtype=z.dtype)  # [T, T]
        return self.blocks(self.proj(z) + pe, mask=causal, is_causal=True)  # [B, T, D]


class _CPCPreTrained(PreTrainedModel):
    """Shared init: PyTorch's default initialisation (std-0.02 normals would starve a raw-waveform conv stack)."""

    main_input_name = "input_values"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.GRU, nn.LSTM)):
            bound = 1 / math.sqrt(module.hidden_size)
            for p in module.parameters():
                init.uniform_(p, -bound, bound)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)


@dataclass
class CPCEncoderOutput(ModelOutput):
    """last_hidden_state: c [B, T, C]; encoder_hidden_state: z [B, T, D]; frame_lengths: valid frames [B]."""

    last_hidden_state: torch.Tensor | None = None
    encoder_hidden_state: torch.Tensor | None = None
    frame_lengths: torch.Tensor | None = None


class CPCEncoder(_CPCPreTrained):
    """g_enc + g_ar: input_values [B, L] (16 kHz mono), lengths [B] -> z [B, T, D], c [B, T, C], frame_lengths [B]."""

    config_class = CPCEncoderConfig
    base_model_prefix = "cpc_encoder"

    def __init__(self, config: CPCEncoderConfig):
        super().__init__(config)
        self.conv = conv_stack(config)
        if config.context_type == "transformer":
            self.context = CausalTransformer(config.encoder_dim, config.context_dim, config.context_layers, config.transformer_heads)
        else:
            rnn = nn.GRU if config.context_type == "gru" else nn.LSTM
            self.context = rnn(config.encoder_dim, config.context_dim, num_layers=config.context_layers, batch_first=True)
        self.post_init()

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None, **_: object) -> CPCEncoderOutput:
        if input_values.dim() != 2:
            raise ValueError(f"input_values must be [B, L] mono waveforms; got shape {tuple(input_values.shape)}")
        B, L = input_values.shape
        rf = self.config.receptive_field
        if L < rf:
            raise ValueError(f"input_values has {L} samples; the CPC encoder needs >= {rf} (its receptive field): "
                             f"zero-pad short clips and pass their true `lengths` (AudioCollator does this)")
        if lengths is None:
            lengths = torch.full((B,), L, dtype=torch.long, device=input_values.device)
        z = self.conv(input_values[:, None, :]).transpose(1, 2)  # [B, T, D]
        # frames that only see real samples; a clip shorter than the receptive field keeps its one (padded) frame
        frames = conv_output_length(lengths.to(z.device), self.config.conv_kernels, self.config.conv_strides)
        frames = frames.clamp(min=1, max=z.shape[1])  # [B]
        c = self.context(z)  # [B, T, C]; causal, so trailing padding never reaches a valid c_t
        c = c[0] if isinstance(c, tuple) else c
        return CPCEncoderOutput(last_hidden_state=c, encoder_hidden_state=z, frame_lengths=frames)


# The loop logs every 0-dim tensor field of a ModelOutput, so each step's accuracy is its own field
# (accuracy_step1 ... accuracy_stepK; fields left None are not part of the output). Declared fields,
# not keys added at run time, so the output still rebuilds from its fields (torch pytree, DDP, accelerate).
CPCOutput = make_dataclass(
    "CPCOutput",
    [("loss", "torch.Tensor | None", None), ("accuracy", "torch.Tensor | None", None),
     ("accuracy_last", "torch.Tensor | None", None), ("step_accuracy", "torch.Tensor | None", None),
     ("step_loss", "torch.Tensor | None", None)]
    + [(f"accuracy_step{k}", "torch.Tensor | None", None) for k in range(1, MAX_PREDICTION_STEPS + 1)],
    bases=(ModelOutput,),
    namespace={"__doc__": "loss: K-step InfoNCE; accuracy: mean over steps; accuracy_step1..accuracy_stepK and "
                          "accuracy_last (= step K): 0-dim per-step accuracies; step_accuracy / step_loss [K]."},
)
CPCOutput.__module__ = __name__  # so pickle and repr find it here


def make_cpc_collator(config: CPCConfig, train: bool = True,
                      generator: torch.Generator | None = None) -> AudioCollator | ChannelViewsCollator:
    """Random crop_seconds windows for training, whole clips for embed(); both padded to the receptive field.

    With config.channel_augment set, training crops get channel views (ChannelViewsCollator); evaluation never does.
    """
    crops = AudioCollator(sample_rate=config.sampling_rate, crop_samples=int(round(config.crop_seconds * config.sampling_rate)),
                          min_samples=config.receptive_field, train=train, generator=generator)
    if not train or config.channel_augment is None:
        return crops
    return ChannelViewsCollator(crops, ChannelAugment.from_dict(config.channel_augment), config.target_view)


def tiny_cpc_config() -> CPCConfig:
    """A config that runs forward+backward on CPU in milliseconds (tests)."""
    return CPCConfig(encoder_dim=16, context_dim=16, prediction_steps=3, num_negatives=4, crop_seconds=0.1)


class CPCModel(_CPCPreTrained, MethodModel):
    """CPCEncoder + K linear maps W_k; forward(input_values [B, L], lengths [B]) -> K-step InfoNCE and per-step accuracy.

    With target_values [B, L] (a time-aligned view of the same crops), c_t comes from input_values and the positive
    and negative targets z from target_values.
    """

    config_class = CPCConfig
    tiny_config = staticmethod(tiny_cpc_config)
    make_collator = staticmethod(make_cpc_collator)
    base_model_prefix = "cpc"

    def __init__(self, config: CPCConfig):
        super().__init__(config)
        self.encoder = CPCEncoder(config.encoder_config())
        # the K maps W_k: C -> D as one matrix, so all steps are predicted in one matmul
        self.predictor = nn.Linear(config.context_dim, config.prediction_steps * config.encoder_dim, bias=False)
        self.post_init()

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None,
                negative_noise: torch.Tensor | None = None, target_values: torch.Tensor | None = None,
                **_: object) -> CPCOutput:
        enc = self.encoder(input_values, lengths)
        z, c = enc.encoder_hidden_state, enc.last_hidden_state  # [B, T, D], [B, T, C]
        if target_values is not None:
            if target_values.shape != input_values.shape:
                raise ValueError(f"target_values must have input_values' shape {tuple(input_values.shape)}; "
                                 f"got {tuple(target_values.shape)}")
            z = self.encoder.conv(target_values[:, None, :]).transpose(1, 2)  # [B, T, D]: the targets' own view
        B, T, D = z.shape
        pred = self.predictor(c).view(B, T, self.config.prediction_steps, D)  # [B, T, K, D]: W_k c_t
        out = cpc_loss(pred, z, enc.frame_lengths, self.config.num_negatives, self.config.negatives, noise=negative_noise)
        acc = out.step_accuracy
        per_step = {f"accuracy_step{k + 1}": a for k, a in enumerate(acc)}  # 0-dim each, so metrics.jsonl gets all K
        return CPCOutput(loss=out.loss, accuracy=acc.nanmean(), accuracy_last=acc[-1], step_accuracy=acc,
                         step_loss=out.step_loss, **per_step)

    def embed(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Utterance features [B, C] (or [B, D], [B, C+D]): context c / encodings z mean-pooled over valid frames."""
        enc = self.encoder(input_values, lengths)
        feats = {"context": [enc.last_hidden_state], "encoder": [enc.encoder_hidden_state],
                 "both": [enc.last_hidden_state, enc.encoder_hidden_state]}[self.config.embed_layer]
        h = torch.cat(feats, dim=-1)  # [B, T, F]
        w = frame_mask(enc.frame_lengths, h.shape[1]).to(h.dtype).unsqueeze(-1)  # [B, T, 1]
        return (h * w).sum(1) / w.sum(1)

    def encoder_for_export(self) -> PreTrainedModel:
        """g_enc as a standard transformers HubertModel (models/cpc_export.py): `feature_extractor(input_values)` is z
        exactly and nothing needs multissl; the context network g_ar stays in the multissl folder (norm='layer' only)."""
        from multissl.models.cpc_export import cpc_encoder_to_hubert

        return cpc_encoder_to_hubert(self.encoder)


register_auto(CPCEncoderConfig, CPCEncoder)  # an exported encoder folder rebuilds with AutoModel once this module is imported
