"""video-vq: clips as a grid of codes over time and space, 4x in time and 8x8 in space.

    tok = load_tokenizer("video-vq")               # trained on clips made from real photographs
    codes = tok.encode(frames)                     # uint8 or float (T, 3, H, W) -> (1 + (T - 1) / 4, H / 8, W / 8)
    clip = tok.decode(codes)                       # -> (1 + 4 (t - 1), 3, 8 h, 8 w) float in [0, 1]

Shapes (B batch, T = 1 + 4n frames, z latent width, f = 8 spatial, 4 temporal):
frames (B, T, 3, H, W) -> spatial encoder per frame (mmgist.tokenizers.conv, image-vq's) -> (B, z, T, h, w)
-> causal temporal encoder (conv3d) -> (B, d, 1 + n, h, w) -> FSQ -> codes (B, 1 + n, h, w)
-> causal temporal decoder -> (B, z, T, h, w) -> spatial decoder per frame -> (B, T, 3, H, W).

The 3-D encoder is factorized: 2-D convolutions per frame bring 8x8 pixels to one latent (they start
as the shipped image tokenizer's, a cheap start that the issue suggested), and causal 3-D
convolutions over those latents bring 4 frames to one. The first frame is coded on its own (MAGVIT-v2,
Cosmos), so one image is a valid clip: T = 1 gives one latent frame. The quantizer is FSQ from
vector-quantize-pytorch (a product of levels: nothing to collapse, every code usable).

Training (mmgist.tokenizers.train_video): stage 1 fits the temporal parts so that the decoded latents
match the image tokenizer's quantized latents of every frame (`targets`), the spatial parts frozen;
the spatial decoder then only ever sees latents like the ones it was trained on.

Frame counts that are not 1 + 4n are handled by `fit`: "pad" (repeat the last frame; decode returns
the padded length), "drop" (drop trailing frames), or "error". Sizes that are not a multiple of 8 are
handled by `spatial_fit` as for images (mmgist.tokenizers.inputs). Frames are coded as given: the
tokenizer does not resample time (read files with `load_video(path, fps=8)`; `fps` is the rate the
tokenizer was trained at, for tokens-per-second figures).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from einops import rearrange

from ..train import StepOutput
from ..validate import finite, frame_rate, is_int, positive_int
from .base import VideoTokenizer
from .conv import Decoder, Encoder
from .conv3d import TemporalDecoder, TemporalEncoder
from .image import reconstruction_terms
from .inputs import FITS, FRAME_FITS, fit_images, images_batch
from .registry import register_tokenizer

TEMPORAL = 4  # frames per latent frame (after the first)
MAX_FRAMES_AT_ONCE = 33  # frames decoded through the spatial decoder in one call (bounded memory)
PRESETS: dict[str, dict[str, Any]] = {
    # the spatial part is image-vq f8's (channels, blocks, z_dim), so it can start from the shipped weights
    "f8t4": {"channels": (48, 96, 128, 192), "blocks": 1, "z_dim": 64, "temporal_width": 96, "temporal_blocks": 1,
             "fsq_levels": (8, 8, 8, 8)},
    "tiny": {"channels": (8, 16), "blocks": 1, "z_dim": 8, "temporal_width": 8, "temporal_blocks": 1,
             "fsq_levels": (4, 4)},  # tests
}  # fmt: skip


@dataclasses.dataclass
class VideoVQConfig:
    """`VideoVQConfig(preset="f8t4")`; any field given explicitly overrides the preset's value."""

    preset: str = "f8t4"
    channels: tuple[int, ...] | None = None  # spatial widths; f = 2 ** (len - 1)
    blocks: int | None = None
    z_dim: int | None = None  # per-frame latent width (the image tokenizer's)
    temporal_width: int | None = None  # width of the causal 3-D convolutions
    temporal_blocks: int | None = None
    fsq_levels: tuple[int, ...] | None = None  # codebook = product of levels (8, 8, 8, 8): 4096, as image-vq
    fps: float = 8.0  # the frame rate clips were made at (for tokens per second)
    fit: str = "pad"  # frame counts that are not 1 + 4n: pad, drop or error
    spatial_fit: str = "pad"  # sizes that are not a multiple of f (inputs.FITS)
    latent_weight: float = 1.0  # loss: MSE to the image tokenizer's quantized latents (when given)
    pixel_weight: float = 0.0  # loss: image-vq's reconstruction terms on decoded frames (costly on a CPU)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown video-vq preset {self.preset!r}; choose one of {list(PRESETS)}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        for name in ("channels", "fsq_levels"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(v) and v > 0 for v in value):
                raise ValueError(f"VideoVQConfig.{name} must be a non-empty list of positive ints, got {value!r:.60}")
            setattr(self, name, tuple(int(v) for v in value))
        for name in ("blocks", "z_dim", "temporal_width", "temporal_blocks"):
            positive_int(getattr(self, name), f"VideoVQConfig.{name}")
        finite(self.fps, "VideoVQConfig.fps", positive=True)
        if self.fit not in FRAME_FITS:
            raise ValueError(f"unknown fit {self.fit!r} for frame counts; choose one of {list(FRAME_FITS)}")
        if self.spatial_fit not in FITS:
            raise ValueError(f"unknown spatial_fit {self.spatial_fit!r}; choose one of {list(FITS)}")
        for name in ("latent_weight", "pixel_weight"):
            if finite(getattr(self, name), f"VideoVQConfig.{name}") < 0:
                raise ValueError(f"VideoVQConfig.{name} must be >= 0, got {getattr(self, name)}")


@register_tokenizer("video-vq")
class VideoVQTokenizer(VideoTokenizer):
    config_class = VideoVQConfig
    requires_pretrained = True  # untrained weights encode noise: load a trained one, "video-vq"
    storage_dtype = torch.float16  # 8.6 M weights: 17 MB saved instead of 34 (the card measures the float16 weights)

    def __init__(self, config: VideoVQConfig | None = None) -> None:
        super().__init__(config)
        from vector_quantize_pytorch import FSQ

        cfg = self.config
        self.spatial_encoder = Encoder(cfg.channels, cfg.blocks, cfg.z_dim)
        self.spatial_decoder = Decoder(cfg.channels, cfg.blocks, cfg.z_dim)
        d = len(cfg.fsq_levels)
        self.temporal_encoder = TemporalEncoder(cfg.z_dim, cfg.temporal_width, cfg.temporal_blocks, d)
        self.temporal_decoder = TemporalDecoder(d, cfg.temporal_width, cfg.temporal_blocks, cfg.z_dim)
        self.quantizer = FSQ(levels=list(cfg.fsq_levels), dim=d)

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def factor(self) -> int:
        """Pixels per code along each side."""
        return 2 ** (len(self.config.channels) - 1)

    @property
    def fps(self) -> float:
        return self.config.fps

    def tokens_per_second(self, height: int, width: int) -> float:
        """Codes per second of video at `fps` (one latent frame per 4 frames; a clip's first frame adds one more)."""
        return self.config.fps / TEMPORAL * (height // self.factor) * (width // self.factor)

    # --- input handling -----------------------------------------------------------------------
    def preprocess(self, frames: Any, fit: str | None = None, spatial_fit: str | None = None) -> torch.Tensor:
        """(T, 3, H, W) or (B, T, 3, H, W), uint8 or float in [0, 1] -> float (B, 1 + 4n, 3, H', W') in [0, 1]."""
        return fit_clips(frames, self.factor, fit or self.config.fit, spatial_fit or self.config.spatial_fit, self.name)

    # --- the model ----------------------------------------------------------------------------
    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> per-frame latents (B, z, T, h, w)."""
        B = x.shape[0]
        z = self.spatial_encoder(x.flatten(0, 1) * 2 - 1)
        return rearrange(z, "(b t) z h w -> b z t h w", b=B)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame latents (B, z, T, h, w) -> (quantized (B, d, t, h, w), codes (B, t, h, w))."""
        q, codes = self.quantizer(self.temporal_encoder(z))  # FSQ takes 4-d and 5-d maps channels first
        return q, codes.long()

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w) -> quantized (B, d, t, h, w): the inverse of the lookup in `quantize`."""
        return self.quantizer.indices_to_codes(codes)

    def decode_latents(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized (B, d, t, h, w) -> per-frame latents (B, z, 1 + 4 (t - 1), h, w)."""
        return self.temporal_decoder(q)

    def render(self, zhat: torch.Tensor) -> torch.Tensor:
        """Per-frame latents (B, z, T, h, w) -> frames (B, T, 3, H, W), not clamped (differentiable)."""
        B = zhat.shape[0]
        flat = rearrange(zhat, "b z t h w -> (b t) z h w")
        images = torch.cat([self.spatial_decoder(part) for part in flat.split(MAX_FRAMES_AT_ONCE)])
        return rearrange((images + 1) / 2, "(b t) c h w -> b t c h w", b=B)

    def forward(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        """One training step. batch["clips"] (B, T, 3, H, W) in [0, 1]; batch["targets"] (optional) the image
        tokenizer's quantized latents of every frame (B, z, T, h, w)."""
        cfg, clips = self.config, batch["clips"]
        z = batch["latents"] if batch.get("latents") is not None else self.encode_latents(clips)
        q, codes = self.quantize(z)
        zhat = self.decode_latents(q)
        loss, metrics = zhat.new_zeros(()), {"codes_in_batch": torch.unique(codes).numel()}
        if batch.get("targets") is not None and cfg.latent_weight:
            mse = (zhat - batch["targets"]).pow(2).mean()
            loss = loss + cfg.latent_weight * mse
            metrics["latent_mse"] = mse.item()
        if cfg.pixel_weight:
            recon = self.render(zhat).flatten(0, 1)
            terms = reconstruction_terms(recon, clips.flatten(0, 1))
            loss = loss + cfg.pixel_weight * (terms["l1"] + terms["colour"] + 0.5 * terms["edge"])
            metrics["psnr"] = (-10 * torch.log10(terms["mse"].detach())).item()
        return StepOutput(loss, metrics)

    # --- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self, frames: Any, fit: str | None = None, spatial_fit: str | None = None, fps: float | None = None
    ) -> torch.Tensor:
        """Codes (t, h, w) for one clip (T, 3, H, W); (B, t, h, w) for a batch (B, T, 3, H, W). `fps`, the clip's
        rate, is only checked: time is not resampled (read files with load_video(path, fps=tok.fps))."""
        if fps is not None:
            frame_rate(fps, f"{self.name}.encode fps")
        x = self.preprocess(frames, fit, spatial_fit)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            codes = torch.cat([self.quantize(self.encode_latents(c[None].to(device)))[1].cpu() for c in x])
        finally:
            self.train(was_training)
        return codes[0] if frames.ndim == 4 else codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (t, h, w) -> frames (1 + 4 (t - 1), 3, 8h, 8w); (B, t, h, w) -> (B, ...); float in [0, 1]."""
        codes = self.check_codes(codes, batched=None)
        single = codes.ndim == 3
        batch = codes[None] if single else codes
        device = next(self.parameters()).device
        out = torch.cat(
            [self.render(self.decode_latents(self.codes_to_latents(c[None].to(device)))).clamp(0, 1).cpu()
             for c in batch]
        )  # fmt: skip
        if not torch.isfinite(out).all():
            raise FloatingPointError(f"{self.name}: decoding produced NaN or inf")
        return out[0] if single else out


def fit_clips(frames: Any, factor: int, fit: str, spatial_fit: str, who: str, every: int = TEMPORAL) -> torch.Tensor:
    """(T, 3, H, W) or (B, T, 3, H, W), uint8 or float in [0, 1] -> float (B, 1 + every * n, 3, H', W') in
    [0, 1]: sizes fitted to the patch grid by `spatial_fit`, frame counts by `fit` (pad, drop or error)."""
    if fit not in FRAME_FITS:
        raise ValueError(f"unknown fit {fit!r} for frame counts; choose one of {list(FRAME_FITS)}")
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{who}: frames must be a tensor (T, 3, H, W) or (B, T, 3, H, W), got "
                        f"{type(frames).__name__} (read a file with mmgist.io.load_video)")  # fmt: skip
    if frames.ndim not in (4, 5) or frames.shape[-3] not in (1, 3) or 0 in frames.shape:
        raise ValueError(
            f"{who}: frames must be (T, 3, H, W) or (B, T, 3, H, W) with T >= 1, got {tuple(frames.shape)}"
        )
    x = frames[None] if frames.ndim == 4 else frames
    B, T = x.shape[:2]
    flat = fit_images(images_batch(x.flatten(0, 1)), factor, spatial_fit)
    x = flat.view(B, T, *flat.shape[1:])
    if (T - 1) % every:
        if fit == "error":
            raise ValueError(f"{who}: {T} frames is not 1 + {every}n; pass fit='pad' or 'drop'")
        if fit == "drop":
            return x[:, : 1 + (T - 1) // every * every]
        extra = every - (T - 1) % every
        x = torch.cat([x, x[:, -1:].expand(-1, extra, -1, -1, -1)], dim=1)
    return x
