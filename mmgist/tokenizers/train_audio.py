"""Training an audio tokenizer on a folder of sound files: `train_audio_tokenizer` and its CLI.

    mmgist train-tokenizer audio --data data/audio/train --steps 4000 --out tokenizers/audio-rvq
    torchrun --nproc_per_node 2 -m mmgist.cli train-tokenizer audio --data ... (DDP, gloo on CPU)

Random segments (`mmgist.audio_data.RandomSegments`: a kind, then a file by length, then an offset;
random gain) through the shared loop in `mmgist.train` (progress bar, checkpoints, resume). The
trained tokenizer is saved to `out` with `training.json` beside it: data, steps, wall time, final metrics.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ..data.audio import RandomSegments
from ..train import TrainResult, init_distributed, schedule, train_and_save
from ..validate import finite, positive_int
from .audio import AudioRVQTokenizer
from .registry import create_tokenizer


@dataclasses.dataclass
class AudioTrainResult:
    tokenizer: AudioRVQTokenizer
    train: TrainResult
    out: Path


def train_audio_tokenizer(
    data: str | os.PathLike,
    out: str | os.PathLike,
    preset: str = "16k-50hz",
    steps: int = 4000,
    batch_size: int = 8,
    seconds: float = 1.0,
    lr: float = 1e-3,
    seed: int = 0,
    weights: dict[str, float] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    **config: Any,
) -> AudioTrainResult:
    """Train an `audio-rvq` tokenizer on the audio under `data`; save it to `out` (on rank 0).

    `config` overrides fields of AudioRVQConfig (quantizer="plain-rvq", num_codebooks=4, ...).
    `weights` draws the kinds (first-level folders of `data`) in these proportions (default equal).
    Checkpoints go to `checkpoint_dir` (default out/../.<name>-run); rerunning after a kill resumes."""
    positive_int(batch_size, "train_audio_tokenizer batch_size")
    finite(seconds, "train_audio_tokenizer seconds", positive=True)
    _, world = init_distributed()
    out = Path(out)
    torch.manual_seed(seed)  # identical initial weights on every rank
    tok = create_tokenizer("audio-rvq", preset=preset, **config)
    assert isinstance(tok, AudioRVQTokenizer)
    seconds = max(1, round(seconds * tok.frame_rate)) / tok.frame_rate  # whole frames
    data_set = RandomSegments(data, seconds, tok.sample_rate, seed=seed, weights=weights)
    if torch.cuda.is_available():
        tok = tok.cuda()
    device = next(tok.parameters()).device
    data_info = {
        "folder": str(data),
        "files": len(data_set.files),
        "seconds_per_kind": data_set.seconds_per_kind(tok.sample_rate),
        "kind_weights": dict(zip(data_set.kinds, data_set.kind_weights.tolist())),
        "segment_seconds": seconds,
        "batch_size_per_process": batch_size,
        "processes": world,
    }
    result = train_and_save(
        tok,
        lambda step, r: data_set.segments(step, r, batch_size).to(device),
        schedule(steps, lr, seed),
        out,
        save=lambda folder: tok.cpu().eval().save_pretrained(folder),
        record={"data": data_info},
        run_dir=checkpoint_dir,
        progress=progress,
        stop_at=stop_at,
        description=f"audio-rvq {tok.config.quantizer}",
        run={"data": data_info, "tokenizer": dataclasses.asdict(tok.config)},
    )
    return AudioTrainResult(tok, result, out)
