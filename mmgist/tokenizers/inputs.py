"""Media as a tokenizer's model takes it: image batches fitted to a patch grid, waveforms at a codec's rate.

Every image and audio tokenizer (ours and the wrapped pretrained ones in hf_audio / hf_image) reads
user input through these functions, so they all accept the same things and refuse bad input with the
same messages:

    images_batch(photo)                         # PIL / (3, H, W) / (B, 3, H, W) / list -> (B, 3, H, W) in [0, 1]
    fit_images(x, factor=8, fit="pad")          # (B, 3, H, W) -> (B, 3, H', W'), H' and W' multiples of 8
    waveform_batch(w, 44100, rate=16000, hop=320, who="audio-rvq")   # -> (B, 1, S) mono, S a multiple of hop

Fits for sizes that are not a multiple of the patch size f: "pad" (replicate the right and bottom
edges up to the next multiple; decode returns the padded size), "crop" (centre crop down), "resize"
(bilinear to the nearest multiple), or "error".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..io import as_waveform, image_to_tensor, resample
from ..validate import is_int
from ..validate import sample_rate as checked_rate

FITS = ("pad", "crop", "resize", "error")  # how an image size that is not a multiple of the patch is made one
FRAME_FITS = ("pad", "drop", "error")  # how a frame count that is not 1 + every * n is made one


def fitted_size(height: int, width: int, factor: int, fit: str) -> tuple[int, int]:
    """The (H', W') that `fit` makes of an image of `height` x `width` for patches of `factor` pixels."""
    f = factor
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; choose one of {list(FITS)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image has zero size {width}x{height}")
    if height % f == 0 and width % f == 0:
        return height, width
    if fit == "error":
        raise ValueError(f"image size {width}x{height} is not a multiple of {f}; pass fit='pad', 'crop' or 'resize'")
    if fit == "pad":
        return -(-height // f) * f, -(-width // f) * f
    if fit == "crop":
        if height < f or width < f:
            raise ValueError(f"image {width}x{height} is smaller than one {f}x{f} patch; cannot crop")
        return height // f * f, width // f * f
    return max(f, round(height / f) * f), max(f, round(width / f) * f)


def images_batch(images: Any) -> torch.Tensor:
    """PIL image(s) or tensor (3, H, W) / (B, 3, H, W), uint8 or float in [0, 1] -> float (B, 3, H, W) in [0, 1]."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("encode got an empty list of images")
        tensors = [im if isinstance(im, torch.Tensor) else image_to_tensor(im) for im in images]
        if bad := [tuple(t.shape) for t in tensors if t.ndim != 3]:
            raise ValueError(f"each image in a list must be a (3, H, W) tensor or a PIL image, got shape {bad[0]}")
        sizes = sorted({tuple(t.shape[-2:]) for t in tensors})
        if len(sizes) > 1:
            raise ValueError(
                f"images in one batch must share a size, got (H, W) sizes {sizes}; encode them one at a time"
            )
        x = torch.stack([t.float() / 255 if t.dtype == torch.uint8 else t for t in tensors])
    elif isinstance(images, torch.Tensor):
        x = images.unsqueeze(0) if images.ndim == 3 else images
    else:
        x = image_to_tensor(images)[None]  # PIL (any mode) -> RGB
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (3, H, W) or (B, 3, H, W) (1 channel is repeated), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif not x.dtype.is_floating_point:
        raise TypeError(f"image tensors must be uint8 (0..255) or float (0..1), got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"float images must lie in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    return x.float().clamp(0, 1).expand(-1, 3, -1, -1)


def fit_images(x: torch.Tensor, factor: int, fit: str) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, H', W') with H', W' multiples of `factor` (see the module docstring)."""
    H, W = x.shape[-2:]
    h, w = fitted_size(H, W, factor, fit)
    if (h, w) == (H, W):
        return x
    if fit == "pad":
        return F.pad(x, (0, w - W, 0, h - H), mode="replicate")
    if fit == "crop":
        top, left = (H - h) // 2, (W - w) // 2
        return x[:, :, top : top + h, left : left + w]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def resize_and_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size): the shorter side resized to `size` (bicubic, antialiased), centre crop."""
    H, W = x.shape[-2:]
    scale = size / min(H, W)
    h, w = max(size, round(H * scale)), max(size, round(W * scale))
    if (h, w) != (H, W):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (h - size) // 2, (w - size) // 2
    return x[:, :, top : top + size, left : left + size]


def waveform_batch(waveform: Any, sample_rate: int | None, rate: int, hop: int, who: str) -> torch.Tensor:
    """(samples,), (channels, samples), (B, channels, samples) or a list of equal-length waveforms at
    `sample_rate` -> float (B, 1, S) mono at `rate`, S a whole number of `hop`-sample frames (silence padded)."""
    if sample_rate is None:
        raise ValueError(f"{who}: encode needs the waveform's sample_rate (the codec runs at {rate} Hz)")
    if not is_int(sample_rate) or sample_rate <= 0:
        raise ValueError(f"{who}: sample_rate must be a positive int, got {sample_rate!r}")
    checked_rate(sample_rate, f"{who}: sample_rate")
    if isinstance(waveform, (list, tuple)):
        if not waveform:
            raise ValueError(f"{who}: encode got an empty list of waveforms")
        items = [as_waveform(w) for w in waveform]
        lengths = sorted({w.shape[-1] for w in items})
        if len(lengths) > 1:
            raise ValueError(
                f"{who}: waveforms in one batch must have one length, got {lengths[:4]} samples; "
                "encode them one at a time"
            )
        x = torch.stack([w.mean(0, keepdim=True) for w in items])
    else:
        x = as_waveform(waveform, batched=True).mean(1, keepdim=True)
    if sample_rate != rate:
        x = resample(x, int(sample_rate), rate)
        if x.shape[-1] == 0:
            raise ValueError(f"{who}: the waveform is shorter than one sample at {rate} Hz")
    frames = -(-x.shape[-1] // hop)
    return F.pad(x, (0, frames * hop - x.shape[-1]))


def is_batch(x: Any, item_ndim: int) -> bool:
    """Whether encode's input is a batch: a list, or a tensor with one more dimension than one item."""
    return isinstance(x, (list, tuple)) or (isinstance(x, torch.Tensor) and x.ndim == item_ndim + 1)
