"""Margin softmax heads: ArcFace (with sub-centers) and CosFace over a class weight matrix (seed 001).

Both are a softmax cross-entropy over scaled cosines s * cos(theta_j) between the L2-normalised
embedding and L2-normalised class weights, with a margin that makes the target class harder:

    ArcFace (Deng et al. 2019, seed 001 eq. (4) with m1=1, m3=0):  target logit s * cos(theta_y + m)
    CosFace (Wang et al. 2018, seed 001 eq. (4) with m1=1, m2=0):   target logit s * (cos(theta_y) - m)

Sub-center ArcFace (Deng et al. 2020) gives every class K weight rows; a class's cosine is the
maximum over its K sub-centers, before the margin. Rows are class-major: row c*K + k is sub-center
k of class c (the layout pytorch-metric-learning's SubCenterArcFaceLoss uses, so weights transfer).

Units: `margin` is in **radians** for ArcFace (the paper's m = 0.5), a cosine offset for CosFace
(the paper's m = 0.35). pytorch-metric-learning's ArcFaceLoss takes degrees (its default 28.6 is
0.5 rad): pass math.degrees(margin) there. An ArcFace margin outside [0, pi/2] is rejected with
that hint.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def _check_head_inputs(embeddings: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, sub_centers: int) -> int:
    """Raise a ValueError naming the bad argument; return the number of classes C."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape [B, D]; got {tuple(embeddings.shape)}")
    b, d = embeddings.shape
    if not (isinstance(sub_centers, int) and sub_centers >= 1):
        raise ValueError(f"sub_centers must be an int >= 1; got {sub_centers!r}")
    if weight.dim() != 2 or weight.shape[1] != d or weight.shape[0] % sub_centers or weight.shape[0] == 0:
        raise ValueError(f"weight must have shape [C*K, {d}] with K = sub_centers = {sub_centers}; got {tuple(weight.shape)}")
    num_classes = weight.shape[0] // sub_centers
    if labels.shape != (b,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of shape [{b}]; got {labels.dtype} {tuple(labels.shape)}")
    if b:  # one reduction; cross_entropy's own error is opaque (a device assert on GPU)
        low, high = torch.aminmax(labels)
        if int(low) < 0 or int(high) >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}) (weight has {num_classes} classes)")
    return num_classes


def _check_scale(scale: float) -> None:
    if not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale}")


def _check_arc_margin(margin: float) -> None:
    if not 0 <= margin <= math.pi / 2:
        raise ValueError(f"margin must be in radians, in [0, pi/2]; got {margin} (degrees? use math.radians)")


def _scaled_cosines(embeddings: torch.Tensor, weight: torch.Tensor, scale: float, sub_centers: int) -> torch.Tensor:
    """s * cos(x_i, class c) [B, C]: max over each class's K sub-centers (positive s commutes with the max)."""
    x = F.normalize(embeddings, dim=1) * scale  # [B, D]: scaling B*D entries instead of the B*C logits
    logits = x @ F.normalize(weight, dim=1).T  # [B, C*K]
    if sub_centers > 1:
        # max(dim) saves only its indices for backward, so the caller may write into the values in place
        logits = logits.view(logits.shape[0], -1, sub_centers).max(dim=2).values  # [B, C]
    return logits


class _ArcFaceTarget(torch.autograd.Function):
    """z = s cos(theta) [B] -> s cos(theta + m) (or the fallback), its slope dz'/dz computed in the same pass.

    One autograd node instead of the ~10 elementwise ones of the formula: on [B] tensors the
    per-op overhead, not arithmetic, is the cost. s sin(theta) = sqrt(s^2 - z^2) is floored at a
    tiny positive value; where the floor acts (z = +-s, an embedding exactly on its class direction)
    the sin term contributes no slope, so the gradient stays finite instead of 0 * inf = NaN.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, margin: float, scale: float) -> torch.Tensor:  # type: ignore[override]
        cos_m, sin_m = math.cos(margin), math.sin(margin)
        sin2 = scale * scale - z * z  # [B] s^2 sin^2(theta); below 0 only by rounding
        floor = scale * scale * 1e-12
        sin_s = sin2.clamp_min(floor).sqrt_()  # [B] s sin(theta)
        main = z >= -scale * cos_m  # theta <= pi - m
        out = torch.where(main, z * cos_m - sin_s * sin_m, z - scale * margin * sin_m)
        sin_slope = (z * sin_m / sin_s).masked_fill_(sin2 < floor, 0.0)  # d(-s sin(theta) sin m)/dz, 0 where floored
        ctx.save_for_backward(torch.where(main, cos_m + sin_slope, 1.0))  # [B] d out / d z
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def class_cosines(embeddings: torch.Tensor, weight: torch.Tensor, sub_centers: int = 1) -> torch.Tensor:
    """cos(theta) [B, C] between embeddings [B, D] and each class of weight [C*K, D] (max over its K sub-centers)."""
    if embeddings.dim() != 2 or weight.dim() != 2 or weight.shape[1] != embeddings.shape[1] or weight.shape[0] % sub_centers:
        raise ValueError(
            f"embeddings must be [B, D] and weight [C*K, D] with K = {sub_centers}; "
            f"got {tuple(embeddings.shape)} and {tuple(weight.shape)}"
        )
    return _scaled_cosines(embeddings, weight, 1.0, sub_centers)


def arcface_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    margin: float = 0.5,
    scale: float = 64.0,
    sub_centers: int = 1,
) -> torch.Tensor:
    """(Sub-center) ArcFace; embeddings [B, D], labels [B] in [0, C), weight [C*K, D] (K = sub_centers) -> scalar.

    mean_i CE(s * [cos theta_ij for j != y_i, cos(theta_iy + m)], y_i), m in radians.
    theta + m > pi: cos(theta + m) turns back up there (it is minimal at theta = pi - m), so the
    target logit would reward a *larger* angle. Those targets use cos(theta) - m sin(m) instead:
    the first-order expansion cos(theta) - m sin(theta) with sin(theta) frozen at its value sin(m)
    at the switch theta = pi - m (InsightFace's choice, which pytorch-metric-learning shares). It
    decreases with theta, and at the switch it drops from -1 to -(cos m + m sin m) <= -1 (true for
    m in [0, pi/2], hence that range), so the target logit never increases with the angle.
    cos(theta + m) is expanded as cos(theta) cos(m) - sin(theta) sin(m) (no acos), in one autograd
    node with its analytic slope (first derivatives only).
    """
    _check_head_inputs(embeddings, labels, weight, sub_centers)
    _check_scale(scale)
    _check_arc_margin(margin)
    logits = _scaled_cosines(embeddings, weight, scale, sub_centers)  # [B, C] = s cos(theta)
    rows = torch.arange(labels.shape[0], device=labels.device)
    # advanced indexing, not gather: its backward keeps only the shape, gather's keeps the tensor overwritten below
    target = _ArcFaceTarget.apply(logits[rows, labels], margin, scale)  # [B] s * cos(theta_y + m)
    # in place: neither mm nor max(dim) needs its output for backward, so no [B, C] copy
    logits = logits.index_put_((rows, labels), target)
    return F.cross_entropy(logits, labels)


def cosface_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, margin: float = 0.35, scale: float = 64.0
) -> torch.Tensor:
    """CosFace / large margin cosine loss; embeddings [B, D], labels [B] in [0, C), weight [C, D] -> scalar.

    mean_i CE(s * [cos theta_ij - m * [j == y_i]]_j, y_i).
    """
    _check_head_inputs(embeddings, labels, weight, 1)
    _check_scale(scale)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    logits = _scaled_cosines(embeddings, weight, scale, 1)  # [B, C]
    # a constant shift of the target entries: in place, as mm's backward does not read its output
    logits = logits.scatter_add_(1, labels[:, None], logits.new_full((labels.shape[0], 1), -scale * margin))
    return F.cross_entropy(logits, labels)


def _init_weight(rows: int, dim: int, generator: torch.Generator | None) -> nn.Parameter:
    if rows < 1 or dim < 1:
        raise ValueError(f"num_classes * sub_centers and dim must be >= 1; got {rows} and {dim}")
    weight = torch.empty(rows, dim)
    nn.init.normal_(weight, generator=generator)  # any direction-isotropic init: only the rows' directions matter
    return nn.Parameter(weight)


class ArcFaceHead(nn.Module):
    """Holds the [C*K, D] class weights of (sub-center) ArcFace; forward(embeddings [B, D], labels [B]) -> loss."""

    def __init__(
        self,
        num_classes: int,
        dim: int,
        sub_centers: int = 1,
        margin: float = 0.5,
        scale: float = 64.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_arc_margin(margin)
        _check_scale(scale)
        if sub_centers < 1:
            raise ValueError(f"sub_centers must be >= 1; got {sub_centers}")
        self.num_classes, self.sub_centers, self.margin, self.scale = num_classes, sub_centers, margin, scale
        self.weight = _init_weight(num_classes * sub_centers, dim, generator)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ArcFace loss of embeddings [B, D] with labels [B] -> scalar."""
        return arcface_loss(embeddings, labels, self.weight, self.margin, self.scale, self.sub_centers)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) [B, C] to each class (max over sub-centers), no margin: for prediction (argmax)."""
        return class_cosines(embeddings, self.weight, self.sub_centers)


class CosFaceHead(nn.Module):
    """Holds the [C, D] class weights of CosFace; forward(embeddings [B, D], labels [B]) -> loss."""

    def __init__(
        self, num_classes: int, dim: int, margin: float = 0.35, scale: float = 64.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0; got {margin}")
        _check_scale(scale)
        self.num_classes, self.margin, self.scale = num_classes, margin, scale
        self.weight = _init_weight(num_classes, dim, generator)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CosFace loss of embeddings [B, D] with labels [B] -> scalar."""
        return cosface_loss(embeddings, labels, self.weight, self.margin, self.scale)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) [B, C] to each class, no margin: for prediction (argmax)."""
        return class_cosines(embeddings, self.weight)
