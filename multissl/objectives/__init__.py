"""Modality-agnostic objectives over embeddings/logits (pure torch; no transformers import)."""
from multissl.objectives.adaptive_threshold import (
    FreeMatchState,
    freematch_class_thresholds,
    freematch_init_state,
    freematch_mask,
    freematch_step,
    freematch_update,
)
from multissl.objectives.center_loss import CenterLossState, center_loss, center_update
from multissl.objectives.consistency import (
    consistency_loss,
    probs_consistency_loss,
    sigmoid_rampup,
    temporal_ensemble_targets,
    temporal_ensemble_update,
)
from multissl.objectives.contrastive import clip_loss, info_nce, nt_xent, supcon_loss
from multissl.objectives.distributed import gather_no_grad, gather_with_grad, is_distributed, rank, world_size
from multissl.objectives.margin_softmax import ArcFaceHead, CosFaceHead, arcface_loss, class_cosines, cosface_loss
from multissl.objectives.masked import masked_reconstruction_loss, masked_token_loss
from multissl.objectives.metric_losses import soft_nearest_neighbor_loss, triplet_loss
from multissl.objectives.mixup import (
    Mixed,
    MixMatchLoss,
    distribution_alignment,
    mixmatch_loss,
    mixmatch_mixup,
    sample_beta,
    update_marginal,
)
from multissl.objectives.n_pair import n_pair_loss
from multissl.objectives.predictive import next_token_loss
from multissl.objectives.pseudo_label import (
    MaskedLoss,
    entropy_loss,
    fixmatch_loss,
    select_pseudo_labels,
    sharpen,
    soft_cross_entropy,
    tsa_cross_entropy,
    tsa_mask,
    tsa_threshold,
    uda_consistency_loss,
)
from multissl.objectives.triplet_mining import TRIPLET_MINING, all_triplets, batch_hard_triplets, semi_hard_triplets
from multissl.objectives.vat import kl_with_logits, l2_normalize_per_sample, vat_loss, vat_perturbation

__all__ = [
    "TRIPLET_MINING", "ArcFaceHead", "CenterLossState", "CosFaceHead", "FreeMatchState", "MaskedLoss", "MixMatchLoss", "Mixed",
    "all_triplets", "arcface_loss", "batch_hard_triplets", "center_loss", "center_update", "class_cosines", "clip_loss", "consistency_loss", "cosface_loss",
    "distribution_alignment", "entropy_loss", "fixmatch_loss", "freematch_class_thresholds", "freematch_init_state",
    "freematch_mask", "freematch_step", "freematch_update", "gather_no_grad", "gather_with_grad", "info_nce",
    "is_distributed", "kl_with_logits", "l2_normalize_per_sample", "masked_reconstruction_loss", "masked_token_loss",
    "mixmatch_loss", "mixmatch_mixup", "n_pair_loss", "next_token_loss", "nt_xent", "probs_consistency_loss", "rank",
    "sample_beta", "select_pseudo_labels", "semi_hard_triplets", "sharpen", "sigmoid_rampup", "soft_cross_entropy", "soft_nearest_neighbor_loss",
    "supcon_loss", "temporal_ensemble_targets", "temporal_ensemble_update", "triplet_loss", "tsa_cross_entropy", "tsa_mask",
    "tsa_threshold", "uda_consistency_loss", "update_marginal", "vat_loss", "vat_perturbation", "world_size",
]
