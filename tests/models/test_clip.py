"""CLIP dual encoder: loss vs transformers' clip_loss, logit-scale clamp, LiT locks, pretrained tower, pipeline, export."""
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, pipeline
from transformers.models.clip.modeling_clip import image_text_contrastive_loss as hf_clip_loss

from multissl.data import load_dataset_by_name
from multissl.evaluation.zero_shot import zero_shot_classify
from multissl.modalities.image_text import ImageCaptionCollator
from multissl.models.clip import ClipConfig, ClipModel, make_clip_collator, make_image_processor, save_tower, tiny_clip_config
from multissl.paths import MINILM, resolve_local_path

NAMES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def rows():
    ds = load_dataset_by_name("digits_captions", split="test").select(range(6))
    return [ds[i] for i in range(len(ds))]


def _pairs(config, rows):
    """Deterministic image + caption batch (no crops)."""
    c = ImageCaptionCollator(config.tokenizer_path, config.image_size, config.max_seq_length, train=False)
    return c(rows)


def _model(**overrides):
    torch.manual_seed(0)
    cfg = tiny_clip_config()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return ClipModel(cfg)


def test_loss_and_logits_match_transformers_clip_loss(rows):
    model = _model().eval()
    batch = _pairs(model.config, rows)
    out = model(**batch, return_loss=True)
    img = F.normalize(model.get_image_features(batch["pixel_values"]), dim=-1)
    txt = F.normalize(model.get_text_features(batch["input_ids"], batch["attention_mask"]), dim=-1)
    logits_per_text = math.exp(math.log(1 / 0.07)) * txt @ img.T  # [Bt, Bi]
    assert torch.allclose(out.logits_per_text, logits_per_text, atol=1e-5)
    assert torch.allclose(out.logits_per_image, logits_per_text.T, atol=1e-5)
    assert out.loss.item() == pytest.approx(hf_clip_loss(logits_per_text).item(), abs=1e-5)
    assert torch.allclose(out.image_embeds.norm(dim=-1), torch.ones(len(rows)), atol=1e-5)
    assert out.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_loss_only_in_training_mode_by_default_and_unpaired_inputs(rows):
    model = _model()
    batch = _pairs(model.config, rows)
    assert model.eval()(**batch).loss is None
    assert model.train()(**batch).loss is not None
    images_3 = batch["pixel_values"][:3]
    out = model.eval()(pixel_values=images_3, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert out.logits_per_image.shape == (3, len(rows))  # the pipeline's case: 1 image, C labels
    with pytest.raises(ValueError, match="paired"):
        model(pixel_values=images_3, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], return_loss=True)
    with pytest.raises(ValueError, match="input_ids"):
        model(pixel_values=images_3)


def test_logit_scale_is_clamped_to_100(rows):
    model = _model().train()
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) ~ 22026
    out = model(**_pairs(model.config, rows))
    assert out.logit_scale.item() == pytest.approx(100.0, rel=1e-5)
    assert out.logits_per_image.abs().max() <= 100.0 + 1e-4
    out.loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.item() == 0.0  # clamped: no push further up
    model.on_step_end(0, 1)
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))


@pytest.mark.parametrize("locked,free", [("vision_model", "text_model"), ("text_model", "vision_model")])
def test_locked_tower_gets_no_gradient_and_stays_in_eval_mode(rows, locked, free):
    model = _model(**{"lock_image_tower" if locked == "vision_model" else "lock_text_tower": True}).train()
    tower = getattr(model, locked)
    assert not any(p.requires_grad for p in tower.parameters())
    assert not tower.training and getattr(model, free).training
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    out = model(**_pairs(model.config, rows))
    out.loss.backward()
    assert all(p.grad is None for p in tower.parameters())
    assert all(p.grad is not None for p in getattr(model, free).parameters() if p.requires_grad)
    assert model.visual_projection.weight.grad is not None and model.text_projection.weight.grad is not None
    after = tower.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # e.g. BatchNorm running stats untouched


def test_pretrained_text_tower_is_loaded_and_round_trips(tmp_path, rows):
    cfg = ClipConfig(vision_backbone_config=tiny_clip_config().vision_backbone_config, image_size=16,
                            projection_dim=8, lock_text_tower=True)
    assert cfg.text_backbone_path == MINILM and cfg.tokenizer_path == MINILM
    model = ClipModel.build(cfg).eval()  # build() loads the towers named by paths
    reference = AutoModel.from_pretrained(resolve_local_path(MINILM)).state_dict()
    ours = model.text_model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in reference.items())
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m").eval()
    batch = _pairs(cfg, rows)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits_per_image, loaded(**batch).logits_per_image, atol=1e-5)


def test_image_processor_matches_eval_collator():
    from PIL import Image

    model = _model()
    g = torch.Generator().manual_seed(0)
    rgba = Image.fromarray((torch.rand(13, 20, 4, generator=g) * 255).byte().numpy(), mode="RGBA")
    digit = load_dataset_by_name("digits_captions", split="test")[0]["image"]
    ours = ImageCaptionCollator(None, 16, 8, train=False, include_text=False).pixels([digit, rgba])
    theirs = make_image_processor(model.config)(images=[digit, rgba], return_tensors="pt")["pixel_values"]
    assert theirs.shape == ours.shape == (2, 3, 16, 16)
    assert torch.allclose(theirs, ours, atol=1e-6)  # the same resize, and transparency composited over white


def test_transformers_zero_shot_pipeline_runs_our_model(tmp_path, rows):
    model = _model().eval()
    model.save_pretrained(tmp_path / "m")
    template = "a handwritten digit {}"
    ours = zero_shot_classify(model, [rows[0]["image"]], NAMES, [template]).probs[0]
    expected = sorted(zip(ours.tolist(), NAMES), reverse=True)
    # 1) from the saved folder alone (weights + tokenizer + image processor saved together)
    by_dir = pipeline("zero-shot-image-classification", model=str(tmp_path / "m"))
    # 2) from objects, as the issue spells it
    tok = AutoTokenizer.from_pretrained(str(resolve_local_path(model.config.tokenizer_path)))
    by_obj = pipeline("zero-shot-image-classification", model=model, tokenizer=tok,
                      image_processor=make_image_processor(model.config))
    for pipe in (by_dir, by_obj):
        got = pipe(rows[0]["image"], candidate_labels=NAMES, hypothesis_template=template)
        assert [r["label"] for r in got] == [name for _, name in expected]
        assert [r["score"] for r in got] == pytest.approx([p for p, _ in expected], abs=1e-4)


def test_towers_export_as_plain_transformers_folders(tmp_path, rows):
    model = _model().eval()
    text_dir, vision_dir = save_tower(model, tmp_path / "text", "text"), save_tower(model, tmp_path / "vision", "vision")
    text, vision = AutoModel.from_pretrained(text_dir).eval(), AutoModel.from_pretrained(vision_dir).eval()
    assert (text_dir / "tokenizer.json").is_file() and (vision_dir / "preprocessor_config.json").is_file()
    batch = _pairs(model.config, rows)
    with torch.no_grad():
        h = text(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        ours_text = model.text_backbone_features(batch["input_ids"], batch["attention_mask"])
        assert torch.allclose((h * mask).sum(1) / mask.sum(1), ours_text, atol=1e-5)
        plain_vision = vision(pixel_values=batch["pixel_values"]).pooler_output.flatten(1)
        assert torch.allclose(plain_vision, model.embed(batch["pixel_values"]), atol=1e-5)
    with pytest.raises(ValueError, match="tower"):
        save_tower(model, tmp_path / "x", "audio")


def test_training_collator_crops_with_the_generator(rows):
    cfg = tiny_clip_config()
    collate = make_clip_collator(cfg, train=True)
    a = collate(rows, generator=torch.Generator().manual_seed(1))
    b = collate(rows, generator=torch.Generator().manual_seed(1))
    c = collate(rows, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a["pixel_values"], b["pixel_values"]) and not torch.equal(a["pixel_values"], c["pixel_values"])
    assert set(make_clip_collator(cfg, train=False)(rows)) == {"pixel_values"}  # eval: images for embed / k-NN


@pytest.mark.parametrize("kwargs,match", [
    ({"text_pooler": "max"}, "text_pooler"),
    ({"max_seq_length": 65}, "max_seq_length"),
    ({"logit_scale_init_value": 5.0}, "max_logit_scale"),
    ({"vision_backbone_config": {"hidden_sizes": [8]}}, "model_type"),
])
def test_bad_config_values_are_named(kwargs, match):
    base = dict(vision_backbone_config=tiny_clip_config().vision_backbone_config,
                text_backbone_config=tiny_clip_config().text_backbone_config, tokenizer_path=MINILM)
    with pytest.raises(ValueError, match=match):
        ClipConfig(**{**base, **kwargs})
