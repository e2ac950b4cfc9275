"""image-vq: a convolutional VQ tokenizer, one code per f x f patch (f = 8 or 16).

    tok = load_tokenizer("image-vq-f8")  # v2; also "image-vq-f8-v1" and the baseline "image-vq-f8-plain"
    codes = tok.encode(photo)            # PIL image or (3, H, W) tensor -> (H/8, W/8) LongTensor
    recon = tok.decode(codes)            # -> (3, H, W) float in [0, 1]
    tok.tokens_per_image(256, 256)       # 1024

Shapes (B batch, z latent width, f patch size): images (B, 3, H, W) -> encoder -> (B, z, H/f, W/f)
-> quantizer -> codes (B, h, w) and quantized latents (B, z, h, w) -> decoder -> (B, 3, H, W).

Quantizers come from vector-quantize-pytorch (`quantizer=`):
    "vq"        cosine-similarity lookup in a low-dimensional space (code_dim 8), k-means init,
                EMA updates, dead-code restart: keeps a large codebook in use (the default)
    "fsq"       finite scalar quantization: codebook = product of fsq_levels, nothing to collapse
    "plain-vq"  nearest neighbour in the full latent space, EMA, none of the tricks (the baseline)

Training loss (weights in the config): L1 on pixels, plus an L1 on 4x4 local means per channel (the
colour of each small area must come back, not only the edges), plus an L1 on horizontal and vertical
differences (edges), plus MSE; v1 trained with MSE alone. Config files saved before a field existed
load with the value that version used (`LEGACY`), so old tokenizers encode exactly as before.

Batches are encoded and decoded in chunks of at most CHUNK_PIXELS pixels: one 16 x 256² batch at
once holds 200 MB per full-resolution activation, far out of the CPU caches, and was about 2x slower
per image than one image at a time. benchmarks/image_tokenizer.py times both side by side.

Codes depend on the CPU thread count only through float rounding: a code near a tie can flip to a
neighbour that decodes alike. The benchmark measures the share that changes between 1 and N threads
and how closely the two decodes agree; tests/test_zoo.py bounds both for the shipped tokenizer.

Sizes that are not a multiple of f are handled by `fit` ("pad", "crop", "resize" or "error"; see
mmgist.tokenizers.inputs).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange

from ..io import tensor_to_image
from ..train import StepOutput
from ..validate import finite, fraction, integer, is_int, positive_int
from .base import ImageTokenizer
from .conv import Decoder, Encoder
from .inputs import FITS, fit_images, fitted_size, images_batch, is_batch
from .registry import register_tokenizer

DEFAULTS = {"codebook_size": 4096, "fsq_levels": (8, 8, 8, 8)}  # unless a preset says otherwise
LEGACY = {
    "padding": "zeros",
    "l1_weight": 0.0,
    "colour_weight": 0.0,
    "edge_weight": 0.0,
    "mse_weight": 1.0,  # v1
    "lookup": "cosine",
    "latent_weight": 0.0,
    "lab_weight": 0.0,
    "spread_weight": 0.0,
}  # v1 and v2
CHUNK_PIXELS = 2 * 256 * 256  # encode/decode this many input pixels at a time (see the module docstring)
USAGE_WINDOW = 50  # training steps over which the progress bar's codebook usage is counted
QUANTIZERS = ("vq", "fsq", "plain-vq")
LOOKUPS = ("cosine", "euclidean")  # "vq": how a latent finds its code (ImageVQConfig.lookup)
PRESETS: dict[str, dict[str, Any]] = {
    # f = 2 ** (len(channels) - 1). Widths sized so a 2-core CPU trains one in about an hour.
    "f8": {"channels": (48, 96, 128, 192), "blocks": 1, "z_dim": 64},
    "f16": {"channels": (48, 96, 128, 192, 256), "blocks": 1, "z_dim": 64},
    "tiny": {"channels": (8, 16), "blocks": 1, "z_dim": 8, "codebook_size": 32, "fsq_levels": (4, 4, 3)},  # tests
}


@dataclasses.dataclass
class ImageVQConfig:
    """`ImageVQConfig(preset="f8")`; any field given explicitly overrides the preset's value."""

    preset: str = "f8"  # one of PRESETS: fills the fields left as None
    channels: tuple[int, ...] | None = None  # width per level; f = 2 ** (levels - 1)
    blocks: int | None = None  # residual blocks per level
    z_dim: int | None = None  # latent width fed to the quantizer
    quantizer: str = "vq"  # see the module docstring
    codebook_size: int | None = None  # "vq" and "plain-vq" (default 4096); "fsq" uses prod(fsq_levels)
    code_dim: int = 8  # "vq": lookup dimension (low-dim codes are what keep usage high)
    lookup: str = "cosine"  # "vq": cosine (v1, v2: unit codes; their space collapsed to 3 live dimensions) or
    # euclidean (codes keep their length), best with latent_weight
    latent_weight: float = 0.0  # "vq": weight of |z - its code's output|^2 / |z|^2 (z detached): trains the
    # lookup's output projection on what it stands for, which nothing else does
    fsq_levels: tuple[int, ...] | None = None  # "fsq" (default (8, 8, 8, 8): 4096 codes)
    commitment_weight: float = 0.25
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.03  # "vq": restart codes whose EMA count per step falls below this (a 16 x 64px
    # batch at f8 has 1024 codes, 0.25 per code of 4096 on average: restart those used 8x less than that)
    fit: str = "pad"  # default policy for sizes that are not a multiple of f
    padding: str = "replicate"  # conv padding mode (mmgist.tokenizers.conv): no dark frame to undo at borders
    l1_weight: float = 1.0  # loss weights: see the module docstring
    colour_weight: float = 1.0
    edge_weight: float = 0.5
    mse_weight: float = 0.0
    lab_weight: float = 0.0  # L1 of the CIELAB a*, b* of 4x4 local means, / 100 (mmgist.metrics.lab_terms)
    spread_weight: float = 0.0  # "vq", "plain-vq": `spread_term` on the batch's lookup vectors, which keeps every
    # dimension of the lookup alive (v1 and v2 collapsed to 3 of 8, and lost red-green with them: #31)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown image-vq preset {self.preset!r}; choose one of {list(PRESETS)}")
        for key, value in {**DEFAULTS, **PRESETS[self.preset]}.items():
            if getattr(self, key) is None:  # fields given explicitly win over the preset
                setattr(self, key, value)
        for name in ("channels", "fsq_levels"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(c) for c in value):
                raise TypeError(f"ImageVQConfig.{name} must be a non-empty list of positive ints, got {value!r:.60}")
            if not all(c > 0 for c in value):
                raise ValueError(f"ImageVQConfig.{name} must be a non-empty list of positive ints, got {value!r:.60}")
            setattr(self, name, tuple(int(c) for c in value))
        for c in self.channels:
            if c % (min(32, c // 4) or 1):
                raise ValueError(
                    f"ImageVQConfig.channels: width {c} does not split into {min(32, c // 4)} norm groups; "
                    "use a multiple of 4 (of 32 from 128 on)"
                )
        for name in ("blocks", "z_dim", "code_dim"):
            positive_int(getattr(self, name), f"ImageVQConfig.{name}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; choose one of {list(QUANTIZERS)}")
        if self.lookup not in LOOKUPS:
            raise ValueError(f"unknown ImageVQConfig.lookup {self.lookup!r}; choose one of {list(LOOKUPS)}")
        if self.fit not in FITS:
            raise ValueError(f"unknown fit {self.fit!r}; choose one of {list(FITS)}")
        if self.quantizer == "fsq":
            if any(level < 2 for level in self.fsq_levels):
                raise ValueError(f"ImageVQConfig.fsq_levels must each be at least 2, got {self.fsq_levels}")
            self.codebook_size = int(torch.tensor(self.fsq_levels).prod())
        if integer(self.codebook_size, "ImageVQConfig.codebook_size") < 2:
            raise ValueError(f"ImageVQConfig.codebook_size must be at least 2, got {self.codebook_size}")
        for name in ("commitment_weight", "dead_code_threshold", "l1_weight", "colour_weight", "edge_weight",
                     "mse_weight", "latent_weight", "lab_weight", "spread_weight"):  # fmt: skip
            if finite(getattr(self, name), f"ImageVQConfig.{name}") < 0:
                raise ValueError(f"ImageVQConfig.{name} must be >= 0, got {getattr(self, name)}")
        fraction(self.ema_decay, "ImageVQConfig.ema_decay")


def _make_quantizer(cfg: ImageVQConfig) -> torch.nn.Module:
    from vector_quantize_pytorch import FSQ, VectorQuantize

    if cfg.quantizer == "fsq":
        return FSQ(levels=list(cfg.fsq_levels), dim=cfg.z_dim, channel_first=True)
    common = dict(
        dim=cfg.z_dim,
        codebook_size=cfg.codebook_size,
        decay=cfg.ema_decay,
        commitment_weight=cfg.commitment_weight,
        accept_image_fmap=True,
    )
    if cfg.quantizer == "plain-vq":
        return VectorQuantize(**common)
    return VectorQuantize(
        **common,
        codebook_dim=cfg.code_dim,
        use_cosine_sim=cfg.lookup == "cosine",
        kmeans_init=True,
        kmeans_iters=10,
        threshold_ema_dead_code=cfg.dead_code_threshold,
    )


class Quantized(NamedTuple):
    latents: torch.Tensor  # (B, z, h, w) quantized latents, what the decoder reads
    codes: torch.Tensor  # (B, h, w) long
    commitment: torch.Tensor  # scalar loss
    latent: torch.Tensor  # scalar: |z - latents|^2 / |z|^2, z the encoder's output (detached)


@register_tokenizer("image-vq")
class ImageVQTokenizer(ImageTokenizer):
    config_class = ImageVQConfig
    legacy_config = LEGACY  # v1's and v2's configs lack some fields: they load, and fingerprint, as before
    requires_pretrained = True  # untrained weights encode noise: load a trained one, e.g. "image-vq-f8"

    def __init__(self, config: ImageVQConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.encoder = Encoder(cfg.channels, cfg.blocks, cfg.z_dim, padding=cfg.padding)
        self.decoder = Decoder(cfg.channels, cfg.blocks, cfg.z_dim, padding=cfg.padding)
        self.quantizer = _make_quantizer(cfg)
        self._recent: deque[torch.Tensor] = deque(maxlen=USAGE_WINDOW)  # code histograms of recent steps (not saved)

    @classmethod
    def upgrade_config(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A saved config without the fields added since v1 gets v1's values (LEGACY)."""
        return {**LEGACY, **saved}

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def factor(self) -> int:
        """Pixels per code along each side."""
        return 2 ** (len(self.config.channels) - 1)

    def tokens_per_image(self, height: int, width: int, fit: str | None = None) -> int:
        """Codes for an image of this size (the vocabulary adds one <|row|> per row plus 2 markers)."""
        h, w = fitted_size(height, width, self.factor, fit or self.config.fit)
        return (h // self.factor) * (w // self.factor)

    # --- input handling -----------------------------------------------------------------------
    def preprocess(self, images: Any, fit: str | None = None) -> torch.Tensor:
        """PIL image(s) or tensor (3, H, W) / (B, 3, H, W) -> float (B, 3, H', W') in [0, 1], sized to fit."""
        return fit_images(images_batch(images), self.factor, fit or self.config.fit)

    # --- the model ----------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor) -> Quantized:
        """x (B, 3, H, W) in [0, 1] -> quantized latents (B, z, h, w), codes (B, h, w), commitment loss, and
        the latent term |z - zq|^2 / |z|^2 (z detached: it trains the lookup's projections, not the encoder)."""
        return self._quantize(self.encoder(x * 2 - 1))

    def _quantize(self, z: torch.Tensor) -> Quantized:
        """`quantize` from the encoder's output z (B, z, h, w)."""
        if self.config.quantizer == "fsq":
            zq, codes = self.quantizer(z)
            commit = z.new_zeros(())
        else:
            zq, codes, commit = self.quantizer(z)
            commit = commit.sum()
        target = z.detach()
        latent = (target - zq).pow(2).mean() / target.pow(2).mean().clamp_min(1e-8)
        return Quantized(zq, codes.long(), commit, latent)

    def lookup_latents(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1] -> (B * h * w, d): each patch's vector where the codebook lookup happens
        (the projected latent, unit length for a cosine lookup; FSQ's before rounding; plain-vq's latent)."""
        return self._lookup_vectors(self.encoder(x * 2 - 1))

    def _lookup_vectors(self, z: torch.Tensor) -> torch.Tensor:
        """`lookup_latents` from the encoder's output z (B, z, h, w)."""
        v = self.quantizer.project_in(rearrange(z, "b z h w -> (b h w) z"))
        if self.config.quantizer == "vq" and self.config.lookup == "cosine":
            v = F.normalize(v, dim=-1)
        return v

    def continuous_latents(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1] -> (B, z, h, w): what the decoder would read if the lookup vector were not
        rounded to a code (`lookup_latents` taken back through the lookup's output projection)."""
        v = self.lookup_latents(x)  # (B * h * w, d)
        b, h, w = x.shape[0], x.shape[-2] // self.factor, x.shape[-1] // self.factor
        return rearrange(self.quantizer.project_out(v), "(b h w) z -> b z h w", b=b, h=h, w=w)

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) -> quantized latents (B, z, h, w): the inverse of the lookup in `quantize`."""
        if self.config.quantizer == "fsq":
            return self.quantizer.indices_to_codes(codes)
        vectors = self.quantizer.codebook[codes]  # (B, h, w, code_dim)
        return rearrange(self.quantizer.project_out(vectors), "b h w z -> b z h w")

    def decode_latents(self, zq: torch.Tensor) -> torch.Tensor:
        """(B, z, h, w) -> images (B, 3, H, W), not clamped (differentiable)."""
        return (self.decoder(zq) + 1) / 2

    def forward(self, images: torch.Tensor) -> StepOutput:
        """One training step's loss on images (B, 3, H, W) in [0, 1]: reconstruction terms + commitment."""
        cfg = self.config
        z = self.encoder(images * 2 - 1)
        zq, codes, commit, latent = self._quantize(z)
        recon = self.decode_latents(zq)
        terms = reconstruction_terms(recon, images)
        if cfg.lab_weight > 0:
            terms["lab"] = lab_term(recon, images)
        if cfg.latent_weight > 0:
            terms["latent"] = latent
        if cfg.spread_weight > 0:
            terms["spread"] = spread_term(self._lookup_vectors(z))
        loss = commit + sum(getattr(cfg, f"{name}_weight") * value for name, value in terms.items())
        return StepOutput(
            loss,
            {
                **{name: value.item() for name, value in terms.items()},
                "psnr": (-10 * torch.log10(terms["mse"].detach())).item(),
                "commit": commit.item(),
                "codes_in_batch": torch.unique(codes).numel(),
            },
        )

    # --- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: Any, fit: str | None = None) -> torch.Tensor:
        """Codes (h, w) for one image, (B, h, w) for a list or a batch tensor."""
        single = not is_batch(images, 3)
        x = self.preprocess(images, fit)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        codes = torch.cat([self.quantize(chunk.to(device))[1].cpu() for chunk in _chunks(x, x.shape[-2:])])
        self.train(was_training)
        return codes[0] if single else codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (h, w) -> (3, H, W); (B, h, w) -> (B, 3, H, W); float in [0, 1]."""
        codes = self.check_codes(codes, batched=None)
        single = codes.ndim == 2
        batch = (codes[None] if single else codes).to(next(self.parameters()).device)
        size = (batch.shape[-2] * self.factor, batch.shape[-1] * self.factor)
        images = torch.cat(
            [self.decode_latents(self.codes_to_latents(c)).clamp(0, 1).cpu() for c in _chunks(batch, size)]
        )
        return images[0] if single else images

    def decode_to_pil(self, codes: torch.Tensor) -> Any:
        """Like `decode`, as PIL images (one, or a list for a batch)."""
        images = self.decode(codes)
        return tensor_to_image(images) if images.ndim == 3 else [tensor_to_image(im) for im in images]


def spread_term(v: torch.Tensor) -> torch.Tensor:
    """(N, d) lookup vectors -> scalar, 0 when their d dimensions are uncorrelated with equal variances, and larger
    as the variance gathers in fewer directions: the mean squared off-diagonal correlation plus the variance of
    the dimensions' log-variances. Scale-free: it shapes how the variance is shared, not how large it is (in the
    manner of VICReg's variance and covariance terms)."""
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        raise ValueError(f"spread_term needs (N >= 2, d >= 2) vectors, got shape {tuple(v.shape)}")
    v = v.float() - v.float().mean(0)
    cov = v.T @ v / (len(v) - 1)
    var = cov.diagonal().clamp_min(1e-8)
    corr = cov / (var.sqrt()[:, None] * var.sqrt()[None, :])
    d = v.shape[1]
    off = corr - torch.diag(corr.diagonal())
    return off.pow(2).sum() / (d * (d - 1)) + (var.log() - var.log().mean()).pow(2).mean()


def lab_term(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the CIELAB a*, b* of 4x4 local means of images (B, 3, H, W) in [0, 1], over 100 (a* and b*
    span about -100..100): the red-green and blue-yellow of each small area, which RGB losses let drift."""
    from kornia.color import rgb_to_lab

    local = F.avg_pool2d(recon.clamp(0, 1), 4, ceil_mode=True), F.avg_pool2d(target, 4, ceil_mode=True)
    return (rgb_to_lab(local[0])[:, 1:] - rgb_to_lab(local[1])[:, 1:]).abs().mean() / 100


def _chunks(batch: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Split a batch along dim 0 so each part holds at most CHUNK_PIXELS image pixels (at least one item)."""
    per = max(1, CHUNK_PIXELS // (int(image_size[0]) * int(image_size[1])))
    return batch.split(per)


def reconstruction_terms(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss terms between images (B, 3, H, W): l1, colour (L1 of 4x4 local means), edge (L1 of differences), mse."""
    local = F.avg_pool2d(recon, 4, ceil_mode=True), F.avg_pool2d(target, 4, ceil_mode=True)
    d = recon - target
    edge = (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()
    return {"l1": d.abs().mean(), "colour": (local[0] - local[1]).abs().mean(), "edge": edge, "mse": d.pow(2).mean()}
