"""Pretrained models from `transformers` on local disk, as the weights behind a tokenizer (hf-audio, hf-image).

    folder = resolve_folder("/models/encodec_24khz")      # or a repo id already in the Hugging Face cache
    model_type, config = read_model_config(folder)        # "encodec", the parsed config.json
    vq = load_submodule(folder, ChameleonVQVAE(vq_cfg), "vqmodel.")   # one part of a large checkpoint

A wrapped tokenizer (`PretrainedFolderTokenizer`) refers to its model folder instead of copying it:
`save_pretrained` writes only config.json, which holds the folder and the SHA-256 of what the tokenizer
uses (`weights_sha256`: the tensors as loaded and the model config that shapes them; for a multimodal
checkpoint, only its VQ-VAE's); loading it again reads the folder and refuses one whose weights or
config changed. `load_tokenizer(saved, path=..., device=...)` points a saved tokenizer at a moved
folder or another device (the SHA-256 still has to match). Nothing is ever
downloaded: a path is a local folder, or a repo id that the user has already put in the local Hugging
Face cache (`hf download <id>`); anything else is refused with that command in the message.

Left out on purpose: quantized or sharded-across-devices loading (a tokenizer is small next to its LM),
and `trust_remote_code` models (only the types transformers implements are wrapped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..storage import read_json, sha256_json, weight_files
from ..validate import all_finite, show
from .base import ModalityTokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_folder(path: Any) -> Path:
    """A local model folder: `path` itself, or the cached snapshot of the Hugging Face repo id `path`."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"a pretrained model path must be a folder or a cached repo id, got {show(path)}")
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise NotADirectoryError(f"pretrained model path {str(folder)!r} is a file; expected a model folder")
    if str(path).count("/") == 1 and not str(path).startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(str(path), local_files_only=True))
        except Exception as e:  # not in the cache (LocalEntryNotFoundError) or a malformed id
            raise FileNotFoundError(
                f"{str(path)!r} is neither a folder nor a repo id in the local Hugging Face cache; mmgist never "
                f"downloads: fetch it once with `hf download {path}` or pass the model folder"
            ) from e
    raise FileNotFoundError(f"pretrained model folder {str(folder)!r} does not exist")


def read_model_config(folder: Path) -> tuple[str, dict[str, Any]]:
    """(model_type, config) from a transformers model folder's config.json."""
    config = read_json(folder / "config.json", "model config")
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ValueError(
            f"{str(folder / 'config.json')!r} has no model_type: not a transformers model folder "
            f"(keys: {sorted(config)[:8] if isinstance(config, dict) else type(config).__name__})"
        )
    return config["model_type"], config


def load_submodule(folder: Path, module: torch.nn.Module, marker: str) -> torch.nn.Module:
    """Fill `module` with the tensors of a large checkpoint whose names contain `marker` ("vqmodel."),
    reading only those tensors (a 7B model's VQ-VAE without its language model). Strict: a missing or
    extra tensor is an error naming it."""
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                if marker in key:
                    state[key.split(marker, 1)[1]] = f.get_tensor(key)
    if not state:
        raise ValueError(f"{str(folder)!r}: no tensors named *{marker}* in its weights; is it the right model?")
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{str(folder)!r}: its {marker.rstrip('.')} tensors do not fit the config "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    return module


VOLATILE = ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures", "return_dict")


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over a transformers module's config (less VOLATILE keys, which do not change its outputs)
    and its tensors (names, dtypes, shapes, bytes), in name order."""
    config = {k: v for k, v in module.config.to_dict().items() if k not in VOLATILE}
    h = hashlib.sha256(sha256_json(config).encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class PretrainedFolderTokenizer(ModalityTokenizer):
    """A tokenizer around a transformers model in a folder. Subclasses set `model_types` (config.json
    model_type -> what is built) and implement `_build(folder, model_type, config)`, which returns the
    model as an nn.Module to hold as `self.model`.

    Its config dataclass has at least `path`, `model_type`, `dtype`, `device` and `weights_sha256`."""

    stores_weights = False  # save_pretrained writes config.json only: the weights stay in `path`
    opens_folders = True  # load_tokenizer(name, path=...) builds one from a model folder
    requires_pretrained = True
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        if not isinstance(cfg.path, (str, os.PathLike)) or not str(cfg.path):
            raise ValueError(f"{self.name}: needs path=, a model folder of type {list(self.model_types)}")
        if cfg.dtype not in DTYPES:
            raise ValueError(f"{self.name}: dtype must be one of {list(DTYPES)}, got {cfg.dtype!r}")
        folder = resolve_folder(cfg.path)
        if Path(cfg.path).expanduser().is_dir():  # a folder is recorded absolute; a cached repo id as given
            cfg.path = str(folder.resolve())
        model_type, hf_config = read_model_config(folder)
        if model_type not in self.model_types:
            raise ValueError(
                f"{str(folder)!r} holds a {model_type!r} model; {self.name} wraps the model types "
                f"{list(self.model_types)}"
            )
        if cfg.model_type and cfg.model_type != model_type:
            raise ValueError(
                f"{str(folder)!r} now holds a {model_type!r} model; this tokenizer was a {cfg.model_type!r}"
            )
        cfg.model_type = model_type
        weight_files(folder)  # each opens whole, or the file is named
        with _QuietTransformers():
            model = self._build(folder, model_type, hf_config)
        all_finite(model.state_dict(), f"the weights in {str(folder)!r}")
        sha = weights_sha256(model)
        if cfg.weights_sha256 and cfg.weights_sha256 != sha:
            raise ValueError(
                f"{str(folder)!r}: the model's weights or config changed since this tokenizer was saved (SHA-256 "
                f"{sha[:12]}..., recorded {cfg.weights_sha256[:12]}...); its codes would not mean the same"
            )
        cfg.weights_sha256 = sha
        self.model = model.to(device=torch.device(cfg.device), dtype=DTYPES[cfg.dtype]).eval()
        self.model.requires_grad_(False)

    def _build(self, folder: Path, model_type: str, config: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def fingerprint_config(self) -> dict[str, Any]:
        """Where the model runs does not change its codes (beyond float rounding): device is left out."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("device", "path")}

    def fingerprint(self) -> str:
        """SHA-256 over the type, config and the weights' SHA-256 (already in the config): cheap to recompute."""
        return sha256_json([self.name, self.fingerprint_config()])

    @classmethod
    def reopen_options(cls) -> tuple[str, ...]:
        """Options a saved tokenizer may be loaded with: where the model is and where it runs."""
        return ("path", "device")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, model_type={self.config.model_type!r}, path={self.config.path!r}"


class _QuietTransformers:
    """Silence transformers' "Loading weights" progress bars while a tokenizer loads its model."""

    def __enter__(self) -> None:
        from transformers.utils import logging

        self.was_enabled = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()

    def __exit__(self, *exc: Any) -> None:
        from transformers.utils import logging

        if self.was_enabled:
            logging.enable_progress_bar()
