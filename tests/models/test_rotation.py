"""Rotation prediction: the batch holds all four rotations, CE over 4 classes, and it learns on a fixed batch."""
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.models.rotation import RotationModel, make_rotation_collator, tiny_rotation_config


def _rows(n=8):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return [{"image": im} for im in ds["image"]]


def test_collator_holds_the_four_rotations_of_each_image():
    batch = make_rotation_collator(tiny_rotation_config())(_rows(3))
    x = batch["pixel_values"]
    assert x.shape == (3, 4, 3, 16, 16) and batch["rotation_labels"].tolist() == [[0, 1, 2, 3]] * 3
    for k in range(4):
        assert torch.equal(x[:, k], torch.rot90(x[:, 0], k, dims=(2, 3)))


def test_loss_is_cross_entropy_and_learns():
    torch.manual_seed(0)
    cfg = tiny_rotation_config()
    model = RotationModel(cfg).train()
    batch = make_rotation_collator(cfg)(_rows())
    out = model(**batch)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, batch["rotation_labels"].reshape(-1)))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = out.loss.item()
    for _ in range(40):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
