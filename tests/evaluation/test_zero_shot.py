"""Zero-shot classification (prompt ensembles) and CLIP retrieval against direct per-class / per-query formulas; CLI."""
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multissl.cli import main
from multissl.data import load_dataset_by_name
from multissl.evaluation.clip_retrieval import bidirectional_retrieval, evaluate_retrieval
from multissl.evaluation.dual_encoder import encode_images, encode_texts
from multissl.evaluation.retrieval import retrieval_metrics
from multissl.evaluation.zero_shot import class_embeddings, topk_accuracy, zero_shot_classify
from multissl.modalities.text.sentences import load_tokenizer
from multissl.models.clip import ClipModel, tiny_clip_config

CLASSES = ["zero", "one", "two", "three", "four", "five", "six"]
TEMPLATES = ["a handwritten digit {}", "the number {}", "{}"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ClipModel(tiny_clip_config()).eval()


@pytest.fixture(scope="module")
def test_split():
    return load_dataset_by_name("digits_captions", split="test").select(range(24))


def _direct_text(model, text):
    """One text at a time, no batching or padding: the reference embedding."""
    enc = load_tokenizer(model.config.tokenizer_path)(text, return_tensors="pt")
    with torch.no_grad():
        return F.normalize(model.get_text_features(enc["input_ids"], enc["attention_mask"])[0], dim=-1)


def test_prompt_ensemble_matches_direct_formula(model):
    got = class_embeddings(model, CLASSES, TEMPLATES, batch_size=4)  # batches cut across classes
    for c, name in enumerate(CLASSES):
        mean = torch.stack([_direct_text(model, t.format(name)) for t in TEMPLATES]).mean(0)
        assert torch.allclose(got[c], mean / mean.norm(), atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(len(CLASSES)), atol=1e-5)


def test_zero_shot_logits_predictions_and_accuracy(model, test_split):
    images, labels = test_split["image"], torch.tensor(test_split["label"])
    labels = labels.clamp(max=len(CLASSES) - 1)
    res = zero_shot_classify(model, images, CLASSES, TEMPLATES, labels=labels, batch_size=5)
    with torch.no_grad():
        img = F.normalize(model.get_image_features(torch.stack([_pixels(model, im) for im in images])), dim=-1)
    logits = model.scale().item() * img @ class_embeddings(model, CLASSES, TEMPLATES).T
    assert torch.allclose(res.logits, logits, atol=1e-4)
    assert torch.equal(res.predictions, logits.argmax(1))
    assert torch.allclose(res.probs.sum(1), torch.ones(len(images)), atol=1e-5)
    top5 = logits.topk(5, dim=1).indices
    assert res.accuracy["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    hits = sum(int(labels[i]) in top5[i].tolist() for i in range(len(images)))
    assert res.accuracy["top5"] == pytest.approx(hits / len(images))


def _pixels(model, image):
    from multissl.modalities.image_text import ImageCaptionCollator

    return ImageCaptionCollator(None, model.config.image_size, 8, train=False, include_text=False).pixels([image])[0]


def test_topk_accuracy_direct_and_k_above_classes_skipped():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert topk_accuracy(logits, labels, ks=(1, 2, 5)) == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="class indices"):
        topk_accuracy(logits, torch.tensor([0, 1, 3]))


@pytest.mark.parametrize("names,templates,match", [
    ([], TEMPLATES, "empty"),
    (["cat", "dog", "Cat "], TEMPLATES, "duplicates.*Cat"),
    (["cat", ""], TEMPLATES, "non-blank"),
    (["cat", "dog"], [], "templates is empty"),
    (["cat", "dog"], ["a photo"], "exactly one"),
])
def test_bad_class_lists_and_templates(model, test_split, names, templates, match):
    with pytest.raises(ValueError, match=match):
        zero_shot_classify(model, test_split["image"][:2], names, templates)


def test_retrieval_both_directions_match_retrieval_metrics(model, test_split):
    res = evaluate_retrieval(model, test_split, ks=(1, 5, 10), batch_size=7)
    img = encode_images(model, test_split["image"])
    txt = encode_texts(model, test_split["caption"])
    assert res["n"] == len(test_split)
    assert res["image_to_text"] == pytest.approx(retrieval_metrics(img, txt))
    assert res["text_to_image"] == pytest.approx(retrieval_metrics(txt, img))
    # a perfectly aligned pair set retrieves itself in both directions
    perfect = bidirectional_retrieval(img, img.clone())
    assert perfect["image_to_text"]["recall@1"] == perfect["text_to_image"]["recall@1"] == 1.0
    with pytest.raises(ValueError, match="no column 'text'"):
        evaluate_retrieval(model, test_split, caption_column="text")


def test_zero_shot_cli_prints_ranked_labels(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    image = load_dataset_by_name("digits_captions", split="test")[0]["image"]
    image.save(tmp_path / "a.png")
    code = main(["zero-shot", "--model", str(tmp_path / "m"), "--image", str(tmp_path / "a.png"),
                 "--labels", "cat, dog,car", "--template", "a photo of a {}"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0] == str(tmp_path / "a.png")
    ranked = [line.split() for line in out[1:]]
    probs = [float(r[2]) for r in ranked]
    assert sorted(probs, reverse=True) == probs and sum(probs) == pytest.approx(1.0, abs=1e-3)
    expected = zero_shot_classify(model, [image], ["cat", "dog", "car"], ["a photo of a {}"]).probs[0]
    assert [r[1] for r in ranked] == [["cat", "dog", "car"][i] for i in expected.argsort(descending=True).tolist()]
    code = main(["zero-shot", "--model", str(tmp_path / "m"), "--image", str(tmp_path / "a.png"), "--labels", "cat,,dog"])
    assert code == 1 and "empty label" in capsys.readouterr().err
    code = main(["zero-shot", "--model", str(tmp_path / "m"), "--image", str(tmp_path / "nope.png"), "--labels", "cat"])
    assert code == 1 and "no such file" in capsys.readouterr().err


def test_encode_rejects_bad_inputs(model):
    with pytest.raises(ValueError, match="no images"):
        encode_images(model, [])
    with pytest.raises(ValueError, match="text 1"):
        encode_texts(model, ["fine", "   "])
    with pytest.raises(TypeError, match="not a dual encoder"):
        encode_images(torch.nn.Linear(2, 2), [Image.new("L", (8, 8))])


def test_zero_shot_cli_invert_scores_the_inverted_image(model, tmp_path, capsys):
    """--invert classifies 255 - pixels: the same probabilities as the inverted image given directly."""
    from PIL import ImageOps

    model.save_pretrained(tmp_path / "m")
    image = load_dataset_by_name("digits_captions", split="test")[0]["image"].convert("RGB")
    image.save(tmp_path / "a.png")
    ImageOps.invert(image).save(tmp_path / "inv.png")
    args = ["zero-shot", "--model", str(tmp_path / "m"), "--labels", "zero,one,two", "--json"]
    assert main([*args, "--image", str(tmp_path / "a.png"), "--invert"]) == 0
    inverted = json.loads(capsys.readouterr().out)[0]["labels"]
    assert main([*args, "--image", str(tmp_path / "inv.png")]) == 0
    direct = json.loads(capsys.readouterr().out)[0]["labels"]
    assert main([*args, "--image", str(tmp_path / "a.png")]) == 0
    plain = json.loads(capsys.readouterr().out)[0]["labels"]
    assert [(d["label"], round(d["probability"], 6)) for d in inverted] == [(d["label"], round(d["probability"], 6)) for d in direct]
    assert [d["probability"] for d in plain] != [d["probability"] for d in inverted]
