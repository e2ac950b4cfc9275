"""Strided 1-D convolutional encoder and decoder for waveforms (SEANet / DAC style), used by audio-rvq.

    Encoder: (B, 1, S) -> (B, z_dim, S / hop)        hop = prod(strides)
    Decoder: (B, z_dim, F) -> (B, 1, F * hop)

Each level is `units` residual units (ELU, dilated kernel-7 conv, ELU, 1x1 conv, plus a skip; the
dilations go 1, 3, 9) then a strided conv of kernel 2 * stride. The decoder mirrors it with transposed
convs. Channels double at each level down (`channels[i]` is the width after level i); weight norm
as in SEANet and DAC. The first strides are the largest so that the widest convolutions run at the
lowest rate: that is what keeps encode + decode far faster than real time on a CPU.

Padding is zeros (fused into the convolution: a separate replicate pad cost 13% of the run time);
every conv is
centred, so the receptive field is symmetric and `Encoder.receptive_radius` says how many samples on
each side reach a frame: chunked encoding with that much context equals encoding all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

DILATIONS = (1, 3, 9)


def _conv(c_in: int, c_out: int, kernel: int, dilation: int = 1, stride: int = 1) -> nn.Module:
    pad = (stride + 1) // 2 if stride > 1 else (kernel - 1) // 2 * dilation  # S samples in, S / stride out
    return weight_norm(nn.Conv1d(c_in, c_out, kernel, stride, pad, dilation, padding_mode="zeros"))


class ResUnit(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ELU(), _conv(c, c, 7, dilation), nn.ELU(), _conv(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    def __init__(self, channels: Sequence[int], strides: Sequence[int], units: int, z_dim: int) -> None:
        super().__init__()
        if len(channels) != len(strides) + 1:
            raise ValueError(f"channels needs one width more than strides, got {len(channels)} and {len(strides)}")
        layers: list[nn.Module] = [_conv(1, channels[0], 7)]
        for c_in, c_out, s in zip(channels[:-1], channels[1:], strides):
            layers += [ResUnit(c_in, DILATIONS[u % 3]) for u in range(units)]
            layers += [nn.ELU(), _conv(c_in, c_out, 2 * s, stride=s)]
        layers += [nn.ELU(), _conv(channels[-1], z_dim, 3)]
        self.net = nn.Sequential(*layers)
        self.hop = math.prod(strides)
        self.receptive_radius = _radius(strides, units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int], strides: Sequence[int], units: int, z_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(z_dim, channels[-1], 7)]
        for c_in, c_out, s in zip(channels[:0:-1], channels[-2::-1], strides[::-1]):
            up = nn.ConvTranspose1d(c_in, c_out, 2 * s, s, padding=s // 2 + s % 2, output_padding=s % 2)
            layers += [nn.ELU(), weight_norm(up)]
            layers += [ResUnit(c_out, DILATIONS[u % 3]) for u in range(units)]
        layers += [nn.ELU(), _conv(channels[0], 1, 7)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _radius(strides: Sequence[int], units: int) -> int:
    """Input samples on each side of a frame's centre that can reach it (an upper bound)."""
    radius, scale = 3, 1  # the first kernel-7 conv
    for s in strides:
        radius += sum(3 * DILATIONS[u % 3] for u in range(units)) * scale
        radius += s * scale  # the strided conv of kernel 2s
        scale *= s
    return radius + scale  # the last kernel-3 conv, at the frame rate
