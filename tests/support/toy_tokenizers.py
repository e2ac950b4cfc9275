"""Small deterministic tokenizers for tests only (never shipped): gray levels per patch, per frame.

They exercise every modality's path through the shared vocabulary before (and beside) the real,
trained tokenizers, and they carry a weight buffer so save/load goes through safetensors.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from mmgist.io import image_to_tensor
from mmgist.tokenizers import AudioTokenizer, ImageTokenizer, VideoTokenizer, register_tokenizer


@dataclasses.dataclass
class ToyImageConfig:
    codebook_size: int = 16  # gray levels
    patch: int = 4  # pixels per code along each side


def _gray_codes(images: torch.Tensor, patch: int, k: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H // patch, W // patch) gray-level codes in [0, k)."""
    gray = F.avg_pool2d(images.float().mean(1, keepdim=True), patch)[:, 0]
    return (gray * k).long().clamp(0, k - 1)


@register_tokenizer("toy-image")
class ToyImageTokenizer(ImageTokenizer):
    config_class = ToyImageConfig

    def __init__(self, config: ToyImageConfig | None = None) -> None:
        super().__init__(config)
        levels = (torch.arange(self.config.codebook_size) + 0.5) / self.config.codebook_size
        self.register_buffer("palette", levels[:, None].repeat(1, 3))  # (K, 3)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def encode(self, images, fit: str | None = None) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            images = image_to_tensor(images)
        one = images.ndim == 3
        x = images.unsqueeze(0) if one else images
        x = x.float() / 255 if not x.dtype.is_floating_point else x
        codes = _gray_codes(x, self.config.patch, self.codebook_size)
        return codes[0] if one else codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = self.check_codes(codes, batched=codes.ndim == 3)
        rgb = self.palette[codes].movedim(-1, -3)  # (..., h, w, 3) -> (..., 3, h, w)
        return rgb.repeat_interleave(self.config.patch, -2).repeat_interleave(self.config.patch, -1)


@dataclasses.dataclass
class ToyAudioConfig:
    codebook_size: int = 8
    num_codebooks: int = 2  # codebook 0: mean level, 1..: RMS level (repeated)
    frame: int = 64  # samples per frame
    sample_rate: int = 8000


@register_tokenizer("toy-audio")
class ToyAudioTokenizer(AudioTokenizer):
    config_class = ToyAudioConfig

    def __init__(self, config: ToyAudioConfig | None = None) -> None:
        super().__init__(config)
        self.register_buffer("levels", torch.linspace(-1, 1, self.config.codebook_size))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def encode(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        if sample_rate not in (None, self.sample_rate):
            raise ValueError(f"toy-audio takes {self.sample_rate} Hz, got {sample_rate}")
        mono = waveform.reshape(-1, waveform.shape[-1]).mean(0)
        n = max(1, mono.numel() // self.config.frame)
        frames = F.pad(mono, (0, n * self.config.frame - mono.numel()))[: n * self.config.frame].reshape(n, -1)
        k = self.codebook_size
        mean = ((frames.mean(1) + 1) / 2 * k).long().clamp(0, k - 1)
        rms = (frames.pow(2).mean(1).sqrt() * k).long().clamp(0, k - 1)
        return torch.stack([mean] + [rms] * (self.num_codebooks - 1))  # (C, T)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = self.check_codes(codes)
        return self.levels[codes[0]].repeat_interleave(self.config.frame)[None]  # (1, samples)


@dataclasses.dataclass
class ToyVideoConfig:
    codebook_size: int = 27
    patch: int = 8
    fps: float = 4.0


@register_tokenizer("toy-video")
class ToyVideoTokenizer(VideoTokenizer):
    config_class = ToyVideoConfig

    def __init__(self, config: ToyVideoConfig | None = None) -> None:
        super().__init__(config)
        self.register_buffer("palette", torch.linspace(0, 1, self.config.codebook_size))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def fps(self) -> float:
        return self.config.fps

    def encode(
        self, frames: torch.Tensor, fps: float | None = None, fit: str | None = None, spatial_fit: str | None = None
    ) -> torch.Tensor:
        x = frames.float() / 255 if not frames.dtype.is_floating_point else frames
        return _gray_codes(x, self.config.patch, self.codebook_size)  # (T, h, w)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = self.check_codes(codes)
        gray = self.palette[codes][:, None].repeat(1, 3, 1, 1)  # (T, 3, h, w)
        return gray.repeat_interleave(self.config.patch, 2).repeat_interleave(self.config.patch, 3)
