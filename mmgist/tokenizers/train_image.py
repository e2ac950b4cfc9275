"""Training an image tokenizer on any folder of images: `train_image_tokenizer` and its CLI.

    mmgist train-tokenizer image --data photos/train --preset f8 --steps 3000 --out tokenizers/image-vq-f8
    torchrun --nproc_per_node 2 -m mmgist.cli train-tokenizer image --data ... (DDP, gloo on CPU)

Random square crops (flipped at random; rescaled and colour-augmented with `augment`, see
`mmgist.datasets.CropAugment`) from every image in the folder, through the shared loop in
`mmgist.train` (progress bar, checkpoints, resume). The trained tokenizer is saved to `out`
(config.json + model.safetensors) with `training.json` beside it: data, steps, wall time, final metrics.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.images import CropAugment, RandomCrops, image_files
from ..train import TrainResult, init_distributed, schedule, train_and_save
from ..validate import positive_int
from .code_space import check_code_space, code_space
from .image import ImageVQTokenizer
from .registry import create_tokenizer, load_tokenizer

WATCHED_CROPS = 8  # crops of the fixed batch whose code space every log step records
WATCH_FROM = 50  # steps before `min_live_dims` is enforced (k-means has just placed the codes)


@dataclasses.dataclass
class ImageTrainResult:
    tokenizer: ImageVQTokenizer
    train: TrainResult
    out: Path


def train_image_tokenizer(
    data: str | os.PathLike,
    out: str | os.PathLike,
    preset: str = "f8",
    steps: int = 3000,
    batch_size: int = 16,
    crop_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    augment: CropAugment | None = None,
    init: str | os.PathLike | None = None,
    min_live_dims: int | None = None,
    min_colour_r2: float | None = None,
    **config: Any,
) -> ImageTrainResult:
    """Train an `image-vq` tokenizer on the images in `data`; save it to `out` (on rank 0).

    `config` overrides fields of ImageVQConfig (quantizer="fsq", codebook_size=8192, ...). `init`
    (a zoo name or folder) starts from a trained tokenizer's weights: every tensor whose name and
    shape match is copied (the encoder and decoder always; the codebook when the quantizer is the same).
    Checkpoints go to `checkpoint_dir` (default: out/../.<name>-run) so `out` only ever holds a
    finished tokenizer; rerunning the same call after a kill resumes.
    Every log step records the code space on a fixed batch (`code_space`: live dimensions, variance shares, the
    R^2 of L*, a*, b*); with `min_live_dims` or `min_colour_r2`, training stops with CodeSpaceCollapsedError once
    fewer dimensions are live or the lookup keeps less of a* or b* (from step WATCH_FROM on).
    """
    positive_int(batch_size, "train_image_tokenizer batch_size")
    positive_int(crop_size, "train_image_tokenizer crop_size")
    if min_colour_r2 is not None and not 0 < min_colour_r2 < 1:
        raise ValueError(f"min_colour_r2 must be in (0, 1), got {min_colour_r2!r}")
    _, world = init_distributed()
    out = Path(out)
    files = image_files(data)
    torch.manual_seed(seed)  # identical initial weights on every rank
    tok = create_tokenizer("image-vq", preset=preset, **config)
    copied = _init_from(tok, init) if init is not None else []
    if torch.cuda.is_available():
        tok = tok.cuda()
    device = next(tok.parameters()).device
    crops = RandomCrops(data, crop_size, seed=seed, augment=augment)
    data_info = {
        "folder": str(data),
        "images": [p.name for p in files],
        "crop_size": crop_size,
        "augment": dataclasses.asdict(crops.augment),
        "batch_size_per_process": batch_size,
        "processes": world,
    }
    init_info = {"from": str(init), "tensors_copied": len(copied)} if init is not None else None
    run = {
        "data": str(data),
        "images": [p.name for p in files],
        "tokenizer": dataclasses.asdict(tok.config),
        "batch_size": batch_size,
        "crop_size": crop_size,
        "augment": dataclasses.asdict(crops.augment),
        "processes": world,
        "init": init_info,
    }
    result = train_and_save(
        tok,
        lambda step, r: crops.crops(step, r, batch_size).to(device),
        schedule(steps, lr, seed),
        out,
        save=lambda folder: tok.cpu().eval().save_pretrained(folder),
        record={"data": data_info, "init": init_info},
        run_dir=checkpoint_dir,
        progress=progress,
        stop_at=stop_at,
        description=f"image-vq {preset}",
        run=run,
        monitor=_code_space_monitor(tok, crops.crops(0, 0, WATCHED_CROPS).to(device), min_live_dims, min_colour_r2),
    )
    return ImageTrainResult(tok, result, out)


def _code_space_monitor(
    tok: ImageVQTokenizer, watched: torch.Tensor, min_live_dims: int | None, min_colour_r2: float | None = None
) -> Callable[[int], dict[str, float]]:
    """fit's monitor: the code space of the fixed batch `watched` (the same on every rank), checked from WATCH_FROM."""

    def monitor(done: int) -> dict[str, float]:
        space = code_space(tok, watched)
        if done >= WATCH_FROM:
            check_code_space(space, min_live_dims, done, min_colour_r2)
        return space.metrics()

    return monitor


def _init_from(tok: ImageVQTokenizer, source: str | os.PathLike) -> list[str]:
    """Copy every tensor of a trained tokenizer whose name and shape match into `tok`; returns their names."""
    source_tok = load_tokenizer(source)
    trained, own = source_tok.state_dict(), tok.state_dict()
    same = {k: v for k, v in trained.items() if k in own and own[k].shape == v.shape}
    if getattr(source_tok.config, "quantizer", None) != tok.config.quantizer:  # a codebook of another kind:
        same = {k: v for k, v in same.items() if not k.startswith("quantizer.")}  # start it afresh (k-means init)
    if not any(k.startswith(("encoder.", "decoder.")) for k in same):
        raise ValueError(f"init {str(source)!r} shares no encoder or decoder weights with this tokenizer's config")
    tok.load_state_dict(same, strict=False)
    return sorted(same)
