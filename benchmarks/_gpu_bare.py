"""The bare-PyTorch side of benchmarks/gpu_suite.py: the same work as multissl's steps with no multissl, no
transformers and no Accelerate (plain nn.Modules, F.scaled_dot_product_attention, torchvision backbones).

Each builder returns a `step()` closure that runs one training step (forward, loss, backward, clip to norm 1,
fused AdamW step) or one decode; the suite times it beside multissl's step on the same batch.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)); x + mlp(ln(x)) (GPT-2's and CLIP's text layout)."""

    def __init__(self, d: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, t, d = x.shape  # [B, T, D]
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)  # [B, T, H, D/H] each
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Transformer(nn.Module):
    """Token + position embeddings, blocks, final LayerNorm; `lm_head` tied to the token embedding when asked."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, context: int, causal: bool, lm_head: bool,
                 head_transform: bool = False):
        super().__init__()
        self.causal = causal
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads, 4 * d) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        # BERT's MLM head: dense + GELU + LayerNorm before the tied decoder
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d)) if head_transform else None
        self.lm_head = lm_head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, T] -> logits [B, T, V] (lm_head) or hidden states [B, T, D]."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x, self.causal)
        x = self.ln(x)
        if not self.lm_head:
            return x
        if self.transform is not None:
            x = self.transform(x)
        return x @ self.tok.weight.T


def train_step(model: nn.Module, loss_fn: Callable[[], torch.Tensor], autocast: AbstractContextManager,
               fused: bool) -> Callable[[], None]:
    """One step: loss under autocast, backward, clip to norm 1, AdamW (fused where the suite asks)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)

    def step() -> None:
        with autocast:
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def gpt(cfg: dict, ids: torch.Tensor, autocast, fused: bool, compile_: bool) -> Callable[[], None]:
    """Causal LM: next-token cross-entropy over ids [B, T]."""
    model = Transformer(cfg["vocab"], cfg["d"], cfg["layers"], cfg["heads"], ids.shape[1], True, True).to(ids.device)
    run = torch.compile(model) if compile_ else model
    return train_step(model, lambda: F.cross_entropy(run(ids)[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten()),
                      autocast, fused)


def bert(cfg: dict, ids: torch.Tensor, labels: torch.Tensor, autocast, fused: bool, compile_: bool) -> Callable[[], None]:
    """Masked LM: cross-entropy on the positions labels marks (-100 elsewhere), logits over every position."""
    model = Transformer(cfg["vocab"], cfg["d"], cfg["layers"], cfg["heads"], ids.shape[1], False, True,
                        head_transform=True).to(ids.device)
    run = torch.compile(model) if compile_ else model
    return train_step(model, lambda: F.cross_entropy(run(ids).flatten(0, 1).float(), labels.flatten(), ignore_index=-100),
                      autocast, fused)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's loss on two views [B, P]: each row's positive among the other 2B - 1."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # [2B, P]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = z1.shape[0]
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


def simclr(images: torch.Tensor, augment: Callable, smoke: bool, autocast, fused: bool, channels_last: bool,
           compile_: bool) -> Callable[[], None]:
    """torchvision ResNet-50 (smoke: ResNet-18) + Linear-BN-ReLU-Linear projector, views from `augment` on the device."""
    import torchvision

    backbone = (torchvision.models.resnet18 if smoke else torchvision.models.resnet50)(weights=None)
    dim = backbone.fc.in_features
    backbone.fc = nn.Identity()
    hidden, out = (16, 8) if smoke else (2048, 128)
    model = nn.Sequential(backbone, nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))
    model = model.to(images.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    run = torch.compile(model) if compile_ else model

    def loss() -> torch.Tensor:
        views = augment(images)  # [B, 2, 3, S, S]
        b = views.shape[0]
        z = run(views.flatten(0, 1)).view(b, 2, -1)
        return nt_xent(z[:, 0], z[:, 1])

    return train_step(model, loss, autocast, fused)


class Clip(nn.Module):
    """torchvision ViT image tower + bare causal text transformer (pooled at the last token), linear projections."""

    def __init__(self, vision: nn.Module, vision_dim: int, text: Transformer, text_dim: int, proj: int):
        super().__init__()
        self.vision, self.text = vision, text
        self.visual_projection = nn.Linear(vision_dim, proj, bias=False)
        self.text_projection = nn.Linear(text_dim, proj, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.visual_projection(self.vision(pixels)).float(), dim=-1)  # [B, P]
        txt = F.normalize(self.text_projection(self.text(ids)[:, -1]).float(), dim=-1)  # [B, P]
        logits = self.logit_scale.exp() * img @ txt.T  # [B, B]
        target = torch.arange(ids.shape[0], device=ids.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def clip(cfg: dict, pixels: torch.Tensor, ids: torch.Tensor, autocast, fused: bool, compile_: bool) -> Callable[[], None]:
    """Image-text pairs: CLIP's symmetric loss over ViT-B/32-sized towers (cfg gives the sizes)."""
    from torchvision.models.vision_transformer import VisionTransformer

    v, t = cfg["vision"], cfg["text"]
    vision = VisionTransformer(image_size=pixels.shape[-1], patch_size=v["patch"], num_layers=v["layers"],
                               num_heads=v["heads"], hidden_dim=v["d"], mlp_dim=4 * v["d"])
    vision.heads = nn.Identity()  # pooled CLS features [B, D]
    text = Transformer(t["vocab"], t["d"], t["layers"], t["heads"], ids.shape[1], True, False)
    model = Clip(vision, v["d"], text, t["d"], cfg["proj"]).to(pixels.device)
    run = torch.compile(model) if compile_ else model
    return train_step(model, lambda: run(pixels, ids), autocast, fused)


def greedy_decode(model: nn.Module, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """A bare greedy loop over a transformers-5 causal LM with its KV cache (`cache=`, last-position logits only):
    unpadded ids [B, T] -> [B, T + new_tokens]."""
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        tokens = [ids]
        for i in range(new_tokens):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)  # [B, 1]
            tokens.append(nxt)
            if i + 1 < new_tokens:
                out = model(input_ids=nxt, cache=out.cache, use_cache=True, logits_to_keep=1)
        return torch.cat(tokens, dim=1)
