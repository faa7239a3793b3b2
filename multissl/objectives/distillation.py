"""Self-distillation objectives: BYOL/SimSiam negative cosine, DINO cross-entropy with centring + sharpening."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Negative cosine -mean_i cos(p_i, sg(z_i)) for predictions p [B, D] and targets z [B, D] (stop-gradient on z).

    BYOL's ||p/|p| - z/|z|||^2 = 2 - 2 cos equals 2 + 2 * this value, so both give the same gradient direction.
    """
    if p.shape != z.shape or p.dim() != 2:
        raise ValueError(f"byol_loss needs p and z of the same shape [B, D]; got {tuple(p.shape)} and {tuple(z.shape)}")
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def dino_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, center: torch.Tensor,
              student_temperature: float = 0.1, teacher_temperature: float = 0.04) -> torch.Tensor:
    """DINO loss: mean over view pairs (t, s), t != s, of H(softmax((teacher_t - c)/T_t), softmax(student_s/T_s)).

    student_out [V_s, B, K] (global views first, then local), teacher_out [V_t, B, K] (the global views),
    center [K]. The teacher side is centred, sharpened and carries no gradient. Scalar.
    """
    if student_out.dim() != 3 or teacher_out.dim() != 3 or student_out.shape[1:] != teacher_out.shape[1:]:
        raise ValueError(f"dino_loss needs student_out [V_s, B, K] and teacher_out [V_t, B, K]; got "
                         f"{tuple(student_out.shape)} and {tuple(teacher_out.shape)}")
    v_t, v_s = teacher_out.shape[0], student_out.shape[0]
    if v_t > v_s:
        raise ValueError(f"the teacher's {v_t} views must be the first of the student's {v_s} views")
    teacher_probs = F.softmax((teacher_out.detach() - center.reshape(1, 1, -1)) / teacher_temperature, dim=-1)  # [V_t, B, K]
    student_logp = F.log_softmax(student_out / student_temperature, dim=-1)  # [V_s, B, K]
    ce = -torch.einsum("tbk,sbk->ts", teacher_probs, student_logp)  # summed over the batch: [V_t, V_s]
    # Same view on both sides is excluded: predicting a view from itself is trivial.
    off_diag = ~torch.eye(v_t, v_s, dtype=torch.bool, device=ce.device)
    n_pairs = v_t * (v_s - 1)  # every teacher view against every other student view (v_t <= v_s): no device sync
    if n_pairs == 0:
        raise ValueError("dino_loss needs at least two views in total (same-view pairs are excluded)")
    return ce[off_diag].sum() / (n_pairs * student_out.shape[1])


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_out: torch.Tensor, momentum: float = 0.9,
                  gather_distributed: bool = False) -> torch.Tensor:
    """In place: center <- m * center + (1 - m) * mean of teacher_out [..., K] over all rows (and processes). Returns center."""
    batch_sum = teacher_out.reshape(-1, teacher_out.shape[-1]).sum(0)  # [K]
    count = torch.tensor(float(teacher_out.numel() // teacher_out.shape[-1]), device=teacher_out.device)
    if gather_distributed and dist.is_available() and dist.is_initialized():
        dist.all_reduce(batch_sum)
        dist.all_reduce(count)
    center.mul_(momentum).add_(batch_sum / count, alpha=1.0 - momentum)
    return center
