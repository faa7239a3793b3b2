"""multissl's protocols as local `evaluate` modules: loaded by path they give exactly the multissl functions' results,
stream through add_batch, and never touch the network."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multissl.evaluation.evaluate_modules import MODULES, module_path
from multissl.evaluation.knn import knn_accuracy
from multissl.evaluation.linear_probe import linear_probe_accuracy
from multissl.evaluation.perplexity import perplexity, token_nll
from multissl.evaluation.retrieval import retrieval_metrics
from multissl.evaluation.zero_shot import topk_accuracy


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """evaluate.load by path, with evaluate's module copies and metric caches in a temporary folder."""
    root = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate.config, "HF_MODULES_CACHE", root / "modules")
        yield lambda name, *args: evaluate.load(module_path(name), *args, cache_dir=str(root / "metrics"))


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _labels(n: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


def test_module_path_names_a_folder_with_its_script():
    for name in MODULES:
        folder = Path(module_path(name))
        assert (folder / f"{name}.py").is_file()
    assert sorted(p.name for p in Path(module_path(MODULES[0])).parent.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(MODULES)
    with pytest.raises(ValueError, match="name must be one of"):
        module_path("accuracy")


def test_knn_accuracy_equals_multissl_knn_and_streams(load):
    train_x, train_y = _features(40, 8, 0), _labels(40, 4, 1)
    test_x, test_y = _features(15, 8, 2), _labels(15, 4, 3)
    expected = knn_accuracy(train_x, train_y, test_x, test_y, k=5, temperature=0.07)
    metric = load("knn_accuracy")
    got = metric.compute(test_features=test_x.numpy(), test_labels=test_y.numpy(), train_features=train_x,
                         train_labels=train_y, k=5, temperature=0.07)
    assert got == {"accuracy": expected}
    for start in (0, 6):  # two uneven batches
        end = 6 if start == 0 else 15
        metric.add_batch(test_features=test_x[start:end].tolist(), test_labels=test_y[start:end].tolist())
    assert metric.compute(train_features=train_x.tolist(), train_labels=train_y.tolist(), k=5, temperature=0.07) == got
    with pytest.raises(ValueError, match="train_features"):
        metric.compute(test_features=test_x.numpy(), test_labels=test_y.numpy())


def test_linear_probe_equals_multissl_probe(load):
    train_x, train_y = _features(30, 5, 4), _labels(30, 3, 5)
    test_x, test_y = _features(12, 5, 6), _labels(12, 3, 7)
    expected = linear_probe_accuracy(train_x, train_y, test_x, test_y, C=0.5, max_iter=200)
    metric = load("linear_probe")
    metric.add_batch(test_features=test_x[:7].numpy(), test_labels=test_y[:7].numpy())
    metric.add_batch(test_features=test_x[7:].numpy(), test_labels=test_y[7:].numpy())
    assert metric.compute(train_features=train_x, train_labels=train_y, C=0.5, max_iter=200) == expected


def test_zero_shot_topk_equals_zero_shot_scoring(load):
    images, classes, labels = _features(20, 6, 8), _features(5, 6, 9), _labels(20, 5, 10)
    # zero_shot_classify's logits: a scale times cosine similarity of unit image rows and unit class rows
    logits = 100.0 * F.normalize(images, dim=1) @ F.normalize(classes, dim=1).T  # [N, C]
    expected = topk_accuracy(logits, labels, (1, 3))
    # and, independently, the rank of each image's label among the classes by cosine similarity
    cos = (images / images.norm(dim=1, keepdim=True)).numpy() @ (classes / classes.norm(dim=1, keepdim=True)).numpy().T
    ranks = np.array([(cos[i] > cos[i, labels[i]]).sum() for i in range(20)])
    assert expected == pytest.approx({"top1": float((ranks < 1).mean()), "top3": float((ranks < 3).mean())})
    metric = load("zero_shot_topk")
    metric.add_batch(image_embeddings=images[:9].numpy(), labels=labels[:9].numpy())
    metric.add_batch(image_embeddings=images[9:].numpy(), labels=labels[9:].numpy())
    assert metric.compute(class_embeddings=classes, k=(1, 3)) == expected
    assert metric.compute(image_embeddings=images.numpy(), labels=labels.numpy(), class_embeddings=classes.numpy(), k=1) == {"top1": expected["top1"]}
    with pytest.raises(ValueError, match="same P"):
        metric.compute(image_embeddings=images.numpy(), labels=labels.numpy(), class_embeddings=classes[:, :4])


def test_retrieval_recall_equals_retrieval_metrics(load):
    queries = _features(16, 4, 11)
    gallery = queries + 0.8 * _features(16, 4, 12)  # noisy matches: recall strictly between 0 and 1
    expected = retrieval_metrics(queries, gallery, ks=(1, 3))
    assert 0 < expected["recall@1"] < 1
    metric = load("retrieval_recall")
    for start in range(0, 16, 5):
        metric.add_batch(query_embeddings=queries[start:start + 5].numpy(), gallery_embeddings=gallery[start:start + 5].numpy())
    assert metric.compute(k=(1, 3)) == expected
    assert metric.compute(query_embeddings=queries.numpy(), gallery_embeddings=gallery.numpy(), k=2, normalize=False) == \
        retrieval_metrics(queries, gallery, ks=(2,), normalize=False)


class _TinyLM(torch.nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 6):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = torch.nn.Embedding(vocab, dim), torch.nn.Linear(dim, vocab)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.head(self.embed(input_ids))})()  # [B, T, V]


def _collate(rows):
    return {"input_ids": torch.tensor([r["input_ids"] for r in rows]), "attention_mask": torch.tensor([r["attention_mask"] for r in rows])}


def test_perplexity_equals_multissl_perplexity(load):
    import datasets

    ids = _labels(5 * 7, 11, 13).view(5, 7)
    mask = torch.ones(5, 7, dtype=torch.long)
    mask[1, 4:], mask[3, 2:] = 0, 0  # padded sequences: their tail is not predicted
    data = datasets.Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": mask.tolist()})
    model = _TinyLM()
    expected = perplexity(model, data, _collate, batch_size=2, progress=False)
    metric = load("perplexity")
    with torch.no_grad():
        for i in range(5):  # one row per sequence: its summed NLL and token count
            nll, n = token_nll(model(ids[i : i + 1]).logits, {"input_ids": ids[i : i + 1], "attention_mask": mask[i : i + 1]})
            metric.add_batch(nll=[float(nll)], tokens=[int(n)])
        got = metric.compute()
        logits = model(ids).logits[:, :-1]  # [B, T-1, V]
        per_token = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")[mask[:, 1:].flatten() == 1]
    assert got["tokens"] == expected["tokens"] == int(mask[:, 1:].sum())
    assert got["nll"] == pytest.approx(expected["nll"], rel=1e-6)  # float32 row sums vs batch sums
    assert got["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    per = load("perplexity", "per_token").compute(nll=per_token.double().numpy())
    assert per["tokens"] == expected["tokens"]
    assert per["perplexity"] == pytest.approx(math.exp(float(per_token.double().mean())), rel=1e-12)
    assert per["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    with pytest.raises(ValueError, match="at least one predicted token"):
        metric.compute(nll=[1.0], tokens=[0])
    with pytest.raises(ValueError, match="config_name"):
        load("perplexity", "mean")


_NO_NETWORK_SCRIPT = r"""
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled in this test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import evaluate
from multissl.evaluation.evaluate_modules import module_path
out = {}
m = evaluate.load(module_path("knn_accuracy"))
out["knn"] = m.compute(test_features=[[1.0, 0.0]], test_labels=[0], train_features=[[1.0, 0.1], [0.0, 1.0]], train_labels=[0, 1], k=1)
m = evaluate.load(module_path("linear_probe"))
out["probe"] = m.compute(test_features=[[1.0], [-1.0]], test_labels=[1, 0], train_features=[[2.0], [1.0], [-1.0], [-2.0]],
                         train_labels=[1, 1, 0, 0])["accuracy"]
out["zs"] = evaluate.load(module_path("zero_shot_topk")).compute(image_embeddings=[[1.0, 0.0]], labels=[0], class_embeddings=[[1.0, 0.0], [0.0, 1.0]], k=1)
out["rr"] = evaluate.load(module_path("retrieval_recall")).compute(query_embeddings=[[1.0, 0.0]], gallery_embeddings=[[1.0, 0.0]], k=1)["recall@1"]
out["ppl"] = evaluate.load(module_path("perplexity")).compute(nll=[0.0], tokens=[3])["perplexity"]
print("RESULT", json.dumps({"out": out, "attempts": attempts}))
"""


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE=1", "no-offline-flag"])
def test_loading_by_path_never_touches_the_network(tmp_path, offline):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    # Any connection attempt is recorded and refused, and a proxy that points nowhere catches HTTP clients that bypass it.
    env.update(HF_HOME=str(tmp_path / "hf"), HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", ALL_PROXY="http://127.0.0.1:9", NO_PROXY="")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    res = subprocess.run([sys.executable, "-c", _NO_NETWORK_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.split("RESULT", 1)[1])
    assert report["attempts"] == []
    assert report["out"] == {"knn": {"accuracy": 1.0}, "probe": 1.0, "zs": {"top1": 1.0}, "rr": 1.0, "ppl": 1.0}
