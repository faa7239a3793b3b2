"""`multissl generate --model DIR --prompt "..." --strategy greedy|sample|top-k|top-p|beam`: stream a continuation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `generate` sub-command."""
    from multissl.decoding.strategies import STRATEGIES

    p = subparsers.add_parser("generate", help="continue a prompt with a causal LM (our decoding, KV cache)")
    p.add_argument("--model", required=True, help="a gpt_lm run folder (RUN/final), its export, or any local HF causal LM folder")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--strategy", default="greedy", help=f"one of: {', '.join(STRATEGIES)} (default greedy)")
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--num-beams", type=int, default=None, help="beams for --strategy beam (default 4)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="top-k for sampling (default 40 for top-k)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus mass for sampling (default 0.9 for top-p)")
    p.add_argument("--length-penalty", type=float, default=None, help="beam score = log p / length ** penalty")
    p.add_argument("--no-repeat-ngram-size", type=int, default=None, help="forbid repeating any n-gram of this size")
    p.add_argument("--num-return-sequences", type=int, default=None, help="beams / samples to print (default 1)")
    p.add_argument("--min-tokens-to-keep", type=int, default=None, help="top-k / top-p never keep fewer tokens (default 1)")
    p.add_argument("--early-stopping", choices=["true", "false", "never"], default=None,
                   help="beam search: stop when num_beams hypotheses are done (true), on a length heuristic (false, "
                        "default) or only when no better one is possible (never), as in transformers")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.set_defaults(func=run)


def load_causal_lm(model_dir: str):
    """(causal LM, tokenizer) from a multissl gpt_lm folder or a plain HF causal-LM folder (local only)."""
    from transformers import AutoModelForCausalLM

    from multissl.data.tokenizers import load_tokenizer_spec
    from multissl.modalities.text.tokenizer import tokenizer_spec_for

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir!r}: no config.json (expected RUN/final, an export, or a HF causal LM folder)")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise ValueError(f"--model {model_dir!r}: {path / 'config.json'} is not a JSON object ({err})") from err
    if model_type.startswith("multissl_"):
        from multissl.models.loading import load_model

        model = load_model(path)
        if not hasattr(model, "backbone") or not hasattr(model.backbone, "generate"):
            raise ValueError(f"--model {model_dir!r} is a {model_type} model, not a causal LM; train gpt_lm to generate")
        return model.backbone.eval(), load_tokenizer_spec(tokenizer_spec_for(model.config))
    return AutoModelForCausalLM.from_pretrained(path).eval(), load_tokenizer_spec(str(path.resolve()))


def run(args: argparse.Namespace) -> int:
    """Encode the prompt, decode with our generate(), stream (greedy/sampling) or print (beam) the text."""
    from multissl.decoding.strategies import check_decoding_args

    check_decoding_args(args.strategy, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                        num_return_sequences=args.num_return_sequences, min_tokens_to_keep=args.min_tokens_to_keep,
                        no_repeat_ngram_size=args.no_repeat_ngram_size, top_k=args.top_k, top_p=args.top_p,
                        temperature=args.temperature, length_penalty=args.length_penalty)  # before any model loads
    import torch
    from transformers import TextStreamer

    from multissl.decoding import generate, strategy_kwargs

    kwargs = strategy_kwargs(args.strategy, num_beams=args.num_beams, temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, length_penalty=args.length_penalty,
                             no_repeat_ngram_size=args.no_repeat_ngram_size,
                             num_return_sequences=args.num_return_sequences, min_tokens_to_keep=args.min_tokens_to_keep,
                             early_stopping={"true": True, "false": False}.get(args.early_stopping, args.early_stopping))
    model, tok = load_causal_lm(args.model)
    ids = tok(args.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:  # an empty prompt starts from the beginning-of-text token
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = torch.tensor([[start]])
    single = kwargs.get("num_return_sequences", 1) == 1
    streamer = TextStreamer(tok, skip_special_tokens=True) if single else None
    out = generate(model, ids, max_new_tokens=args.max_new_tokens, generator=torch.Generator().manual_seed(args.seed),
                   streamer=streamer, **kwargs)
    if not single:
        for i, row in enumerate(out):
            print(f"[{i}] {tok.decode(row, skip_special_tokens=True)}")
    return 0
