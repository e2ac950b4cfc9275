"""The language model: a Hugging Face causal LM over the shared vocabulary. No hand-written Transformer.

    model = build_lm(vocab, preset="small")     # a fresh LlamaForCausalLM sized for the vocabulary
    model = extend_lm(hf_model, vocab)          # any local causal LM whose text tokenizer is vocab's text part
    save_model(model, vocab, "models/demo")     # one folder: the HF model files + the vocabulary
    model, vocab = load_model("models/demo")    # AutoModelForCausalLM + SharedVocabulary on that folder

Presets (parameters counted with tied embeddings for a bytes + 4096-code image vocabulary, 4,366 ids):

    tiny    hidden 32, 2 layers, 4 heads, context 512       ~0.17 M   tests
    small   hidden 256, 4 layers, 4 heads, context 1536     ~4.3 M    the demo: a 1024-token prefix plus a query
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .vocab import SharedVocabulary

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 512},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 1536},
}  # fmt: skip


def build_lm(vocab: SharedVocabulary, preset: str = "small", **overrides: Any):
    """A new LlamaForCausalLM with one embedding row per vocabulary id (input and output tied)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown LM preset {preset!r}; choose one of {list(PRESETS)}")
    config = LlamaConfig(
        vocab_size=len(vocab),
        tie_word_embeddings=True,
        pad_token_id=vocab.pad_id,
        bos_token_id=vocab.bos_id,
        eos_token_id=vocab.eos_id,
        **{**PRESETS[preset], **overrides},
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = vocab.pad_id
    model.generation_config.bos_token_id = vocab.bos_id
    model.generation_config.eos_token_id = vocab.eos_id
    return model


def extend_lm(model: Any, vocab: SharedVocabulary):
    """Grow a pretrained causal LM's embeddings to the whole vocabulary; text behaviour is kept.

    The model's embedding rows must be exactly the vocabulary's text ids (the text tokenizer is the
    model's own, `HFTextTokenizer.from_hf(path)`; set its `size` when the model pads its
    embedding matrix). Existing rows are left untouched, so logits on text ids do not change. New rows
    (media codes and special tokens) are drawn from a normal distribution with the mean and
    covariance of the existing rows (Hugging Face's `mean_resizing`): they start at the scale of a
    typical text embedding, and for an untied head the new ids start with logits near the average,
    which keeps the next-token distribution over text close to the original's until training.
    """
    if not hasattr(model, "get_input_embeddings") or model.get_input_embeddings() is None:
        raise TypeError(f"extend_lm needs a Hugging Face causal LM, got {type(model).__name__}")
    rows = model.get_input_embeddings().weight.shape[0]
    text = vocab.layout.text_size
    if rows != text:
        raise ValueError(
            f"the model has {rows} embedding rows but the vocabulary's text part has {text} ids; "
            f"build the vocabulary with the model's own tokenizer (HFTextTokenizer, size={rows})"
        )
    return vocab.resize_model(model)


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """The forward keyword for a KV cache: `cache` in recent transformers 5.x, `past_key_values` before."""
    import inspect

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}


def output_cache(out: Any) -> Any:
    """The KV cache of a forward's output, under either of its names."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def check_model(model: Any, vocab: SharedVocabulary) -> None:
    """Refuse a model whose embedding size does not match the vocabulary."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != len(vocab):
        raise ValueError(
            f"model has {rows} embedding rows but the vocabulary has {len(vocab)} ids; "
            "use extend_lm(model, vocab) or the vocabulary the model was trained with"
        )


def context_length(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 2**31)


def save_model(model: Any, vocab: SharedVocabulary, folder: str | os.PathLike) -> Path:
    """Model (safetensors, HF layout) and vocabulary into one folder."""
    check_model(model, vocab)
    folder = Path(folder)
    model.save_pretrained(folder)
    vocab.save_pretrained(folder)
    return folder


def load_model(folder: str | os.PathLike, dtype: torch.dtype | None = None) -> tuple[Any, SharedVocabulary]:
    """(model, vocab) from a folder written by `save_model`; the model is in eval mode."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no model (no config.json)")
    vocab = SharedVocabulary.from_pretrained(folder)
    model = (
        AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        if dtype
        else AutoModelForCausalLM.from_pretrained(folder)
    )
    check_model(model, vocab)
    return model.eval(), vocab
