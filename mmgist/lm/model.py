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

import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..storage import atomic_folder, read_json, weight_files
from ..validate import all_finite, existing_dir, positive_int
from ..vocab import TOKENIZERS_DIR, VOCAB_FILE, SharedVocabulary

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Config fields that size the network: each must be a positive int (not a bool, not a string).
SIZE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "max_position_embeddings", "head_dim")  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 512},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 1536},
}  # fmt: skip


def build_lm(vocab: SharedVocabulary, preset: str = "small", **overrides: Any):
    """A new LlamaForCausalLM with one embedding row per vocabulary id (input and output tied)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if not isinstance(vocab, SharedVocabulary):
        raise TypeError(f"build_lm needs a SharedVocabulary, got {type(vocab).__name__}")
    if preset not in PRESETS:
        raise ValueError(f"unknown LM preset {preset!r}; choose one of {list(PRESETS)}")
    known = set(LlamaConfig().to_dict()) | set(inspect.signature(LlamaConfig.__init__).parameters)
    if unknown := sorted(set(overrides) - known):
        raise TypeError(f"build_lm got unknown LlamaConfig option(s) {unknown}; see transformers.LlamaConfig")
    sizes = {**PRESETS[preset], **overrides}
    check_sizes(sizes, "build_lm")
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


def extend_lm(model: PreTrainedModel, vocab: SharedVocabulary):
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
    if not isinstance(vocab, SharedVocabulary):
        raise TypeError(f"extend_lm needs a SharedVocabulary, got {type(vocab).__name__}")
    rows = model.get_input_embeddings().weight.shape[0]
    text = vocab.layout.text_size
    if rows != text:
        raise ValueError(
            f"the model has {rows} embedding rows but the vocabulary's text part has {text} ids; "
            f"build the vocabulary with the model's own tokenizer (HFTextTokenizer, size={rows})"
        )
    return vocab.resize_model(model)


def cache_kwargs(model: PreTrainedModel, cache: Any) -> dict[str, Any]:
    """The forward keyword for a KV cache: `cache` in recent transformers 5.x, `past_key_values` before."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}


def output_cache(out: Any) -> Any:
    """The KV cache of a forward's output, under either of its names."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def check_sizes(config: dict[str, Any], where: str) -> None:
    """Refuse network sizes that are not positive ints, or attention heads that do not divide evenly."""
    for name in SIZE_FIELDS:
        if config.get(name) is not None:
            positive_int(config[name], f"{where}: {name}")
    heads, kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    hidden = config.get("hidden_size")
    if heads and hidden and config.get("head_dim") is None and hidden % heads:
        raise ValueError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    if heads and kv and heads % kv:
        raise ValueError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")


def check_model(model: PreTrainedModel, vocab: SharedVocabulary) -> None:
    """Refuse a model that is not a Hugging Face LM, or whose embedding size does not match the vocabulary."""
    if not isinstance(vocab, SharedVocabulary):
        raise TypeError(f"expected a SharedVocabulary, got {type(vocab).__name__}")
    if not hasattr(model, "get_input_embeddings") or not callable(getattr(model, "generate", None)):
        raise TypeError(f"expected a Hugging Face causal LM (build_lm, load_model), got {type(model).__name__}")
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != len(vocab):
        raise ValueError(
            f"model has {rows} embedding rows but the vocabulary has {len(vocab)} ids; "
            "use extend_lm(model, vocab) or the vocabulary the model was trained with"
        )


def context_length(model: PreTrainedModel) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 2**31)


def _model_owns(name: str) -> bool:
    """The entries of a model folder that `save_model` writes (and so replaces); others (a README) are kept."""
    if name in ("config.json", "generation_config.json", VOCAB_FILE, TOKENIZERS_DIR):
        return True
    return name.startswith(("model.", "model-", "pytorch_model")) and name.endswith((".safetensors", ".bin", ".json"))


def save_model(model: PreTrainedModel, vocab: SharedVocabulary, folder: str | os.PathLike) -> Path:
    """Model (safetensors, HF layout) and vocabulary into one folder.

    The folder is written beside the old one and swapped in whole (`mmgist.storage.atomic_folder`):
    a save killed at any point leaves the previous model loadable. Other files (a README card) are kept."""
    check_model(model, vocab)
    folder = Path(folder)
    with atomic_folder(folder, owns=_model_owns) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        vocab.write_files(tmp)
    return folder


def model_dirs() -> list[Path]:
    """The folders searched for shipped models by name, in order: $MMGIST_MODELS, the repository's models/,
    and <prefix>/share/mmgist/models (where a wheel install puts them)."""
    dirs = [Path(p) for p in os.environ.get("MMGIST_MODELS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    dirs.append(Path(sys.prefix) / "share" / "mmgist" / "models")
    return dirs


def list_models() -> list[str]:
    """Names of the shipped models found in `model_dirs`, which `load_model` takes from any folder."""
    return sorted({p.name for d in model_dirs() if d.is_dir() for p in d.iterdir() if (p / VOCAB_FILE).is_file()})


def find_model(name_or_folder: str | os.PathLike) -> Path:
    """A model folder: `name_or_folder` itself when it exists, else the shipped model of that name."""
    path = Path(name_or_folder)
    if path.exists() or len(path.parts) != 1:
        return path
    for d in model_dirs():
        if (d / path.name / VOCAB_FILE).is_file():
            return d / path.name
    raise FileNotFoundError(
        f"model folder {str(name_or_folder)!r} does not exist, and no shipped model has that name "
        f"(shipped: {list_models()}; searched {[str(d) for d in model_dirs()]})"
    )


def load_model(folder: str | os.PathLike, dtype: torch.dtype | None = None) -> tuple[Any, SharedVocabulary]:
    """(model, vocab) from a folder written by `save_model`, or a shipped model by name ("demo-photo-qa", from
    any working folder: `model_dirs`); the model is in eval mode.

    Refused with the folder named: a missing or malformed config.json (sizes that are not positive
    ints), weights only in a pickle file (never unpickled), a corrupt safetensors file, weights that
    do not fit the config (missing, extra or differently shaped tensors: transformers would only log
    them) and weights holding NaN or inf."""
    from transformers import AutoModelForCausalLM

    folder = existing_dir(find_model(folder), "model folder")
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{str(folder)!r} holds no model (no config.json)")
    config = read_json(folder / "config.json", "model config")
    if not isinstance(config, dict):
        raise ValueError(f"{str(folder / 'config.json')!r} must hold a JSON object, got {type(config).__name__}")
    check_sizes(config, repr(str(folder / "config.json")))
    weight_files(folder)  # each opens whole, or the file is named
    vocab = SharedVocabulary.from_pretrained(folder)
    if config.get("vocab_size") is not None and config["vocab_size"] != len(vocab):
        raise ValueError(
            f"{str(folder / 'config.json')!r}: vocab_size {config['vocab_size']} disagrees with the folder's "
            f"vocabulary of {len(vocab)} ids; the two were saved from different models"
        )
    kwargs: dict[str, Any] = {"use_safetensors": True, "output_loading_info": True, "ignore_mismatched_sizes": True}
    if dtype:
        kwargs["dtype"] = dtype
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its load report would only log what is refused below
    hf_logging.disable_progress_bar()
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, TypeError, RuntimeError, KeyError, AttributeError) as e:
        raise ValueError(f"model folder {str(folder)!r} cannot be loaded: {type(e).__name__}: {e}") from e
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    mismatched = [m if isinstance(m, str) else f"{m[0]} {tuple(m[1])} (config: {tuple(m[2])})" for m in
                  info.get("mismatched_keys") or []]  # fmt: skip
    problems = {
        "missing": sorted(info.get("missing_keys") or []),
        "unexpected": sorted(info.get("unexpected_keys") or []),
        "shape mismatch": sorted(mismatched),
    }
    if any(problems.values()):
        said = "; ".join(
            f"{k} {v[:3]}" + (f" and {len(v) - 3} more" if len(v) > 3 else "") for k, v in problems.items() if v
        )
        raise ValueError(f"model folder {str(folder)!r}: the weights do not fit config.json: {said}")
    all_finite(dict(model.named_parameters()), f"model folder {str(folder)!r}")
    check_model(model, vocab)
    return model.eval(), vocab


@contextmanager
def frozen(model: PreTrainedModel) -> Iterator[None]:
    """The model in eval mode with no parameter requiring a gradient; its flags and mode restored after."""
    flags, was_training = [p.requires_grad for p in model.parameters()], model.training
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
