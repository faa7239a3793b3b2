"""A trained run end to end: final/ is written with its processor and a model card (which gains eval.json's metrics
once the end-of-run evaluation is done), and `multissl export` carries the run's recipe and metrics into the export's
card; the exported timm backbone loads in plain transformers."""
import json

from huggingface_hub import ModelCard

from multissl.cli import main
from multissl.models.base import config_keys
from multissl.registry import METHODS
from multissl.training import recipe_from_dict, train


def _recipe(name: str, **model) -> dict:
    spec = METHODS[name]
    params = config_keys(spec.config_class)
    tiny = {k: v for k, v in spec.model_class.tiny_config().to_diff_dict().items() if k in params}
    return {"method": name, "dataset": "digits", "model": {**tiny, **model},
            "train": {"max_steps": 1, "batch_size": 8, "log_every": 1, "warmup_steps": 0, "progress": False},
            "eval": {"knn": {"k": 5}}}


def test_final_card_gains_eval_metrics_and_export_carries_recipe_and_metrics(tmp_path, capsys):
    result = train(recipe_from_dict(_recipe("simclr")), tmp_path / "run")
    final = result.final_dir
    assert (final / "preprocessor_config.json").is_file() and not list(tmp_path.glob("run/.final*"))
    card = ModelCard.load(final / "README.md")
    accuracy = json.loads((tmp_path / "run" / "eval.json").read_text())["knn"]["accuracy"]
    value = card.data.to_dict()["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert abs(value - accuracy) < 1e-6 and card.data.to_dict()["library_name"] == "multissl"

    assert main(["export", "--model", str(final), "--out", str(tmp_path / "export")]) == 0
    assert "exported encoder" in capsys.readouterr().out
    exported = ModelCard.load(tmp_path / "export" / "README.md")
    data = exported.data.to_dict()
    assert data["library_name"] == "transformers" and data["datasets"] == ["digits"] and data["license"] == "cc-by-4.0"
    assert abs(data["model-index"][0]["results"][0]["metrics"][0]["value"] - accuracy) < 1e-6
    assert "method: simclr" in exported.text and "k=5" in exported.text  # the recipe and the protocol settings


def test_timm_backbone_trains_and_exports_as_a_timm_wrapper(tmp_path):
    """backbone_config: {model_type: timm_wrapper, architecture: ...} at random init (no download) trains, and its
    export is a TimmWrapperModel that plain transformers loads with nothing missing."""
    from transformers import AutoModel

    timm = {"model_type": "timm_wrapper", "architecture": "test_resnet"}
    recipe = _recipe("simclr", backbone_config=timm)
    recipe.pop("eval")
    result = train(recipe_from_dict(recipe), tmp_path / "run")
    assert main(["export", "--model", str(result.final_dir), "--out", str(tmp_path / "export")]) == 0
    model, info = AutoModel.from_pretrained(tmp_path / "export", output_loading_info=True)
    assert type(model).__name__ == "TimmWrapperModel" and not any(info.values()), info
    assert json.loads((tmp_path / "export" / "config.json").read_text())["architecture"] == "test_resnet"


def test_a_local_timm_wrapper_folder_is_a_backbone_path(tmp_path):
    """A local folder holding a transformers TimmWrapperModel (e.g. an earlier export) as backbone_path: its weights
    are the starting point."""
    import torch
    from transformers import TimmWrapperConfig, TimmWrapperModel

    from multissl.models.simclr import SimCLRConfig, SimCLRModel

    torch.manual_seed(0)
    TimmWrapperModel(TimmWrapperConfig(architecture="test_resnet")).save_pretrained(tmp_path / "timm")
    model = SimCLRModel.build(SimCLRConfig(backbone_path=str(tmp_path / "timm"), image_size=16, projection_dim=8))
    saved = TimmWrapperModel.from_pretrained(tmp_path / "timm").state_dict()
    assert saved and all(torch.equal(model.backbone.state_dict()[k], v) for k, v in saved.items())


def test_a_folder_saved_by_timm_itself_is_a_backbone_path(tmp_path):
    """timm's own save_for_hf folder (num_classes inside model_args) loads as a headless backbone with its weights."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    from multissl.models.simclr import SimCLRConfig, SimCLRModel

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False)
    (tmp_path / "timm").mkdir()
    save_for_hf(net, tmp_path / "timm")
    assert "num_classes" in json.loads((tmp_path / "timm" / "config.json").read_text())["model_args"]
    model = SimCLRModel.build(SimCLRConfig(backbone_path=str(tmp_path / "timm"), image_size=16, projection_dim=8))
    ours = {k.removeprefix("timm_model."): v for k, v in model.backbone.state_dict().items()}
    shared = [k for k in net.state_dict() if k in ours]
    assert len(shared) > 10 and all(torch.equal(ours[k], net.state_dict()[k]) for k in shared)
