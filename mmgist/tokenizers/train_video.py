"""Training the video tokenizer on clips made from a folder of photos: `train_video_tokenizer` and its CLI.

    mmgist train-tokenizer video --data data/photos/train --init image-vq-f8 --steps 3000 --out tokenizers/video-vq
    torchrun --nproc_per_node 2 -m mmgist.cli train-tokenizer video ... (DDP, gloo on CPU)

Clips come from `mmgist.video_data.RandomClips` (pans, zooms, rotations, a moving cut-out, light
changes; a pure function of step and rank). `init` names a trained image-vq tokenizer: its encoder
and decoder become the spatial parts (frozen unless `train_spatial`), and its quantized latents of
every frame are the targets the temporal parts learn to give back (see video.py). Through the shared
loop in `mmgist.train` (progress bar, checkpoints, resume); `training.json` beside the result records
data, steps, wall time and final metrics.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from einops import rearrange

from ..data.images import image_files
from ..data.video import RandomClips
from ..train import TrainResult, init_distributed, schedule, train_and_save
from ..validate import positive_int
from .registry import create_tokenizer, load_tokenizer
from .video import VideoVQTokenizer


@dataclasses.dataclass
class VideoTrainResult:
    tokenizer: VideoVQTokenizer
    train: TrainResult
    out: Path


def _video_start(
    preset: str,
    init: str | os.PathLike | None,
    start: str | os.PathLike | None,
    train_spatial: bool,
    train_decoder: bool,
    config: dict[str, Any],
) -> tuple[VideoVQTokenizer, Any]:
    """(the video tokenizer to train, the frozen image tokenizer whose latents it learns, or None): from `start`
    (a trained video-vq) or a new one of `preset`, its spatial layers copied from `init` and frozen unless
    trained."""
    if start is not None:
        base = load_tokenizer(start)
        tok = create_tokenizer("video-vq", **{**dataclasses.asdict(base.config), **config})
        tok.load_state_dict(base.state_dict())
    else:
        tok = create_tokenizer("video-vq", preset=preset, **config)
    if init is None and not tok.config.pixel_weight:
        raise ValueError("train_video_tokenizer without init (an image tokenizer to learn latents from) needs a "
                         "pixel loss: pass pixel_weight > 0")  # fmt: skip
    teacher = None
    if init is not None:
        teacher = load_tokenizer(init).eval().requires_grad_(False)
    if init is not None and start is None:
        own = tok.state_dict()
        spatial = {f"spatial_{k}": v for k, v in teacher.state_dict().items() if k.startswith(("encoder.", "decoder."))}
        if not spatial or any(k not in own or own[k].shape != v.shape for k, v in spatial.items()):
            raise ValueError(f"init {str(init)!r} does not have this preset's spatial encoder and decoder shapes")
        tok.load_state_dict(spatial, strict=False)
    if not train_spatial:
        tok.spatial_encoder.requires_grad_(False)
        tok.spatial_decoder.requires_grad_(train_decoder)
    return tok, teacher


def train_video_tokenizer(
    data: str | os.PathLike,
    out: str | os.PathLike,
    init: str | os.PathLike | None = "image-vq-f8",
    preset: str = "f8t4",
    steps: int = 2000,
    batch_size: int = 8,
    frames: int = 9,
    size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    train_spatial: bool = False,
    train_decoder: bool = False,
    start: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    **config: Any,
) -> VideoTrainResult:
    """Train a `video-vq` tokenizer on clips from the images in `data`; save it to `out` (on rank 0).

    `train_spatial` also trains the spatial encoder and decoder, `train_decoder` the spatial decoder only
    (with a pixel loss: `pixel_weight=1.0`, the second stage of the shipped recipe). `start` continues
    from a trained video-vq's weights (its config is kept; `config` may change the loss weights)."""
    positive_int(batch_size, "train_video_tokenizer batch_size")
    positive_int(size, "train_video_tokenizer size")
    if positive_int(frames, "train_video_tokenizer frames") % 4 != 1:
        raise ValueError(f"train_video_tokenizer frames must be 1 + 4n, got {frames}")
    _, world = init_distributed()
    out = Path(out)
    torch.manual_seed(seed)
    tok, teacher = _video_start(preset, init, start, train_spatial, train_decoder, config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tok = tok.to(device)
    if teacher is not None:
        teacher = teacher.to(device)
    clips = RandomClips(data, frames, size, seed=seed)

    def batch(step: int, r: int) -> dict[str, torch.Tensor]:
        x = clips.clips(step, r, batch_size).to(device)  # (B, T, 3, S, S)
        if teacher is None:
            return {"clips": x}
        with torch.no_grad():  # the image tokenizer's latents and quantized latents of every frame
            flat = x.flatten(0, 1)
            z = teacher.encoder(flat * 2 - 1)
            zq = teacher.quantizer(z)[0]  # (vq and fsq both return the quantized latents first)
        per_clip = {"b": x.shape[0]}
        out = {"clips": x, "targets": rearrange(zq, "(b t) z h w -> b z t h w", **per_clip)}
        if not train_spatial:  # the frozen spatial encoder is the teacher's: reuse its output
            out["latents"] = rearrange(z, "(b t) z h w -> b z t h w", **per_clip)
        return out

    data_info = {
        "folder": str(data),
        "images": [p.name for p in image_files(data)],
        "frames": frames,
        "size": size,
        "batch_size_per_process": batch_size,
        "processes": world,
    }
    run = {"data": data_info, "tokenizer": dataclasses.asdict(tok.config), "init": str(init), "start": str(start),
           "spatial": train_spatial, "decoder": train_decoder}  # fmt: skip
    record = {"data": data_info, "init": str(init), "start": str(start) if start is not None else None,
              "train_spatial": train_spatial, "train_decoder": train_decoder}  # fmt: skip
    result = train_and_save(
        tok,
        batch,
        schedule(steps, lr, seed),
        out,
        save=lambda folder: tok.requires_grad_(True).cpu().eval().save_pretrained(folder),
        record=record,
        run_dir=checkpoint_dir,
        progress=progress,
        stop_at=stop_at,
        description=f"video-vq {preset}",
        run=run,
    )
    return VideoTrainResult(tok, result, out)
