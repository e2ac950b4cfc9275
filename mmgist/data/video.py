"""Video clips made from photographs, offline: camera pans, zooms, rotations, a cut-out moving over another
photo, brightness changing over time, with motion blur. The training and held-out data of `video-vq`.

    clips = RandomClips("data/photos/train", frames=9, size=64)
    batch = clips.clips(step, rank, 8)            # (8, 9, 3, 64, 64) float in [0, 1]; a pure function of its args
    held = heldout_clips("data/photos/heldout", n=24, frames=17, size=128)   # [(kind, (17, 3, 128, 128)), ...]

Each clip follows one crop window through a photo: its centre, side and angle move linearly from a
start to an end value (`KINDS` say which move), and each frame averages `blur` sub-frames spread
over the time the shutter is open, so fast motion smears as a camera's does. "object" pastes an
elliptical cut-out of a second photo moving across the first; "light" dims or brightens the frames
over time. Photos are the image tokenizer's (`mmgist.datasets.gather_photos`), split the same way:
clips from held-out photos are never trained on.

Left out: real footage (none ships in the allowed packages; `load_video` reads any folder a user has),
occlusion by several objects, and camera shake.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io import image_to_tensor, load_image
from ..storage import PathLike
from .images import image_files

KINDS = ("pan", "zoom", "rotate", "object", "light", "mixed")
MAX_SIDE = 768  # photos are kept at most this large in memory (a clip's window is far smaller)


class RandomClips:
    """Random clips from every image in a folder (or a list of files), photos held in memory as uint8."""

    def __init__(
        self, folder: PathLike | Sequence[PathLike], frames: int, size: int, seed: int = 0, blur: int = 3
    ) -> None:
        self.frames, self.size, self.seed, self.blur = frames, size, seed, blur
        files = image_files(folder) if isinstance(folder, (str, Path)) else [Path(p) for p in folder]
        if not files:
            raise ValueError(f"no images to make clips from in {folder}")
        self.files = files
        self.photos = [_fit(image_to_tensor(load_image(p)), size) for p in files]

    def clips(self, step: int, rank: int, batch_size: int) -> torch.Tensor:
        """(batch_size, frames, 3, size, size) float in [0, 1]."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 1009 + rank)
        return torch.stack([self.clip(g)[1] for _ in range(batch_size)])

    def clip(self, g: torch.Generator, kind: str | None = None) -> tuple[str, torch.Tensor]:
        """(kind, (frames, 3, size, size)) drawn with generator `g`."""
        kind = kind or KINDS[int(torch.randint(len(KINDS), (1,), generator=g))]
        a = self.photos[int(torch.randint(len(self.photos), (1,), generator=g))]
        frames = _camera(a, kind, self.frames, self.size, self.blur, g)
        if kind == "object":
            b = self.photos[int(torch.randint(len(self.photos), (1,), generator=g))]
            frames = _paste_moving(frames, _camera(b, "static", self.frames, self.size, 1, g), g)
        if kind == "light":
            gain = torch.linspace(1.0, _uniform(g, 0.4, 1.6), self.frames).view(-1, 1, 1, 1)
            frames = (frames * gain).clamp(0, 1)
        if torch.rand((), generator=g) < 0.5:
            frames = frames.flip(-1)
        return kind, frames


def heldout_clips(
    folder: PathLike, n: int = 24, frames: int = 17, size: int = 128, seed: int = 1234
) -> list[tuple[str, torch.Tensor]]:
    """`n` clips from the photos in `folder`, kinds in turn: a fixed evaluation set (same on every machine)."""
    source = RandomClips(folder, frames, size, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return [source.clip(g, KINDS[i % len(KINDS)]) for i in range(n)]


# --- motion ------------------------------------------------------------------------------------------------
def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _fit(photo: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) float -> uint8, shorter side between 2 * size and MAX_SIDE (room for the window to move)."""
    short, long = min(photo.shape[1:]), max(photo.shape[1:])
    scale = min(1.0, MAX_SIDE / long) if short * min(1.0, MAX_SIDE / long) >= 2 * size else 2 * size / short
    if scale != 1.0:
        hw = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[2] * scale)))
        photo = F.interpolate(photo[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
    return (photo.clamp(0, 1) * 255).round().to(torch.uint8)


def _camera(photo: torch.Tensor, kind: str, frames: int, size: int, blur: int, g: torch.Generator) -> torch.Tensor:
    """Frames (T, 3, size, size) seen through a window moving over `photo` (3, H, W) uint8."""
    H, W = photo.shape[1:]
    short = min(H, W)
    side0 = _uniform(g, size, max(size, 0.6 * short))  # window side in photo pixels
    zoom = math.exp(_uniform(g, -0.45, 0.45)) if kind in ("zoom", "mixed") else 1.0
    side1 = min(side0 * zoom, 0.95 * short)
    angle0 = _uniform(g, -0.2, 0.2) if kind in ("rotate", "mixed") else 0.0
    angle1 = angle0 + (_uniform(g, -0.35, 0.35) if kind in ("rotate", "mixed") else 0.0)
    travel = _uniform(g, 0.15, 0.6) * side0 if kind in ("pan", "mixed", "object") else 0.0
    direction = _uniform(g, 0, 2 * math.pi)
    margin = max(side0, side1) * 0.75
    cx0, cy0 = _uniform(g, margin, max(margin, W - margin)), _uniform(g, margin, max(margin, H - margin))
    cx1, cy1 = cx0 + travel * math.cos(direction), cy0 + travel * math.sin(direction)
    steps = frames * blur
    t = (torch.arange(steps) + 0.5) / steps  # shutter open the whole frame time: blur spans one frame's motion
    cx, cy = cx0 + (cx1 - cx0) * t, cy0 + (cy1 - cy0) * t
    side = side0 * (side1 / side0) ** t
    angle = angle0 + (angle1 - angle0) * t
    cos, sin = torch.cos(angle) * side / 2, torch.sin(angle) * side / 2
    theta = torch.stack([
        torch.stack([cos * 2 / W, -sin * 2 / W, cx * 2 / W - 1], -1),
        torch.stack([sin * 2 / H, cos * 2 / H, cy * 2 / H - 1], -1),
    ], 1)  # (steps, 2, 3): output [-1, 1]^2 -> photo coordinates  # fmt: skip
    grid = F.affine_grid(theta, (steps, 3, size, size), align_corners=False)
    src = photo[None].float().div(255).expand(steps, -1, -1, -1)
    sub = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return sub.view(frames, blur, 3, size, size).mean(1).clamp(0, 1)


def _paste_moving(frames: torch.Tensor, cutout: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """An elliptical cut-out of `cutout`'s first frame crossing `frames` (T, 3, S, S) in a straight line."""
    T, _, S, _ = frames.shape
    r = _uniform(g, 0.15, 0.35) * S
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    patch = cutout[0]
    start = torch.tensor([_uniform(g, 0, S), _uniform(g, 0, S)])
    end = torch.tensor([_uniform(g, 0, S), _uniform(g, 0, S)])
    out = frames.clone()
    for i in range(T):
        cy, cx = (start + (end - start) * i / max(1, T - 1)).tolist()
        dy, dx = round(cy - S / 2), round(cx - S / 2)
        moved = torch.roll(patch, shifts=(dy, dx), dims=(1, 2))
        mask = (((yy - cy) / r) ** 2 + ((xx - cx) / (0.7 * r)) ** 2 <= 1).float()
        out[i] = moved * mask + out[i] * (1 - mask)
    return out
