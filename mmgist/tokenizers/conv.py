"""Convolutional encoder and decoder shared by the image and video tokenizers (VQGAN-style).

    Encoder: (B, 3, H, W) -> (B, z_dim, H / f, W / f)       f = 2 ** (len(channels) - 1)
    Decoder: (B, z_dim, h, w) -> (B, 3, h * f, w * f)

Each level has `blocks` residual blocks (GroupNorm, SiLU, 3x3 conv, twice, plus a skip); levels
are joined by a stride-2 conv going down and nearest-neighbour upsampling + conv going up. No
attention: at the sizes we train on a CPU it costs more than it gives (attention is optional in
the issue; add it here if a measurement argues for it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Downsample(nn.Module):
    """Stride-2 3x3 conv; pads right/bottom by one so H, W halve exactly."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, channels: Sequence[int], blocks: int, z_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        c = channels[0]
        for level, c_out in enumerate(channels):
            for _ in range(blocks):
                layers.append(ResBlock(c, c_out))
                c = c_out
            if level < len(channels) - 1:
                layers.append(Downsample(c))
        layers += [ResBlock(c, c), _norm(c), nn.SiLU(), nn.Conv2d(c, z_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int], blocks: int, z_dim: int, out_channels: int = 3) -> None:
        super().__init__()
        rev = list(reversed(channels))
        c = rev[0]
        layers: list[nn.Module] = [nn.Conv2d(z_dim, c, 3, padding=1), ResBlock(c, c)]
        for level, c_out in enumerate(rev):
            for _ in range(blocks):
                layers.append(ResBlock(c, c_out))
                c = c_out
            if level < len(rev) - 1:
                layers.append(Upsample(c))
        layers += [_norm(c), nn.SiLU(), nn.Conv2d(c, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
