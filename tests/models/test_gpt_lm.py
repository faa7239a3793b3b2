"""gpt_lm: loss equals transformers' causal-LM loss, the export loads with AutoModelForCausalLM and decodes."""
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from multissl.data import load_dataset_by_name
from multissl.decoding import generate
from multissl.models.export import save_encoder
from multissl.models.gpt_lm import GPTLMModel, make_gpt_lm_collator, tiny_gpt_lm_config


def rows(n=8):
    ds = load_dataset_by_name("python_docs", split="train").select(range(n))
    return [{"text": t} for t in ds["text"]]


def test_loss_matches_transformers_labels_loss_with_padding():
    torch.manual_seed(0)
    config = tiny_gpt_lm_config()
    model = GPTLMModel(config).eval()
    batch = make_gpt_lm_collator(config)(rows())
    assert (batch["attention_mask"] == 0).any()  # the last block is padded
    out = model(**batch)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    reference = model.backbone(**batch, labels=labels)
    assert torch.allclose(out.loss, reference.loss, atol=1e-6)
    assert torch.allclose(out.perplexity, reference.loss.exp(), atol=1e-4)


def test_tiny_config_is_small_and_trains():
    config = tiny_gpt_lm_config()
    model = GPTLMModel(config)
    batch = make_gpt_lm_collator(config)(rows())
    loss = model(**batch).loss
    loss.backward()
    # Speed is measured in benchmarks/, never timed in a test: a tiny config is tiny in parameters.
    assert sum(p.numel() for p in model.parameters()) < 300_000 and torch.isfinite(loss)


def test_export_is_a_plain_causal_lm_with_its_tokenizer(tmp_path):
    torch.manual_seed(0)
    model = GPTLMModel(tiny_gpt_lm_config()).eval()
    out = save_encoder(model, tmp_path / "export")
    code = ("import sys, transformers; m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1]); "
            "t = transformers.AutoTokenizer.from_pretrained(sys.argv[1]); assert 'multissl' not in sys.modules; "
            "print(type(m).__name__, t.eos_token)")
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["GPT2LMHeadModel", "</s>"]
    lm, tok = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    prompt = tok(["Return the"], add_special_tokens=False, return_tensors="pt")
    ours = generate(lm, prompt["input_ids"], prompt["attention_mask"], max_new_tokens=8)
    theirs = lm.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert torch.equal(ours, theirs)
    with torch.no_grad():  # the exported weights are the trained ones
        ids = prompt["input_ids"]
        assert torch.allclose(lm(ids).logits, model.backbone(ids).logits)


def test_saved_tokenizer_encodes_prompts_as_training_did_and_pads_left(tmp_path):
    model = GPTLMModel(tiny_gpt_lm_config())
    model.save_pretrained(tmp_path / "run")
    collate = make_gpt_lm_collator(model.config, train=False)
    for folder in (save_encoder(model, tmp_path / "export"), tmp_path / "run"):
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok("Return the value")["input_ids"]
        # Training frames a document as `text </s>`: the prompt is the text without the trailing </s>.
        assert ids == collate([{"text": "Return the value"}])["input_ids"][0, :-1].tolist()
        assert ids[-1] != tok.eos_token_id and tok.eos_token_id not in ids
        assert tok.padding_side == "left"
        batch = tok(["Return", "Return the value"], padding=True, return_tensors="pt")
        assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][:, -1].all()
        assert tok.bos_token_id == tok.eos_token_id == model.config.backbone_config["bos_token_id"]
