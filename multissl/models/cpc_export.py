"""CPC's convolutional encoder g_enc as a standard transformers `HubertModel`, so an export loads without multissl.

CPC's g_enc (Conv1d -> per-frame LayerNorm over channels -> ReLU, per layer; no padding) is exactly the convolutional
feature encoder of wav2vec 2.0 / HuBERT with `feat_extract_norm="layer"`, `conv_bias=True`,
`feat_extract_activation="relu"` and CPC's kernels and strides as `conv_kernel` / `conv_stride`. HuBERT is chosen
over Wav2Vec2 because its feature projection can drop its LayerNorm (`feat_proj_layer_norm=False`), so every weight
of the exported model is defined by CPC's and none is left to random initialisation:

* `model.feature_extractor(input_values)` -> [B, D, T]: CPC's frame features z (transposed), weights mapped 1:1;
* feature projection = identity (hidden_size = D), no transformer layers (`num_hidden_layers=0`: the context network
  g_ar stays in the multissl folder), the positional convolution outputs exactly 0 (its weight-norm gain is 0);
* so `model(input_values).last_hidden_state` [B, T, D] = LayerNorm(z) per frame (unit scale, zero shift).

Only `norm="layer"` maps exactly (HuBERT's other choice, "group", normalises each channel over time); other norms
are a ValueError naming the setting.
"""
from __future__ import annotations

import torch
from transformers import HubertConfig, HubertModel


def hubert_config_for_cpc(config) -> HubertConfig:
    """The HubertConfig that expresses a CPCEncoderConfig's g_enc (kernels, strides, width, per-frame LayerNorm)."""
    if config.norm != "layer":
        raise ValueError(f"norm={config.norm!r}: only norm='layer' (CPC's per-frame channel norm) has an exact standard "
                         "transformers counterpart (HuBERT's feat_extract_norm='layer'); train with norm: layer to export "
                         "a plain transformers encoder, or use the multissl folder (run/final) as is")
    n, d = len(config.conv_kernels), config.encoder_dim
    return HubertConfig(
        conv_dim=[d] * n, conv_kernel=list(config.conv_kernels), conv_stride=list(config.conv_strides), conv_bias=True,
        feat_extract_norm="layer", feat_extract_activation="relu", feat_proj_layer_norm=False, hidden_size=d,
        num_hidden_layers=0, num_attention_heads=1, intermediate_size=d, do_stable_layer_norm=True,
        num_conv_pos_embeddings=2, num_conv_pos_embedding_groups=1, mask_time_prob=0.0, mask_feature_prob=0.0,
        hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
        sampling_rate=config.sampling_rate,
    )


@torch.no_grad()
def cpc_encoder_to_hubert(encoder: torch.nn.Module) -> HubertModel:
    """A HubertModel whose `feature_extractor` computes exactly `encoder`'s z (CPCEncoder, norm='layer'); see module doc."""
    hubert = HubertModel(hubert_config_for_cpc(encoder.config)).eval()
    convs = [m for m in encoder.conv if isinstance(m, torch.nn.Conv1d)]
    norms = [m.norm for m in encoder.conv if type(m).__name__ == "ChannelNorm"]
    if len(convs) != len(hubert.feature_extractor.conv_layers) or len(norms) != len(convs):
        raise ValueError(f"expected {len(hubert.feature_extractor.conv_layers)} Conv1d + ChannelNorm layers in the CPC "
                         f"encoder; found {len(convs)} convolutions and {len(norms)} norms")
    for layer, conv, norm in zip(hubert.feature_extractor.conv_layers, convs, norms):
        layer.conv.weight.copy_(conv.weight)
        layer.conv.bias.copy_(conv.bias)
        layer.layer_norm.weight.copy_(norm.weight)
        layer.layer_norm.bias.copy_(norm.bias)
    proj = hubert.feature_projection.projection  # identity: hidden = z
    proj.weight.copy_(torch.eye(proj.out_features, dtype=proj.weight.dtype))
    proj.bias.zero_()
    pos = hubert.encoder.pos_conv_embed.conv  # weight = g * v / ||v|| with g = 0: the positional term is exactly 0
    params = pos.parametrizations.weight if hasattr(pos, "parametrizations") else None
    if params is not None:
        params.original0.zero_()
        params.original1.fill_(1.0)
    else:  # torch's legacy weight_norm
        pos.weight_g.zero_()
        pos.weight_v.fill_(1.0)
    pos.bias.zero_()
    hubert.encoder.layer_norm.weight.fill_(1.0)
    hubert.encoder.layer_norm.bias.zero_()
    return hubert

