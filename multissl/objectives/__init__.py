"""Modality-agnostic objectives over embeddings/logits (pure torch; no transformers import)."""
from multissl.objectives.contrastive import clip_loss, info_nce, nt_xent, supcon_loss
from multissl.objectives.distributed import gather_no_grad, gather_with_grad, is_distributed, rank, world_size
from multissl.objectives.masked import masked_reconstruction_loss, masked_token_loss
from multissl.objectives.metric_losses import soft_nearest_neighbor_loss, triplet_loss
from multissl.objectives.predictive import next_token_loss

__all__ = [
    "clip_loss", "gather_no_grad", "gather_with_grad", "info_nce", "is_distributed", "masked_reconstruction_loss",
    "masked_token_loss", "next_token_loss", "nt_xent", "rank", "soft_nearest_neighbor_loss", "supcon_loss",
    "triplet_loss", "world_size",
]
