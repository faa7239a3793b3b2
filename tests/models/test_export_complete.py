"""Every registered method's export (and final/ folder) is complete: weights that load with an empty missing /
unexpected-keys report, what inference needs for its modality, and a model card in the Hub's format."""
import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

import multissl
from multissl.models.export import save_final
from multissl.models.model_card import CardContext
from multissl.registry import METHODS

METHOD_NAMES = sorted(METHODS)
multissl.register_auto_classes()
# What an export of each modality must hold beside config.json + model.safetensors + README.md.
NEEDS = {"image": ["preprocessor_config.json"], "image-text": ["preprocessor_config.json"],
         "audio": ["preprocessor_config.json"],
         "text": ["tokenizer.json", "tokenizer_config.json"]}
SENTENCE_ENCODERS = {"simcse", "bert_mlm"}  # text encoders whose export is also a sentence-transformers folder


def _auto_class(folder):
    """The auto class of the export's architecture: the class whose load must be exact (task heads included)."""
    arch = json.loads((folder / "config.json").read_text())["architectures"][0]
    if arch.endswith("ForMaskedLM"):
        return AutoModelForMaskedLM
    if arch.endswith("LMHeadModel") or arch.endswith("ForCausalLM"):
        return AutoModelForCausalLM
    return AutoModel


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{method: export folder} of an untrained tiny model of every method, written through save_encoder."""
    root, out = tmp_path_factory.mktemp("exports"), {}
    context = CardContext(recipe={"method": "x", "train": {"max_steps": 1}}, dataset="digits",
                          eval_results={"knn": {"protocol": "knn", "split": "validation", "accuracy": 0.5, "k": 20}})
    for name in METHOD_NAMES:
        torch.manual_seed(0)
        model = METHODS[name].model_class(METHODS[name].model_class.tiny_config()).eval()
        out[name] = model.save_encoder(root / name, context)
    return out


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_export_loads_with_no_missing_or_unexpected_weight(name, exports):
    folder = exports[name]
    model, info = _auto_class(folder).from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], (name, info)
    if name == "bert_mlm":  # the bare encoder of an MLM export: nothing missing once the pooler is left out
        _, info = AutoModel.from_pretrained(folder, output_loading_info=True, add_pooling_layer=False)
        assert not info["missing_keys"], info


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_export_holds_what_inference_needs_and_a_hub_model_card(name, exports):
    folder, modality = exports[name], METHODS[name].modality
    for file in ["config.json", "model.safetensors", "README.md", *NEEDS[modality]]:
        assert (folder / file).is_file(), f"{name}: export lacks {file}"
    assert not list(folder.glob("*.bin")) and not list(folder.glob(".*tmp*"))
    if name in SENTENCE_ENCODERS:
        assert (folder / "modules.json").is_file() and (folder / "1_Pooling" / "config.json").is_file()
    card = ModelCard.load(folder / "README.md")  # the Hub's own parser
    data = card.data.to_dict()
    assert "multissl" in data["tags"] and name in data["tags"] and data["pipeline_tag"]
    assert data["library_name"] in ("transformers", "sentence-transformers")
    assert data["datasets"] == ["digits"] and data["license"] == "cc-by-4.0"  # data_cards/digits.md's licence
    assert data["metrics"] == ["accuracy"]
    result = data["model-index"][0]["results"][0]
    assert result["metrics"][0]["value"] == 0.5 and result["dataset"]["split"] == "validation"
    assert "## Intended use" in card.text and "## Training recipe" in card.text and "max_steps: 1" in card.text


def test_mae_export_pooler_is_the_cls_state_not_random_weights(exports):
    folder = exports["mae"]
    vit = AutoModel.from_pretrained(folder).eval()
    size = vit.config.image_size
    with torch.no_grad():
        out = vit(pixel_values=torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
    assert "mean of `last_hidden_state[:, 1:]`" in (folder / "README.md").read_text()  # what MAE's embed is


def test_cpc_export_is_a_standard_hubert_with_cpc_kernels_and_strides(exports):
    cfg = json.loads((exports["cpc"] / "config.json").read_text())
    tiny = METHODS["cpc"].model_class.tiny_config()
    assert cfg["model_type"] == "hubert" and cfg["conv_kernel"] == list(tiny.conv_kernels)
    assert cfg["conv_stride"] == list(tiny.conv_strides) and cfg["feat_extract_norm"] == "layer"
    assert json.loads((exports["cpc"] / "preprocessor_config.json").read_text())["sampling_rate"] == tiny.sampling_rate


def test_cpc_export_refuses_a_norm_without_a_standard_counterpart():
    from multissl.models.cpc import CPCConfig, CPCModel

    model = CPCModel(CPCConfig(encoder_dim=8, context_dim=8, prediction_steps=2, num_negatives=2, norm="batch"))
    with pytest.raises(ValueError, match="norm='batch'.*only norm='layer'"):
        model.encoder_for_export()


@pytest.mark.parametrize("name", ["simclr", "cpc", "simcse", "clip"])
def test_final_folder_holds_processor_tokenizer_and_card(name, tmp_path):
    """What the loop writes into final/ (save_final inside atomic_dir): the multissl model + extras + README.md."""
    spec = METHODS[name]
    model = spec.model_class(spec.model_class.tiny_config())
    save_final(model, tmp_path, context=CardContext(recipe={"method": name}, dataset=spec.default_dataset))
    for file in ["config.json", "model.safetensors", "README.md", *NEEDS[spec.modality]]:
        assert (tmp_path / file).is_file(), f"{name}: final/ lacks {file}"
    assert not (tmp_path / "modules.json").exists()  # final/ is a multissl folder: no sentence-transformers layout
    data = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert data["library_name"] == "multissl" and data["datasets"] == [spec.default_dataset]
    assert type(multissl.load(str(tmp_path))) is spec.model_class


def test_saving_a_clip_folder_leaves_the_shared_tokenizer_unmarked(tmp_path):
    """CLIP's final/ gains a CLIPProcessor; building it must not mark the process-wide cached tokenizer, or every text
    export written later in the process would name CLIPProcessor as its processor (and sentence-transformers fails)."""
    from transformers import AutoProcessor

    from multissl.modalities.text.sentences import load_tokenizer

    clip = METHODS["clip"].model_class(METHODS["clip"].model_class.tiny_config())
    clip.save_pretrained(tmp_path / "clip")
    assert type(AutoProcessor.from_pretrained(tmp_path / "clip")).__name__ == "CLIPProcessor"
    load_tokenizer(clip.config.tokenizer_path).save_pretrained(tmp_path / "tok")
    assert "processor_class" not in json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
