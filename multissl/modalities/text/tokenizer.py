"""Train a sentencepiece tokenizer (unigram or BPE) and save it as a transformers fast-tokenizer folder.

The folder loads with `AutoTokenizer.from_pretrained(DIR)` and has every special token our text
methods need: <pad> (id 0), <unk>, <s> (CLS / BOS), </s> (SEP / EOS) and <mask>. Encoding a single
text adds `<s> ... </s>` (BERT-style); causal-LM collators encode with add_special_tokens=False and
put </s> between documents themselves, and a causal LM's folder gets `causal_lm_tokenizer`'s copy
(no special tokens added, left padding). The sentencepiece model is converted by reading its pieces
and scores (and, for BPE, rebuilding the merges), so no protobuf dependency is needed; the trained
`spm.model` is kept in the folder for reference.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from multissl.atomic import atomic_dir

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
                  "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
NUM_SPECIAL = 5  # <pad> <unk> <s> </s> <mask>
MODEL_TYPES = ("unigram", "bpe")


def _clean_texts(texts: Iterable[str]) -> list[str]:
    """One sentence per line for sentencepiece: drop empty texts, flatten newlines."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is {type(text).__name__}, expected str")
        text = " ".join(text.split())
        if text:
            out.append(text)
    return out


def train_sentencepiece(texts: Iterable[str], vocab_size: int, model_type: str = "unigram",
                        character_coverage: float = 0.9995, seed_sentences: int = 1_000_000) -> bytes:
    """The serialized sentencepiece model trained on `texts` with our special-token layout."""
    import sentencepiece as spm

    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}; got {model_type!r}")
    if vocab_size <= NUM_SPECIAL:
        raise ValueError(f"vocab_size {vocab_size} is not larger than the {NUM_SPECIAL} special tokens "
                         f"({', '.join(sorted(set(SPECIAL_TOKENS.values())))}); use e.g. --vocab-size 1000")
    lines = _clean_texts(texts)
    if not lines:
        raise ValueError("the training corpus is empty (no non-blank text); pass files or a dataset with text in them")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, normalization_rule_name="nfkc", input_sentence_size=seed_sentences,
            shuffle_input_sentence=True, pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="<pad>",
            unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", user_defined_symbols=["<mask>"],
            hard_vocab_limit=False, minloglevel=2, num_threads=1,
        )
    except RuntimeError as err:  # e.g. "Vocabulary size is smaller than required_chars"
        raise ValueError(f"sentencepiece could not train a {model_type} vocabulary of {vocab_size}: {err}. "
                         "The vocabulary must at least hold every character of the corpus plus the special tokens; "
                         "raise --vocab-size or lower character_coverage") from err
    return model.getvalue()


def _bpe_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges recovered from a sentencepiece BPE vocabulary: a piece is the merge of any two pieces it splits into.

    Ranked by the merged piece's id (sentencepiece orders BPE pieces by merge order), then by the parts' ids.
    """
    merges = []
    for piece, rank in vocab.items():
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                merges.append((rank, vocab[left], vocab[right], left, right))
    merges.sort()
    return [(m[3], m[4]) for m in merges]


def fast_tokenizer_from_sentencepiece(model_bytes: bytes, model_type: str):
    """A transformers fast tokenizer equivalent to the sentencepiece model (same pieces, same ids)."""
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    unk = sp.unk_id()
    if model_type == "unigram":
        model = models.Unigram([(p, 0.0 if sp.is_control(i) or sp.is_unknown(i) else s) for i, (p, s) in enumerate(pieces)],
                               unk_id=unk, byte_fallback=False)
    else:
        vocab = {p: i for i, (p, _) in enumerate(pieces)}
        model = models.BPE(vocab, _bpe_merges(vocab), unk_token=pieces[unk][0], fuse_unk=True, byte_fallback=False)
    tok = Tokenizer(model)
    # sentencepiece's "nfkc" rule, then its default whitespace clean-up (trim, collapse runs of spaces).
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\A +| +\z"), ""),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, sp.piece_to_id(cls)), (sep, sp.piece_to_id(sep))],
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.add_special_tokens({"mask_token": SPECIAL_TOKENS["mask_token"]})  # <mask> is never split or normalised
    fast.model_max_length = 1_000_000
    return fast


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 8000, model_type: str = "unigram",
                    character_coverage: float = 0.9995) -> Path:
    """Train sentencepiece on `texts` and write a transformers tokenizer folder to out_dir (atomically)."""
    model_bytes = train_sentencepiece(texts, vocab_size, model_type, character_coverage)
    fast = fast_tokenizer_from_sentencepiece(model_bytes, model_type)

    def write(tmp: Path) -> None:
        fast.save_pretrained(tmp)
        (tmp / "spm.model").write_bytes(model_bytes)

    return atomic_dir(out_dir, write)


def read_text_files(paths: Iterable[str | Path]) -> list[str]:
    """Lines of local text files (blank lines dropped); a missing file is an error naming it."""
    lines: list[str] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer input {str(p)!r} is not a file")
        lines.extend(line for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
    return lines


@lru_cache(maxsize=8)
def get_tokenizer(spec: str):
    """A transformers tokenizer from a local folder or a `pkg:` folder; cached per process.

    A `trained:<dataset>/...` spec names a tokenizer trained on a dataset; multissl.data.tokenizers
    resolves it to its folder first (this layer never loads datasets).
    """
    from transformers import AutoTokenizer

    from multissl.paths import resolve_local_path

    if spec.startswith("trained:"):
        raise ValueError(f"tokenizer {spec!r}: resolve 'trained:' specs with multissl.data.tokenizers.load_tokenizer_spec")
    return AutoTokenizer.from_pretrained(str(resolve_local_path(spec)))


def tokenizer_spec_for(config) -> str:
    """The tokenizer a saved text model uses: the copy saved in its folder if any, else config.tokenizer_path."""
    folder = getattr(config, "name_or_path", "") or ""
    if folder and (Path(folder) / "tokenizer_config.json").is_file():
        return str(Path(folder).resolve())
    if not getattr(config, "tokenizer_path", None):
        raise ValueError(f"{type(config).__name__}: tokenizer_path is not set (a folder, 'pkg:...' or 'trained:...' spec)")
    return config.tokenizer_path


def causal_lm_tokenizer(tokenizer):
    """A copy of `tokenizer` for a causal LM's folder: encodes a prompt as training did and pads on the left.

    Causal-LM training frames every document as `text </s>` with add_special_tokens=False, so a prompt
    must not gain special tokens either: a BERT-style `<s> $A </s>` post-processor would end every
    prompt with EOS and the model would start a new document instead of continuing it. The copy
    adds no special tokens, names </s> as its BOS too (the only boundary the model ever saw before a
    document, as GPT-2 does with <|endoftext|>) and pads on the left, so a batch of prompts ends in
    real tokens where generation continues. The copy is a generic fast tokenizer (not e.g.
    BertTokenizer, whose loader would rebuild the [CLS]/[SEP] template from its own settings).
    """
    import copy

    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (python) tokenizer has no post-processor to replace; fix the padding only
        out = copy.deepcopy(tokenizer)
        out.padding_side = out.init_kwargs["padding_side"] = "left"
        return out
    backend = copy.deepcopy(backend)
    probe = "a"
    if tokenizer(probe)["input_ids"] != tokenizer(probe, add_special_tokens=False)["input_ids"]:
        backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
    specials = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    eos = specials.get("eos_token", specials.get("sep_token"))
    if eos is not None:
        specials["eos_token"] = specials["bos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left",
                                   model_max_length=tokenizer.model_max_length, **specials)


def check_vocab(config_vocab: int, tokenizer, spec: str) -> None:
    """A model whose embedding table is smaller than the tokenizer's vocabulary would index out of range."""
    if config_vocab < len(tokenizer):
        raise ValueError(f"the model's vocab_size {config_vocab} is smaller than tokenizer {spec!r} ({len(tokenizer)} tokens); "
                         "set backbone_config.vocab_size to at least the tokenizer size")
