"""Causal 3-D convolutions over time for the video tokenizer: the temporal encoder and decoder.

    TemporalEncoder: (B, c, 1 + 4n, h, w) -> (B, d, 1 + n, h, w)      two 2x downsamplings in time
    TemporalDecoder: (B, d, 1 + n, h, w) -> (B, c, 1 + 4n, h, w)

Causal: output frame t depends on input frames <= t only (the time axis is padded on the left, by
repeating the first frame). The first frame is coded on its own, as in MAGVIT-v2 and Cosmos: a
downsampling pairs frames (0, 0), (1, 2), (3, 4), ... so 1 + 2m frames become 1 + m, and one frame
is a valid clip (1 -> 1). An upsampling doubles every latent frame but the first (depth to time).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


class FrameNorm(nn.GroupNorm):
    """GroupNorm over each frame on its own: a norm over time would let later frames change earlier codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, h, w)
        B = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=B)


def _norm(channels: int) -> FrameNorm:
    return FrameNorm(min(32, channels // 4) or 1, channels, eps=1e-6)


class CausalConv3d(nn.Module):
    """k_t x k x k convolution, time padded on the left (first frame repeated), space replicate-padded."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (3, 3, 3)) -> None:
        super().__init__()
        self.kt, self.ks = kernel[0], kernel[1]
        self.conv = nn.Conv3d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, h, w)
        p = self.ks // 2
        x = F.pad(x, (p, p, p, p, 0, 0), mode="replicate") if p else x
        if self.kt > 1:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1), x], dim=2)
        return self.conv(x)


class ResBlock3d(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in), nn.SiLU(), CausalConv3d(c_in, c_out), _norm(c_out), nn.SiLU(), CausalConv3d(c_out, c_out)
        )
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class TimeDown(nn.Module):
    """1 + 2m frames -> 1 + m: frames paired (0, 0), (1, 2), (3, 4), ... by a 2 x 3 x 3 conv of stride 2 in time."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c, c, (2, 3, 3), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, :, :1], x], dim=2)  # (B, C, 2 + 2m, h, w)
        return self.conv(F.pad(x, (1, 1, 1, 1, 0, 0), mode="replicate"))


class TimeUp(nn.Module):
    """1 + m frames -> 1 + 2m: each latent frame becomes two (depth to time); the first one's first copy is kept."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(c, 2 * c, (1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.conv(x), "b (two c) t h w -> b c (t two) h w", two=2)
        return x[:, :, 1:]


class TemporalEncoder(nn.Module):
    def __init__(self, c_in: int, width: int, blocks: int, c_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [CausalConv3d(c_in, width)]
        for _ in range(2):
            layers += [ResBlock3d(width, width) for _ in range(blocks)] + [TimeDown(width)]
        layers += [ResBlock3d(width, width), _norm(width), nn.SiLU(), nn.Conv3d(width, c_out, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalDecoder(nn.Module):
    def __init__(self, c_in: int, width: int, blocks: int, c_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [CausalConv3d(c_in, width), ResBlock3d(width, width)]
        for _ in range(2):
            layers += [TimeUp(width)] + [ResBlock3d(width, width) for _ in range(blocks)]
        layers += [_norm(width), nn.SiLU(), CausalConv3d(width, c_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
