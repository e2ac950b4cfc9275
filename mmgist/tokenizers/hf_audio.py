"""hf-audio: the neural audio codecs that transformers implements (EnCodec, DAC, Mimi, X-codec) as tokenizers.

    codec = load_tokenizer("hf-audio", path="/models/encodec_24khz", bandwidth=1.5)   # 2 codebooks
    codec = load_tokenizer("/models/dac_16khz")              # a transformers folder: its model_type picks hf-audio
    codes = codec.encode(waveform, sample_rate=44100)         # (n, frames); any rate, channels averaged
    audio = codec.decode(codes)                               # (1, frames * hop) float at codec.sample_rate

The audio protocol of audio-rvq, so the shared vocabulary, prompts, the LM and distill_gist take these
codes unchanged. Shapes: waveform (B, 1, S) at the codec's rate -> codes (B, n, F), F = S / hop
(the signal is padded with silence to whole frames) -> waveform (B, 1, F * hop).

Bitrate. `num_codebooks=` or `bandwidth=` (kbps) at load time sets how many codebooks the tokenizer
(and the vocabulary built from it) has; `encode(..., num_codebooks=m)` takes any m up to that. A
bandwidth must be a whole number of codebooks: the message lists the valid ones (for EnCodec and
X-codec these include the model's own `target_bandwidths`). Mimi needs at least its semantic codebooks.

Choices, documented rather than hidden:
- EnCodec models that normalize loudness per chunk (`normalize=True`, the 48 kHz stereo model) are
  refused: each chunk's scale is a float that a token sequence has no place for, and decoding without
  it gives the wrong loudness. The 24 kHz and 32 kHz models do not normalize and are supported.
- Codes are computed on the whole signal at once (memory grows with length); split long recordings.
- Models run under torch.no_grad in the config's dtype and device; codes come back on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from ..validate import finite, is_int
from .base import AudioTokenizer
from .hf_folder import PretrainedFolderTokenizer
from .inputs import is_batch, waveform_batch
from .registry import register_alias, register_tokenizer


@dataclasses.dataclass
class HFAudioConfig:
    """`HFAudioConfig(path="/models/encodec_24khz", bandwidth=1.5)`."""

    path: str = ""  # a transformers codec folder, or a repo id already in the local Hugging Face cache
    num_codebooks: int | None = None  # codebooks per frame in the vocabulary (default: all, or bandwidth's)
    bandwidth: float | None = None  # kbps, instead of num_codebooks
    model_type: str = ""  # filled on load: encodec, dac, mimi or xcodec
    dtype: str = "float32"  # float32, bfloat16 or float16
    device: str = "cpu"
    weights_sha256: str = ""  # filled on load; a saved tokenizer refuses a folder whose weights changed


class _Codec:
    """What one model type needs: its rates and sizes, and encode/decode on (B, 1, S) / (B, n, F)."""

    min_codebooks = 1
    bandwidths: tuple[float, ...] = ()  # the model's own bandwidth settings, if it has them

    def __init__(self, model: torch.nn.Module, sample_rate: int, hop: int, codebook_size: int, codebooks: int):
        self.model, self.sample_rate, self.hop = model, int(sample_rate), int(hop)
        self.codebook_size, self.max_codebooks = int(codebook_size), int(codebooks)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _Encodec(_Codec):
    def __init__(self, model: torch.nn.Module) -> None:
        c = model.config
        if c.normalize or c.chunk_length_s is not None or c.audio_channels != 1:
            raise ValueError(
                f"hf-audio: this EnCodec model normalizes loudness per chunk (normalize={c.normalize}, "
                f"chunk_length_s={c.chunk_length_s}, audio_channels={c.audio_channels}); each chunk's scale is a "
                "float a token sequence cannot hold. Supported: mono models without normalization (24 kHz, 32 kHz)"
            )
        super().__init__(model, c.sampling_rate, math.prod(c.upsampling_ratios), c.codebook_size, c.num_quantizers)
        self.bandwidths = tuple(c.target_bandwidths)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        q = self.model.quantizer
        per_codebook = math.log2(q.codebook_size) * q.frame_rate / 1000  # kbps
        # the quantizer floors bandwidth / per_codebook to a number of codebooks: half a codebook over n gives n
        codes = q.encode(self.model.encoder(x), bandwidth=(n + 0.5) * per_codebook)  # (n, B, F)
        return codes.transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(self.model.quantizer.decode(codes.transpose(0, 1)))


class _Dac(_Codec):
    def __init__(self, model: torch.nn.Module) -> None:
        c = model.config
        super().__init__(model, c.sampling_rate, c.hop_length, c.codebook_size, c.n_codebooks)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return self.model.encode(x, n_quantizers=n, return_dict=True).audio_codes[:, :n]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values[:, None]


class _Mimi(_Codec):
    def __init__(self, model: torch.nn.Module) -> None:
        c = model.config
        super().__init__(
            model, c.sampling_rate, round(c.sampling_rate / c.frame_rate), c.codebook_size, c.num_quantizers
        )
        self.min_codebooks = c.num_semantic_quantizers

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return self.model.encode(x, num_quantizers=n).audio_codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes).audio_values


class _Xcodec(_Codec):
    def __init__(self, model: torch.nn.Module) -> None:
        c = model.config
        super().__init__(model, c.sample_rate, c.hop_length, c.codebook_size, c.num_quantizers)
        self.bandwidths = tuple(c.target_bandwidths)

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        # residual VQ is greedy, so the first n codes of the full encoding are the n-codebook encoding
        top = max(self.bandwidths)
        return self.model.encode(x, bandwidth=top, return_dict=True).audio_codes[:, :n]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes, return_dict=True).audio_values


CODECS: dict[str, tuple[str, type[_Codec]]] = {  # model_type -> (transformers class, adapter)
    "encodec": ("EncodecModel", _Encodec),
    "dac": ("DacModel", _Dac),
    "mimi": ("MimiModel", _Mimi),
    "xcodec": ("XcodecModel", _Xcodec),
}


@register_tokenizer("hf-audio")
class HFAudioTokenizer(PretrainedFolderTokenizer, AudioTokenizer):
    """A transformers audio codec from a local folder (see the module docstring)."""

    config_class = HFAudioConfig
    model_types = tuple(CODECS)

    def _build(self, folder: Path, model_type: str, config: dict[str, Any]) -> torch.nn.Module:
        import transformers

        model = getattr(transformers, CODECS[model_type][0]).from_pretrained(
            folder, local_files_only=True, dtype=torch.float32
        )
        self.codec = CODECS[model_type][1](model)
        self.config.num_codebooks = self._resolve_codebooks(self.config.num_codebooks, self.config.bandwidth)
        self.config.bandwidth = None  # now held as num_codebooks: one tokenizer, one fingerprint
        return model

    def _resolve_codebooks(self, n: Any, bandwidth: Any) -> int:
        codec, who = self.codec, f"{self.name} ({self.config.model_type})"
        lo, hi = codec.min_codebooks, codec.max_codebooks
        per = self.bitrate(1) / 1000
        if bandwidth is not None:
            valid = sorted({round(k * per, 4) for k in range(lo, hi + 1)} | set(codec.bandwidths))
            k = finite(bandwidth, "bandwidth", positive=True) / per
            if abs(k - round(k)) > 1e-3 or not lo <= round(k) <= hi:  # the listed values are rounded
                raise ValueError(f"{who} doesn't support the bandwidth {bandwidth} kbps. Select one of {valid}.")
            if n is not None and n != round(k):
                raise ValueError(f"{who}: bandwidth {bandwidth} kbps is {round(k)} codebooks, but num_codebooks={n}")
            return round(k)
        if n is None:
            return hi
        if not is_int(n) or not lo <= n <= hi:
            raise ValueError(f"{who}: num_codebooks must be an int in {lo}..{hi}, got {n!r}")
        return int(n)

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def hop(self) -> int:
        """Samples per frame."""
        return self.codec.hop

    # --- the protocol -------------------------------------------------------------------------
    def preprocess(self, waveform: Any, sample_rate: int | None) -> torch.Tensor:
        """Any waveform(s) -> float (B, 1, S) mono at the codec's rate, S a whole number of frames."""
        return waveform_batch(waveform, sample_rate, self.sample_rate, self.hop, self.name)

    @torch.no_grad()
    def encode(self, waveform: Any, sample_rate: int | None = None, num_codebooks: int | None = None) -> torch.Tensor:
        """Codes (n, F) for one waveform, (B, n, F) for a list or a (B, channels, S) tensor; n <= num_codebooks."""
        n = self.num_codebooks if num_codebooks is None else num_codebooks
        if not is_int(n) or not self.codec.min_codebooks <= n <= self.num_codebooks:
            raise ValueError(
                f"{self.name}: num_codebooks must be an int in {self.codec.min_codebooks}..{self.num_codebooks}, "
                f"got {n!r}"
            )
        x = self.preprocess(waveform, sample_rate)
        codes = self.codec.encode(x.to(self.device, self.dtype), int(n)).long().cpu()  # (B, n, F)
        frames = x.shape[-1] // self.hop
        assert codes.shape == (x.shape[0], n, frames), (tuple(codes.shape), n, frames)
        return codes if is_batch(waveform, 2) else codes[0]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (n, F) -> waveform (1, F * hop); (B, n, F) -> (B, 1, F * hop); float at `sample_rate`."""
        codes = self.check_codes(codes, batched=None, fewer_codebooks=True)
        if codes.shape[-2] < self.codec.min_codebooks:
            raise ValueError(
                f"{self.name}: codes have {codes.shape[-2]} codebooks (shape {tuple(codes.shape)}); this "
                f"{self.config.model_type} model needs at least {self.codec.min_codebooks}"
            )
        batch = codes[None] if codes.ndim == 2 else codes
        out = self.codec.decode(batch.to(self.device)).float().cpu()
        length = batch.shape[-1] * self.hop
        out = torch.nn.functional.pad(out[..., :length], (0, max(0, length - out.shape[-1])))
        if not torch.isfinite(out).all():
            raise FloatingPointError(f"{self.name}: decoding produced NaN or inf")
        return out[0] if codes.ndim == 2 else out


for _alias, _repo in {
    "encodec-24khz": "facebook/encodec_24khz",
    "encodec-32khz": "facebook/encodec_32khz",
    "dac-16khz": "descript/dac_16khz",
    "dac-24khz": "descript/dac_24khz",
    "dac-44khz": "descript/dac_44khz",
    "mimi": "kyutai/mimi",
    "xcodec-hubert-librispeech": "hf-audio/xcodec-hubert-librispeech",
}.items():
    register_alias(_alias, "hf-audio", path=_repo)
