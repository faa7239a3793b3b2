"""The speed knobs of `train:` (multissl/training/performance.py): each takes effect, keeps the numbers, or fails
with one error naming the key. CPU only: TF32 and flash attention are checked for their flags and errors."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch import nn

from multissl.models.bert_mlm import BertMLMModel
from multissl.models.clip import ClipModel
from multissl.models.gpt_lm import GPTLMModel
from multissl.models.simclr import SimCLRModel
from multissl.training.config import RecipeError, TrainArgs, recipe_from_dict
from multissl.training.performance import apply_model_settings, backbones, make_optimizer

CPU = torch.device("cpu")


def _bert() -> BertMLMModel:
    torch.manual_seed(0)
    config = BertMLMModel.tiny_config()
    config.backbone_config = dict(config.backbone_config, vocab_size=64)  # a small embedding is enough here
    return BertMLMModel(config)


def _bert_batch() -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 64, (3, 12), generator=g)
    labels = torch.where(torch.rand(3, 12, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 0] = ids[:, 0]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _simclr() -> SimCLRModel:
    torch.manual_seed(0)
    return SimCLRModel(SimCLRModel.tiny_config())


def _pixels() -> torch.Tensor:
    return torch.randn(4, 2, 3, 16, 16, generator=torch.Generator().manual_seed(2))


# ---- recipe keys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("train,message", [
    ({"optimizer": "adam"}, "train.optimizer must be one of adamw|sgd|lars; got 'adam'"),
    ({"attention": "flash"}, "train.attention must be one of sdpa|eager|flash_attention_2; got 'flash'"),
    ({"report_to": ["wandb"]}, "train.report_to must be a list of distinct names from ['tensorboard', 'trackio']"),
    ({"report_to": ["tensorboard", "tensorboard"]}, "train.report_to must be a list of distinct names"),
    ({"compile": "yes please"}, "train.compile must be true or false; got 'yes please'"),
    ({"lars_trust_coefficient": 0}, "train.lars_trust_coefficient must be a finite number > 0; got 0"),
    ({"fused": True, "foreach": True}, "train.fused and train.foreach are two implementations"),
    ({"optimizer": "lars", "foreach": True}, "train.fused / train.foreach apply to adamw and sgd"),
])
def test_bad_speed_keys_are_one_line_errors(train, message):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"method": "simclr", "train": train}, source="r.yaml")
    assert str(err.value).startswith(f"r.yaml: {message}")


def test_report_to_takes_one_name_or_a_list():
    one = recipe_from_dict({"method": "simclr", "train": {"report_to": "tensorboard"}})
    assert one.train.report_to == ["tensorboard"] and one.to_dict()["train"]["report_to"] == ["tensorboard"]


# ---- mixed precision ---------------------------------------------------------------------------------------

@pytest.fixture
def fresh_accelerator_state():
    """The Accelerator built inside the test is a process-wide singleton: reset it, so later tests start clean."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=False)


def test_fp16_on_a_cpu_is_refused_before_the_run_starts(tmp_path, fresh_accelerator_state):
    import tests.training.toy  # noqa: F401  (registers the test_toy method and dataset)
    from multissl.training import train

    recipe = recipe_from_dict({"method": "test_toy", "train": {"max_steps": 2, "batch_size": 8, "progress": False,
                                                               "mixed_precision": "fp16"}})
    with pytest.raises(ValueError) as err:
        train(recipe, tmp_path / "run")
    assert str(err.value).startswith("train.mixed_precision: fp16 does not run on a CPU")
    assert "use bf16, which works on CPU" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before the output folder was made


def test_why_fp16_is_refused_on_a_cpu_accelerate_trains_it_in_fp32(fresh_accelerator_state):
    """The premise of the refusal: Accelerate's fp16 on a CPU has no grad scaler and no autocast. If a later
    Accelerate runs fp16 on CPUs, this fails, and check_mixed_precision should let fp16 through."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="fp16", cpu=True)
    assert accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu"
    assert accelerator.scaler is None and not accelerator.native_amp
    with accelerator.autocast():
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32


# ---- optimizers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_fused_and_foreach_kernels_take_the_same_step_as_the_default(name):
    steps = {}
    for kernel in ({}, {"fused": True}, {"foreach": True}, {"foreach": False}):
        model = _simclr()
        opt = make_optimizer(model, TrainArgs(optimizer=name, learning_rate=0.05, weight_decay=0.1, **kernel))
        assert all(opt.defaults.get(k) == v for k, v in kernel.items())
        model(pixel_values=_pixels()).loss.backward()
        opt.step()
        steps[str(kernel)] = torch.cat([p.detach().flatten() for p in model.parameters()])
    base = steps.pop("{}")
    for kernel, after in steps.items():
        torch.testing.assert_close(after, base, rtol=1e-5, atol=1e-6, msg=kernel)


def test_fused_on_a_device_without_a_kernel_is_an_error():
    with pytest.raises(ValueError, match=r"train.fused: torch .* has no fused adamw kernel for meta"):
        make_optimizer(_simclr(), TrainArgs(fused=True), device="meta")


def test_weight_decay_skips_biases_and_norms():
    opt = make_optimizer(_simclr(), TrainArgs(weight_decay=0.3))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.3 and all(p.dim() > 1 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])


def test_lr_scales_give_their_parameters_a_scaled_lr_that_the_schedule_keeps():
    from torch.optim.lr_scheduler import LambdaLR

    from multissl.models.byol import BYOLModel, tiny_byol_config

    config = tiny_byol_config()
    config.predictor_lr_scale = 10.0
    model = BYOLModel(config)
    opt = make_optimizer(model, TrainArgs(learning_rate=0.01, weight_decay=0.3))
    predictor = {id(p) for p in model.predictor.parameters()}
    by_lr = {}
    for group in opt.param_groups:
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
        assert group["weight_decay"] == (0.3 if all(p.dim() > 1 for p in group["params"]) else 0.0)
    assert by_lr == {0.01: {id(p) for p in model.parameters() if p.requires_grad} - predictor, 0.1: predictor}
    sched = LambdaLR(opt, lambda s: 1.0 / (s + 1))
    sched.step()
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([0.005, 0.05])


def test_without_lr_scales_the_groups_are_the_two_of_before():
    from multissl.models.byol import BYOLModel, tiny_byol_config

    opt = make_optimizer(BYOLModel(tiny_byol_config()), TrainArgs(learning_rate=0.01))
    assert len(opt.param_groups) == 2 and {g["lr"] for g in opt.param_groups} == {0.01}


def test_a_predictor_lr_scale_that_is_not_positive_is_refused():
    from multissl.models.byol import BYOLConfig

    with pytest.raises(ValueError, match="predictor_lr_scale must be > 0"):
        BYOLConfig(predictor_lr_scale=0)


# ---- tf32, channels_last --------------------------------------------------------------------------------------

def test_tf32_sets_the_new_style_flags_and_says_it_has_no_effect_on_cpu():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.conv.fp32_precision
    try:
        notes = apply_model_settings(_simclr(), TrainArgs(tf32=True), CPU)
        assert notes == ["tf32 (no effect on cpu)"]
        assert torch.get_float32_matmul_precision() == "high"
        # readable through the old API too (torch refuses when old and new setters were mixed)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.conv.fp32_precision = before[1]


def test_channels_last_lays_out_conv_weights_nhwc_and_keeps_the_loss():
    eager, nhwc = _simclr(), _simclr()
    assert apply_model_settings(nhwc, TrainArgs(channels_last=True), CPU) == ["channels_last"]
    convs = [m.weight for m in nhwc.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[0].is_contiguous()  # really NHWC, not a no-op
    x = _pixels()
    torch.testing.assert_close(nhwc(pixel_values=x).loss, eager(pixel_values=x).loss, rtol=1e-5, atol=1e-6)


def test_channels_last_without_convolutions_is_an_error():
    model = GPTLMModel(GPTLMModel.tiny_config())
    with pytest.raises(ValueError, match="train.channels_last: GPTLMModel has no 2-D convolution"):
        apply_model_settings(model, TrainArgs(channels_last=True), CPU)


# ---- attention ------------------------------------------------------------------------------------------------

def _sdpa_calls(model: nn.Module, batch: dict) -> tuple[int, torch.Tensor]:
    real = torch.nn.functional.scaled_dot_product_attention
    with mock.patch("torch.nn.functional.scaled_dot_product_attention", side_effect=real) as spy:
        loss = model(**batch).loss
    return spy.call_count, loss


def test_attention_implementation_reaches_every_layer_and_keeps_the_loss():
    batch = _bert_batch()
    eager, sdpa = _bert().eval(), _bert().eval()  # no dropout: the two must compute the same function
    assert apply_model_settings(eager, TrainArgs(attention="eager"), CPU) == ["attention=eager (backbone)"]
    apply_model_settings(sdpa, TrainArgs(attention="sdpa"), CPU)
    n_eager, loss_eager = _sdpa_calls(eager, batch)
    n_sdpa, loss_sdpa = _sdpa_calls(sdpa, batch)
    assert n_eager == 0 and n_sdpa == eager.config.backbone_config["num_hidden_layers"]  # one call per layer
    torch.testing.assert_close(loss_sdpa, loss_eager, rtol=1e-5, atol=1e-6)


def test_attention_reaches_only_the_transformer_tower_of_clip():
    model = ClipModel(ClipModel.tiny_config())  # ResNet image tower + BERT text tower
    notes = apply_model_settings(model, TrainArgs(attention="eager"), CPU)
    assert notes == ["attention=eager (text_model)"] and model.text_model.config._attn_implementation == "eager"


@pytest.mark.parametrize("model_fn,attention,match", [
    (_simclr, "sdpa", "train.attention: SimCLRModel has no transformer backbone"),
    (_bert, "flash_attention_2", "train.attention: flash_attention_2 runs on CUDA GPUs only"),
])
def test_attention_that_cannot_apply_is_an_error(model_fn, attention, match):
    with pytest.raises(ValueError, match=match):
        apply_model_settings(model_fn(), TrainArgs(attention=attention), CPU)


# ---- gradient checkpointing ---------------------------------------------------------------------------------

def _layer_calls_and_grads(model: BertMLMModel, batch: dict) -> tuple[int, list[torch.Tensor]]:
    calls = []
    # transformers checkpoints a layer's forward (its own hooks stay outside): count a module inside it
    layer = model.backbone.bert.encoder.layer[0].intermediate
    handle = layer.register_forward_hook(lambda *_: calls.append(1))
    model.train()
    model(**batch).loss.backward()
    handle.remove()
    return len(calls), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_gradient_checkpointing_recomputes_layers_and_keeps_the_gradients():
    batch = _bert_batch()
    plain, ckpt = _bert(), _bert()
    for m in (plain, ckpt):
        m.config.backbone_config["hidden_dropout_prob"] = 0.0
        for module in m.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0  # recomputation must see the same forward
    assert apply_model_settings(ckpt, TrainArgs(gradient_checkpointing=True), CPU) == ["gradient_checkpointing (backbone)"]
    n_plain, g_plain = _layer_calls_and_grads(plain, batch)
    n_ckpt, g_ckpt = _layer_calls_and_grads(ckpt, batch)
    assert (n_plain, n_ckpt) == (1, 2)  # the layer ran again in backward
    for a, b in zip(g_ckpt, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_on_a_resnet_is_an_error():
    with pytest.raises(ValueError, match=r"train.gradient_checkpointing: no backbone of SimCLRModel supports it "
                                         r"\(backbone \(ResNetModel\)\)"):
        apply_model_settings(_simclr(), TrainArgs(gradient_checkpointing=True), CPU)


def test_gradient_checkpointing_takes_the_towers_that_support_it():
    model = ClipModel(ClipModel.tiny_config())  # ResNet image tower + BERT text tower
    notes = apply_model_settings(model, TrainArgs(gradient_checkpointing=True), CPU)
    assert notes == ["gradient_checkpointing (text_model; not vision_model (ResNetModel))"]
    assert model.text_model.is_activation_checkpointing and not model.vision_model.is_activation_checkpointing


def test_backbones_are_the_outermost_hugging_face_models():
    assert [n for n, _ in backbones(ClipModel(ClipModel.tiny_config()))] == ["vision_model", "text_model"]
    assert [n for n, _ in backbones(_bert())] == ["backbone"]  # not backbone.bert inside it
