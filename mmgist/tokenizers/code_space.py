"""The health of an image tokenizer's code space: how many dimensions of its lookup are alive, and which
colours a patch's code can still tell apart.

    space = code_space(tok, images)        # images (B, 3, H, W) in [0, 1]
    space.live_dims, space.eigenvalues     # 3, [0.25, 0.043, 0.031, 1e-04, ...] for image-vq-f8 v2
    space.r2["a*"]                         # red-green kept: 0.24 from v2's lookup vectors (8 held-out crops)
    check_code_space(space, min_live_dims=4, min_colour_r2=0.3)   # raises CodeSpaceCollapsedError

v1 and v2 of image-vq-f8 collapsed early in training: 99.9% of the lookup latents' variance sat in 1-3
dimensions by step 100, and the red-green axis of colour was lost with them (#31). `train_image_tokenizer`
checks this at every log step with `min_live_dims` and `min_colour_r2`, on a fixed batch, and stops with the
figures.

Shapes: lookup latents (N, d), N = B * h * w patches, d the lookup's width (code_dim, or z_dim for plain-vq).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .image import ImageVQTokenizer

LIVE_SHARE = 0.01  # a dimension is live when its eigenvalue holds at least this share of the total variance


class CodeSpaceCollapsedError(RuntimeError):
    """The lookup latents of a tokenizer in training span fewer live dimensions than asked for."""


@dataclass(frozen=True)
class CodeSpace:
    eigenvalues: list[float]  # of the lookup latents' covariance, largest first
    live_dims: int  # eigenvalues holding at least LIVE_SHARE of the total variance
    r2: dict[str, float]  # "L*", "a*", "b*": R^2 of each patch's mean colour, predicted linearly from its latent

    def metrics(self) -> dict[str, float]:
        """Flat figures for a training log: live_dims, r2_L, r2_a, r2_b, eig_0 .. eig_3 (shares of the variance)."""
        total = sum(self.eigenvalues) or 1.0
        shares = {f"eig_{i}": v / total for i, v in enumerate(self.eigenvalues[:4])}
        return {"live_dims": float(self.live_dims), **{f"r2_{k[0]}": v for k, v in self.r2.items()}, **shares}


def patch_lab(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B * h * w, 3): each factor x factor patch's mean colour in CIELAB, in the
    order of `ImageVQTokenizer.lookup_latents` (batch, then rows, then columns)."""
    from kornia.color import rgb_to_lab

    lab = rgb_to_lab(images.clamp(0, 1))
    return F.avg_pool2d(lab, factor).permute(0, 2, 3, 1).reshape(-1, 3)


def r_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (N, d), y (N, c) -> (c,): the share of each column of y's variance that a least-squares linear fit
    (with an intercept) on x explains, in-sample."""
    x, y = x.double(), y.double()
    design = torch.cat([x - x.mean(0), torch.ones(len(x), 1, dtype=x.dtype)], 1)
    fit = design @ torch.linalg.lstsq(design, y).solution
    residual = (y - fit).pow(2).sum(0)
    total = (y - y.mean(0)).pow(2).sum(0).clamp_min(1e-12)
    return (1 - residual / total).float()


@torch.no_grad()
def code_space(tok: ImageVQTokenizer, images: torch.Tensor) -> CodeSpace:
    """The spectrum and colour content of `tok`'s lookup latents on `images` (B, 3, H, W) in [0, 1], H and W
    multiples of tok.factor. Needs at least d + 2 patches."""
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] % tok.factor or images.shape[-2] % tok.factor:
        raise ValueError(
            f"code_space needs images (B, 3, H, W) with H and W multiples of {tok.factor}, got {tuple(images.shape)}"
        )
    was_training = tok.training
    tok.eval()
    try:
        v = tok.lookup_latents(images.to(next(tok.parameters()).device)).float().cpu()
    finally:
        tok.train(was_training)
    if len(v) < v.shape[1] + 2:
        raise ValueError(
            f"code_space needs at least {v.shape[1] + 2} patches for a {v.shape[1]}-d lookup, got {len(v)}"
        )
    eigenvalues = torch.linalg.eigvalsh(torch.cov(v.T.double())).flip(0).clamp_min(0)
    live = int((eigenvalues >= LIVE_SHARE * eigenvalues.sum()).sum())
    r2 = r_squared(v, patch_lab(images.cpu(), tok.factor))
    return CodeSpace(eigenvalues.tolist(), live, dict(zip(("L*", "a*", "b*"), r2.tolist())))


def check_code_space(
    space: CodeSpace, min_live_dims: int | None = None, step: int | None = None, min_colour_r2: float | None = None
) -> None:
    """Raise CodeSpaceCollapsedError when `space` has fewer than `min_live_dims` live dimensions, or when the
    lookup keeps less than `min_colour_r2` of red-green or of blue-yellow (the R^2 of a* or b*). The colour test
    is the sharper one: runs whose spectra look alike can keep four times as much red-green (docs/tokenizers.md)."""
    if min_colour_r2 is not None and not 0 < min_colour_r2 < 1:
        raise ValueError(f"min_colour_r2 must be in (0, 1), got {min_colour_r2!r}")
    failed = []
    if min_live_dims is not None and space.live_dims < min_live_dims:
        failed.append(f"{space.live_dims} live dimension(s) of the lookup, {min_live_dims} asked for")
    if min_colour_r2 is not None and (worst := min(space.r2["a*"], space.r2["b*"])) < min_colour_r2:
        failed.append(f"colour R^2 {worst:.2f} (a* {space.r2['a*']:.2f}, b* {space.r2['b*']:.2f}), {min_colour_r2} "
                      "asked for")  # fmt: skip
    if not failed:
        return
    when = f" at step {step}" if step is not None else ""
    shares = ", ".join(f"{v / (sum(space.eigenvalues) or 1):.4f}" for v in space.eigenvalues[:6])
    raise CodeSpaceCollapsedError(
        f"the code space collapsed{when}: {'; '.join(failed)} (variance shares {shares}). Its codes cannot keep "
        "every hue: try lookup='euclidean' with code_dim equal to z_dim, or FSQ, and see docs/tokenizers.md"
    )
