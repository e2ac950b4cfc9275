"""Convolutional encoder and decoder shared by the image and video tokenizers (VQGAN-style).

    Encoder: (B, 3, H, W) -> (B, z_dim, H / f, W / f)       f = 2 ** (len(channels) - 1)
    Decoder: (B, z_dim, h, w) -> (B, 3, h * f, w * f)

Each level has `blocks` residual blocks (GroupNorm, SiLU, 3x3 conv, twice, plus a skip); levels
are joined by a stride-2 conv going down and nearest-neighbour upsampling + conv going up.
`padding` is the convolutions' padding mode: "replicate" (the default) repeats the border pixels, which
works at any size down to 1x1 ("reflect" needs 2 or more); "zeros" (the v1 tokenizers) is a dark frame
that the decoder has to undo, with about 25% more error in the outer rows and columns.
No attention: at the sizes we train on a CPU it costs more than it gives (attention is optional in
the issue; add it here if a measurement argues for it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

PADDINGS = ("replicate", "reflect", "zeros")


def _conv3(c_in: int, c_out: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, padding: str = "replicate") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in), nn.SiLU(), _conv3(c_in, c_out, padding),
            _norm(c_out), nn.SiLU(), _conv3(c_out, c_out, padding),
        )  # fmt: skip
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Downsample(nn.Module):
    """Stride-2 3x3 conv; pads right/bottom by one so H, W halve exactly."""

    def __init__(self, c: int, padding: str = "replicate") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)
        self.mode = "constant" if padding == "zeros" else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode=self.mode))


class Upsample(nn.Module):
    def __init__(self, c: int, padding: str = "replicate") -> None:
        super().__init__()
        self.conv = _conv3(c, c, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; choose one of {list(PADDINGS)}")


class Encoder(nn.Module):
    def __init__(
        self, channels: Sequence[int], blocks: int, z_dim: int, in_channels: int = 3, padding: str = "replicate"
    ) -> None:
        super().__init__()
        _check_padding(padding)
        layers: list[nn.Module] = [_conv3(in_channels, channels[0], padding)]
        c = channels[0]
        for level, c_out in enumerate(channels):
            for _ in range(blocks):
                layers.append(ResBlock(c, c_out, padding))
                c = c_out
            if level < len(channels) - 1:
                layers.append(Downsample(c, padding))
        layers += [ResBlock(c, c, padding), _norm(c), nn.SiLU(), nn.Conv2d(c, z_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(
        self, channels: Sequence[int], blocks: int, z_dim: int, out_channels: int = 3, padding: str = "replicate"
    ) -> None:
        super().__init__()
        _check_padding(padding)
        rev = list(reversed(channels))
        c = rev[0]
        layers: list[nn.Module] = [_conv3(z_dim, c, padding), ResBlock(c, c, padding)]
        for level, c_out in enumerate(rev):
            for _ in range(blocks):
                layers.append(ResBlock(c, c_out, padding))
                c = c_out
            if level < len(rev) - 1:
                layers.append(Upsample(c, padding))
        layers += [_norm(c), nn.SiLU(), _conv3(c, out_channels, padding)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
