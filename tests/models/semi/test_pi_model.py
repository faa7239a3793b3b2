"""Π-model: the loss against its formula from the model's own logits, the stop-gradient on the target view (and the
paper's two-sided variant), one concatenated forward for BatchNorm, two independent weak views per unlabeled row from
the data hook, and bad config."""
import pytest
import torch

from multissl.data import load_dataset_by_name
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.pi_model import PiModel, PiModelConfig

C, B, MU = 5, 4, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return PiModel(PiModelConfig(**kw))


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 2, 3, 16, 16, generator=g)}


def _logits(model, x):
    return model.classifier(model.embed(x))  # [N, C]


def test_loss_is_labeled_ce_plus_lambda_u_times_the_squared_distance_of_the_two_views_softmaxes():
    model = _model(lambda_u=3.0, entropy_weight=0.5).eval()  # eval: each stream's logits stand alone
    x = _inputs()
    with torch.no_grad():
        lab, first, second = (_logits(model, v) for v in (x["x_l"], x["u_weak"][:, 0], x["u_weak"][:, 1]))
    out = model(**x)
    ce = -lab.log_softmax(-1)[torch.arange(B), x["labels"]].mean()
    p, q = first.softmax(-1), second.softmax(-1)
    mse = ((p - q) ** 2).sum(-1).mean() / C  # 1/(C|B|) sum_i ||z_i - z~_i||^2, Laine & Aila
    entropy = -(p * p.log()).sum(-1).mean()  # the family's entropy term reads the first view
    assert mse > 1e-6  # two different inputs: the term is not trivially zero
    torch.testing.assert_close(out.supervised_loss, ce)
    torch.testing.assert_close(out.unsupervised_loss, mse)
    torch.testing.assert_close(out.entropy, entropy)
    torch.testing.assert_close(out.loss, ce + 3.0 * mse + 0.5 * entropy)


@pytest.mark.parametrize("detach", [True, False])
def test_the_target_view_gets_a_gradient_only_without_detach_target(detach):
    model = _model(detach_target=detach).eval()
    x = {k: v.requires_grad_(v.is_floating_point()) for k, v in _inputs().items()}
    model(**x).loss.backward()
    view_grads = x["u_weak"].grad
    assert torch.count_nonzero(view_grads[:, 0]) > 0
    assert (torch.count_nonzero(view_grads[:, 1]) > 0) is not detach  # Laine & Aila differentiate both passes


def test_training_forward_is_one_concatenated_batch_for_batchnorm():
    model = _model().train()
    x = _inputs()
    with torch.no_grad():
        joint = _logits(model, torch.cat([x["x_l"], x["u_weak"][:, 0], x["u_weak"][:, 1]]))
        alone = _logits(model, x["x_l"])
    out = model(**x)
    torch.testing.assert_close(out.logits, joint[:B])
    assert not torch.allclose(out.logits, alone, atol=1e-4)  # so the check above could fail
    first, second = joint[B:].chunk(2)
    torch.testing.assert_close(out.unsupervised_loss, ((first.softmax(-1) - second.softmax(-1)) ** 2).mean())


class _Digits:
    def load(self):
        return load_dataset_by_name("digits", split="train")


def test_the_data_hook_gives_two_independent_weak_views_of_each_unlabeled_row_and_no_strong_view():
    config = _model(num_classes=10, labels_per_class=2).config
    item = PiModel.make_batch_source(config, _Digits(), batch_size=B, seed=0)[0]
    assert set(item) == {"x_l", "labels", "u_weak"}
    assert item["u_weak"].shape == (MU * B, 2, 3, 16, 16)
    assert not torch.equal(item["u_weak"][:, 0], item["u_weak"][:, 1])  # two draws of the augmentation


@pytest.mark.parametrize("kwargs, match", [
    ({"consistency": "l2"}, "consistency must be one of"),
    ({"detach_target": "yes"}, "detach_target must be true or false"),
    ({"lambda_u": -1.0}, r"lambda_u \(0: supervised only\) must be a number"),
    ({"num_classes": None}, "num_classes is required"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)
