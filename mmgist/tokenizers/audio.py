"""audio-rvq: a convolutional waveform codec, residual VQ on 50 frames per second of 16 kHz mono.

    tok = load_tokenizer("audio-rvq")                       # trained on real speech, music and sounds
    codes = tok.encode(waveform, sample_rate=44100)          # (samples,) or (channels, samples) -> (8, frames)
    codes = tok.encode(waveform, 44100, num_codebooks=4)     # fewer codebooks: a lower bitrate (4 x 10 bits x 50 Hz)
    audio = tok.decode(codes)                                # (n, frames) -> (1, frames * hop) at tok.sample_rate

Shapes (B batch, S samples, z latent width, F = S / hop frames, N codebooks):
waveform (B, 1, S) -> encoder (mmgist.tokenizers.conv1d) -> (B, z, F) -> residual quantizer -> codes
(B, N, F) and quantized latents (B, z, F) -> decoder -> (B, 1, S).

Quantizers (`quantizer=`), all from vector-quantize-pytorch:
    "rvq"        N `VectorQuantize` layers, each projecting the residual to a low-dimensional space
                 (code_dim 8) and looking codes up by cosine similarity, k-means init, EMA, dead-code
                 restart: DAC's recipe for keeping every codebook in use (the default). The residual loop
                 is written here because the library's ResidualVQ shares one projection across codebooks,
                 so its cosine-sim codes (unit vectors) could not carry the residual's magnitude.
    "rfsq"       the library's ResidualFSQ: finite scalar levels per codebook, nothing to collapse
    "plain-rvq"  the library's ResidualVQ, Euclidean lookup in the full latent space, EMA, none of the
                 usage tricks: the baseline
Every kind trains with quantizer dropout, so one model decodes any number of codebooks: the bitrate is
chosen at encode time, and the first n codes of an N-code encoding are exactly an n-code encoding.
"rvq" drops per item (`dropout` of the batch items use only their first n codebooks, n uniform in
1..N, as DAC does); the library's quantizers drop for the whole batch at once (their own scheme).

Training loss (weights in the config): L1 between log-mel spectrograms at several window sizes
(`mmgist.metrics.mel_spectrogram`), plus L1 on the waveform, plus the quantizer's commitment loss.

Input: any sample rate (resampled with torchaudio), mono or several channels (averaged), float in
[-1, 1] or int16/int32 PCM (scaled). The signal is padded with silence to a whole number of frames;
`decode` returns whole frames. Long signals are processed `chunk_seconds` at a time with enough
context on each side to cover the receptive field: chunked codes equal whole-signal codes up to float
rounding (a code at a near tie may flip; tests bound how many), in memory that does not grow with length.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import torch
from einops import rearrange

from ..metrics import multiscale_mel_l1, si_snr
from ..train import StepOutput
from ..validate import finite, fraction, integer, is_int, positive_int
from .base import AudioTokenizer
from .conv1d import Decoder, Encoder
from .inputs import is_batch, waveform_batch
from .registry import register_tokenizer

QUANTIZERS = ("rvq", "rfsq", "plain-rvq")
LOOKUPS = ("cosine", "euclidean")  # "rvq": how a residual finds its code (AudioRVQConfig.lookup)
CHUNK_SECONDS = 20.0  # default length processed at once by encode/decode
PRESETS: dict[str, dict[str, Any]] = {
    # 16 kHz, hop 320 = 50 Hz. Sized for 2 CPU cores: ~1 M weights, encode + decode ~50x real time.
    "16k-50hz": {"sample_rate": 16000, "channels": (16, 32, 64, 128, 256), "strides": (8, 5, 4, 2), "units": 1},
    "tiny": {
        "sample_rate": 8000,
        "channels": (4, 8, 16),
        "strides": (4, 4),
        "units": 1,
        "z_dim": 8,
        "num_codebooks": 3,
        "codebook_size": 16,
        "fsq_levels": (4, 4),
    },
}
# fields added since v1, at v1's values: a config saved without them loads as v1, and its fingerprint holds
LEGACY: dict[str, Any] = {"lookup": "cosine", "latent_weight": 0.0, "loudness": None}
DEFAULTS: dict[str, Any] = {"z_dim": 64, "num_codebooks": 8, "codebook_size": 1024, "fsq_levels": (4, 4, 4, 4, 4)}


@dataclasses.dataclass
class AudioRVQConfig:
    """`AudioRVQConfig(preset="16k-50hz")`; any field given explicitly overrides the preset's value."""

    preset: str = "16k-50hz"
    sample_rate: int | None = None  # Hz of the codec; input at other rates is resampled
    channels: tuple[int, ...] | None = None  # width per level, one more than strides
    strides: tuple[int, ...] | None = None  # hop = prod(strides) samples per frame
    units: int | None = None  # residual units per level
    z_dim: int | None = None  # latent width fed to the quantizer
    quantizer: str = "rvq"  # see the module docstring
    num_codebooks: int | None = None  # N: the most codebooks an encoding can use
    codebook_size: int | None = None  # per codebook ("rvq", "plain-rvq"); "rfsq" uses prod(fsq_levels)
    code_dim: int = 8  # "rvq": lookup dimension (code_dim = z_dim: no projection)
    lookup: str = "cosine"  # "rvq": cosine (v1: unit codes, which cannot carry the residual's size) or euclidean
    latent_weight: float = 0.0  # "rvq": weight of the latent term, each codebook's output against its residual
    loudness: float | None = None  # dBFS RMS every input is scaled to before encoding (and in training); None:
    # as given. Not undone on decode (the codes carry no gain): decoded audio comes back at this level
    fsq_levels: tuple[int, ...] | None = None  # "rfsq": levels per dimension of each codebook
    commitment_weight: float = 0.25
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.05  # "rvq": restart codes used less than this per step (EMA count)
    dropout: float = 0.5  # share of batch items trained with a random number of codebooks
    mel_weight: float = 1.0
    waveform_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown audio-rvq preset {self.preset!r}; choose one of {list(PRESETS)}")
        for key, value in {**DEFAULTS, **PRESETS[self.preset]}.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        for name in ("channels", "strides", "fsq_levels"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(c) and c > 0 for c in value):
                raise ValueError(f"AudioRVQConfig.{name} must be a non-empty list of positive ints, got {value!r:.60}")
            setattr(self, name, tuple(int(c) for c in value))
        if len(self.channels) != len(self.strides) + 1:
            raise ValueError(
                f"AudioRVQConfig.channels needs one width more than strides, got {self.channels} and {self.strides}"
            )
        for name in ("sample_rate", "units", "z_dim", "num_codebooks", "code_dim"):
            positive_int(getattr(self, name), f"AudioRVQConfig.{name}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; choose one of {list(QUANTIZERS)}")
        if self.lookup not in LOOKUPS:
            raise ValueError(f"unknown AudioRVQConfig.lookup {self.lookup!r}; choose one of {list(LOOKUPS)}")
        if self.quantizer == "rfsq":
            if any(level < 2 for level in self.fsq_levels):
                raise ValueError(f"AudioRVQConfig.fsq_levels must each be at least 2, got {self.fsq_levels}")
            self.codebook_size = math.prod(self.fsq_levels)  # the levels define the codebook
        if integer(self.codebook_size, "AudioRVQConfig.codebook_size") < 2:
            raise ValueError(f"AudioRVQConfig.codebook_size must be at least 2, got {self.codebook_size}")
        for name in ("commitment_weight", "dead_code_threshold", "mel_weight", "waveform_weight", "latent_weight"):
            if finite(getattr(self, name), f"AudioRVQConfig.{name}") < 0:
                raise ValueError(f"AudioRVQConfig.{name} must be >= 0, got {getattr(self, name)}")
        fraction(self.ema_decay, "AudioRVQConfig.ema_decay")
        if self.loudness is not None and not -60 < finite(self.loudness, "AudioRVQConfig.loudness") < 0:
            raise ValueError(
                f"AudioRVQConfig.loudness must be a level in dBFS within (-60, 0) or None, got {self.loudness}"
            )
        if not 0 <= finite(self.dropout, "AudioRVQConfig.dropout") <= 1:
            raise ValueError(f"AudioRVQConfig.dropout must lie in [0, 1], got {self.dropout}")


SILENCE_DB = -60.0  # items quieter than this (RMS, dBFS) are left as they are by `level`: silence stays silence


def level(x: torch.Tensor, target_db: float) -> torch.Tensor:
    """x (B, 1, S) with each item scaled so its RMS is `target_db` dBFS (items under SILENCE_DB unchanged)."""
    rms = x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
    loud = rms > 10 ** (SILENCE_DB / 20)
    return torch.where(loud, x * (10 ** (target_db / 20) / rms.clamp_min(1e-12)), x)


class Quantized(NamedTuple):
    latents: torch.Tensor  # (B, z, F) quantized latents, what the decoder reads
    codes: torch.Tensor  # (B, n, F) long
    commitment: torch.Tensor  # scalar loss
    latent: torch.Tensor  # scalar: each codebook's squared error against its residual / |encoder output|^2 ("rvq")


class _ResidualLowDimVQ(torch.nn.Module):
    """N VectorQuantize layers on successive residuals, each with its own low-dimensional lookup (DAC's
    factorized codes): cosine (v1) or Euclidean. The library's layer trains its input projection through the
    commitment loss but nothing trains its output projection towards the residual it stands for; with
    unit-norm cosine codes the quantized latents kept nothing of the encoder's output (latent error 1.02 at
    every codebook count, the v1 card). A Euclidean lookup in the full latent (code_dim = z_dim, no projection)
    lowers the latent error with every codebook; projected to 8 dimensions with the latent term (`latent_weight`:
    each layer's output trained on its residual) the encoder collapsed instead (docs/tokenizers.md)."""

    def __init__(self, cfg: AudioRVQConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.layers = torch.nn.ModuleList(
            VectorQuantize(
                dim=cfg.z_dim,
                codebook_size=cfg.codebook_size,
                codebook_dim=cfg.code_dim,
                use_cosine_sim=cfg.lookup == "cosine",
                kmeans_init=True,
                kmeans_iters=10,
                threshold_ema_dead_code=cfg.dead_code_threshold,
                decay=cfg.ema_decay,
                commitment_weight=cfg.commitment_weight,
            )
            for _ in range(cfg.num_codebooks)
        )

    def forward(
        self, z: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, F, z), keep (B,) codebooks per item -> quantized (B, F, z), codes (B, F, N), commitment loss,
        latent term (the mean over kept layers of |residual - output|^2, over |z|^2; the residual detached)."""
        out, residual, codes, loss = torch.zeros_like(z), z, [], z.new_zeros(())
        latent, scale = z.new_zeros(()), z.detach().pow(2).mean().clamp_min(1e-8)
        # training runs every layer (under DDP each one all-reduces its EMA statistics, on every rank alike)
        layers = self.layers if self.training else self.layers[: int(keep.max())]
        for i, layer in enumerate(layers):
            # The library's commitment loss, in each codebook's normalized 8-d space, is a batch mean: it also
            # counts dropped items (DAC masks them). Measured: a per-item loss in the 64-d latent space instead
            # pulled the latents onto a handful of codes (4 distinct first codes per batch at step 270, 8.5 with this).
            q, idx, commit = layer(residual)
            use = (keep > i).to(z.dtype)[:, None, None]  # as DAC: every item's residual moves on, the output is masked
            out = out + q * use
            loss = loss + commit.sum()
            error = ((residual.detach() - q) ** 2 * use).mean() / use.mean().clamp_min(1e-8)
            latent = latent + error / scale / len(layers)
            residual = residual - q.detach()
            codes.append(idx)
        return out, torch.stack(codes, -1), loss, latent

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, F, n) -> quantized latents (B, F, z)."""
        return sum(self.layers[i].get_output_from_indices(codes[..., i]) for i in range(codes.shape[-1]))


@register_tokenizer("audio-rvq")
class AudioRVQTokenizer(AudioTokenizer):
    config_class = AudioRVQConfig
    legacy_config = LEGACY  # v1's configs lack these fields: they load, and fingerprint, as before
    requires_pretrained = True  # untrained weights encode noise: load a trained one, e.g. "audio-rvq"

    def __init__(self, config: AudioRVQConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.encoder = Encoder(cfg.channels, cfg.strides, cfg.units, cfg.z_dim)
        self.decoder = Decoder(cfg.channels, cfg.strides, cfg.units, cfg.z_dim)
        self.quantizer = _make_quantizer(cfg)

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop(self) -> int:
        """Samples per frame."""
        return self.encoder.hop

    def bitrate(self, num_codebooks: int | None = None) -> float:
        """Bits per second of an encoding with this many codebooks (all by default; checked)."""
        return super().bitrate(self._num_codebooks(num_codebooks))

    def _num_codebooks(self, n: int | None) -> int:
        if n is None:
            return self.num_codebooks
        if not is_int(n) or not 1 <= n <= self.num_codebooks:
            raise ValueError(f"{self.name}: num_codebooks must be an int in 1..{self.num_codebooks}, got {n!r}")
        return int(n)

    # --- input handling ---------------------------------------------------------------------------
    def preprocess(self, waveform: Any, sample_rate: int | None) -> torch.Tensor:
        """(samples,), (channels, samples), (B, channels, samples) or a list of equal-length waveforms ->
        float (B, 1, S) at the codec's rate, S a whole number of frames (padded with silence); with
        `config.loudness`, each item scaled to that level."""
        x = waveform_batch(waveform, sample_rate, self.sample_rate, self.hop, self.name)
        return x if self.config.loudness is None else level(x, self.config.loudness)

    # --- the model ----------------------------------------------------------------------------
    @torch.no_grad()
    def latent_error(self, x: torch.Tensor, num_codebooks: int | None = None) -> float:
        """x (B, 1, S) preprocessed audio -> |quantized latents - encoder output|^2 / |encoder output|^2 with
        `num_codebooks`: how much of the latent the codes leave out. Residual codes that work lower it with
        every codebook (#30: v1's cosine codes stayed near 1.0)."""
        z = self.encoder(x)
        return ((self.quantize(x, num_codebooks).latents - z).pow(2).sum() / z.pow(2).sum()).item()

    def quantize(
        self, x: torch.Tensor, num_codebooks: int | None = None, keep: torch.Tensor | None = None
    ) -> Quantized:
        """x (B, 1, S) -> quantized latents (B, z, F), codes (B, n, F), commitment loss.

        `keep` (B,), "rvq" only: codebooks used per item (quantizer dropout); default all, or `num_codebooks`."""
        n = self._num_codebooks(num_codebooks)
        z = rearrange(self.encoder(x), "b z f -> b f z")
        if self.config.quantizer == "rvq":
            if keep is None:
                keep = torch.full((x.shape[0],), n, device=x.device)
            zq, codes, commit, latent = self.quantizer(z, keep)
            codes = codes[..., :n]
        else:
            if keep is not None:
                raise ValueError(f"keep (per-item codebooks) needs quantizer='rvq', not {self.config.quantizer!r}")
            zq, codes, commit = self._library_quantize(z)
            latent = z.new_zeros(())
            if n < self.num_codebooks:  # the first n codes, and the latents they alone decode to
                codes = codes[..., :n]
                zq = rearrange(self.codes_to_latents(rearrange(codes, "b f n -> b n f")), "b z f -> b f z")
        return Quantized(rearrange(zq, "b f z -> b z f"), rearrange(codes.long(), "b f n -> b n f"), commit, latent)

    def _library_quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ResidualVQ / ResidualFSQ on z (B, F, z). In training, with probability `dropout` the whole batch
        uses only its first n codebooks (the library's scheme, n uniform in 1..N); the draw is the same on
        every rank (one all-reduce), so distributed ranks run the same collectives."""
        seed = None
        if self.training and torch.is_grad_enabled():
            draws = torch.randint(0, 2**30, (2,), device=z.device)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(draws)
            self.quantizer.quantize_dropout = int(draws[0]) % 10_000 < self.config.dropout * 10_000
            seed = int(draws[1])
        try:
            out = self.quantizer(z, rand_quantize_dropout_fixed_seed=seed)
        finally:
            self.quantizer.quantize_dropout = False
        commit = out[2].sum() if self.config.quantizer == "plain-rvq" else z.new_zeros(())
        return out[0], out[1], commit

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, n, F), n <= N -> quantized latents (B, z, F): the inverse of the lookup in `quantize`."""
        codes = rearrange(codes, "b n f -> b f n")
        if self.config.quantizer == "rvq":
            zq = self.quantizer.decode(codes)
        else:  # the library masks codes of -1: the codebooks not given contribute nothing
            codes = torch.nn.functional.pad(codes, (0, self.num_codebooks - codes.shape[-1]), value=-1)
            zq = self.quantizer.get_output_from_indices(codes)
        return rearrange(zq, "b f z -> b z f")

    def forward(self, x: torch.Tensor) -> StepOutput:
        """One training step's loss on waveforms (B, 1, S) at the codec's rate, S a whole number of frames."""
        cfg = self.config
        B = x.shape[0]
        if cfg.loudness is not None:  # as `preprocess` does on encode
            x = level(x, cfg.loudness)
        keep = None
        if cfg.quantizer == "rvq":  # per-item quantizer dropout (the library's quantizers drop per batch)
            drop = torch.rand(B, device=x.device) < cfg.dropout
            all_n = torch.full((B,), self.num_codebooks, device=x.device)
            keep = torch.where(drop, torch.randint(1, self.num_codebooks + 1, (B,), device=x.device), all_n)
        zq, codes, commit, latent = self.quantize(x, keep=keep)
        if keep is None:  # a library quantizer marks the codebooks it dropped with code -1
            keep = (codes >= 0).sum(1).amin(-1)
        drop = keep < self.num_codebooks
        recon = self.decoder(zq)
        mel = multiscale_mel_l1(recon, x, self.sample_rate)
        wave = (recon - x).abs().mean()
        loss = cfg.mel_weight * mel + cfg.waveform_weight * wave + commit + cfg.latent_weight * latent
        full = ~drop
        metrics = {"mel": mel.item(), "wave_l1": wave.item(), "commit": commit.item(), "latent": latent.item()}
        if full.any():
            metrics["si_snr_all"] = si_snr(recon[full].detach(), x[full]).mean().item()
        metrics["codes_c0"] = torch.unique(codes[:, 0]).numel()  # distinct first-codebook codes in the batch
        return StepOutput(loss, metrics)

    # --- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self,
        waveform: Any,
        sample_rate: int | None = None,
        num_codebooks: int | None = None,
        chunk_seconds: float | None = CHUNK_SECONDS,
    ) -> torch.Tensor:
        """Codes (n, F) for one waveform, (B, n, F) for a list or a (B, channels, S) tensor.

        `num_codebooks` n (default all N): fewer is a lower bitrate. `chunk_seconds=None` encodes all at once."""
        n = self._num_codebooks(num_codebooks)
        single = not is_batch(waveform, 2)
        x = self.preprocess(waveform, sample_rate)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            codes = torch.cat(
                [
                    self._chunked(
                        x[i : i + 1],
                        self.hop,
                        chunk_seconds,
                        lambda part: self.quantize(part.to(device), n)[1].cpu(),
                    )
                    for i in range(x.shape[0])
                ]
            )
        finally:
            self.train(was_training)
        return codes[0] if single else codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, chunk_seconds: float | None = CHUNK_SECONDS) -> torch.Tensor:
        """Codes (n, F) -> waveform (1, F * hop); (B, n, F) -> (B, 1, F * hop); float at `sample_rate`, n <= N."""
        codes = self.check_codes(codes, batched=None, fewer_codebooks=True)
        single = codes.ndim == 2
        batch = codes[None] if single else codes
        device = next(self.parameters()).device
        out = torch.cat(
            [
                self._chunked(
                    batch[i : i + 1],
                    1,
                    chunk_seconds,
                    lambda part: self.decoder(self.codes_to_latents(part.to(device))).cpu(),
                    out_per_in=self.hop,
                )
                for i in range(batch.shape[0])
            ]
        )
        if not torch.isfinite(out).all():  # cannot happen with finite weights; never hand back NaN silently
            raise FloatingPointError(f"{self.name}: decoding produced NaN or inf")
        return out[0] if single else out

    def _chunked(
        self, x: torch.Tensor, unit: int, chunk_seconds: float | None, run, out_per_in: int = 1
    ) -> torch.Tensor:
        """Apply `run` to (1, C, L) `x` along its last axis in chunks of whole frames with context on each side.

        `unit`: input positions per frame (hop samples for a waveform, 1 for codes); `run` maps L input
        positions to L / unit * (out_per_in * unit) outputs."""
        L = x.shape[-1]
        frames = L // unit
        step = (
            frames
            if chunk_seconds is None
            else max(1, int(finite(chunk_seconds, "chunk_seconds", positive=True) * self.frame_rate))
        )
        if step >= frames:
            return run(x)
        ctx = self.context_frames
        parts = []
        for a in range(0, frames, step):
            b = min(frames, a + step)
            lo, hi = max(0, a - ctx), min(frames, b + ctx)
            out = run(x[..., lo * unit : hi * unit])
            per = out.shape[-1] // (hi - lo)  # outputs per frame
            parts.append(out[..., (a - lo) * per : (b - lo) * per])
        return torch.cat(parts, -1)

    @property
    def context_frames(self) -> int:
        """Frames of context on each side of a chunk: covers the encoder's and decoder's receptive fields."""
        return math.ceil(self.encoder.receptive_radius / self.hop) + 4


def _make_quantizer(cfg: AudioRVQConfig) -> torch.nn.Module:
    """The quantizer of `cfg.quantizer`; the library's built without dropout (`_library_quantize` turns it on)."""
    from vector_quantize_pytorch import ResidualFSQ, ResidualVQ

    if cfg.quantizer == "rvq":
        return _ResidualLowDimVQ(cfg)
    if cfg.quantizer == "rfsq":
        return ResidualFSQ(dim=cfg.z_dim, levels=list(cfg.fsq_levels), num_quantizers=cfg.num_codebooks)
    return ResidualVQ(
        dim=cfg.z_dim,
        num_quantizers=cfg.num_codebooks,
        codebook_size=cfg.codebook_size,
        decay=cfg.ema_decay,
        commitment_weight=cfg.commitment_weight,
    )
