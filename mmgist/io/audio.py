"""Reading and writing audio through PyAV (FFmpeg), resampled with torchaudio (`resample`).

Truncated files are refused, not loaded short: where a header states exactly how much it holds (a WAV's
data chunk, FLAC's STREAMINFO), decoding less than that is a ValueError naming the file and both lengths.
Sizes past the limits (MAX_SAMPLE_RATE, MAX_AUDIO_BYTES) are refused before the memory is taken, with the
limit in the message.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import Any

import torch

from ..storage import PathLike, write_bytes_atomic
from ..validate import MAX_SAMPLE_RATE, existing_file, finite
from ..validate import sample_rate as checked_rate

MAX_PEAK = 4.0  # float samples beyond this are refused: a float copy of int16 PCM, not audio in [-1, 1]
MAX_AUDIO_BYTES = 4 << 30  # float32 samples one load_audio may hold (4 GiB: 6 hours of 48 kHz stereo)
MAX_RESAMPLE_KERNEL = 1 << 25  # floats (128 MB) in torchaudio's sinc kernel; past it FFmpeg resamples
AUDIO_FORMATS = {  # suffix -> (container, codec, sample format)
    ".wav": ("wav", "pcm_s16le", "s16"),
    ".flac": ("flac", "flac", "s16"),
    ".mp3": ("mp3", "libmp3lame", "fltp"),
    ".ogg": ("ogg", "libopus", "flt"),
    ".opus": ("ogg", "libopus", "flt"),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def load_audio(
    path: PathLike, sample_rate: int | None = None, mono: bool = False, max_seconds: float | None = None
) -> tuple[torch.Tensor, int]:
    """Read an audio file (wav, flac, ogg/oga/opus, mp3, or the audio of a video file) with PyAV.

    Returns (waveform (channels, samples) float32 in [-1, 1], sample rate). `sample_rate` resamples
    (`resample`), `mono` averages the channels, `max_seconds` stops reading after that much audio
    (bounded memory for a long file). Raises FileNotFoundError / IsADirectoryError for a bad path and
    ValueError, naming the file, for anything else: not a media file, corrupt data, a truncated file (its
    header promises more samples than its data holds), a sample rate over MAX_SAMPLE_RATE, more than
    MAX_AUDIO_BYTES of samples, no audio stream (a video-only file), no samples, NaN or inf samples."""
    import av
    import numpy as np

    path = existing_file(path, "audio file")
    if max_seconds is not None:
        finite(max_seconds, "load_audio max_seconds", positive=True)
    if sample_rate is not None:
        checked_rate(sample_rate, "load_audio sample_rate")
    try:
        container = av.open(str(path))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not an audio file PyAV (FFmpeg) can read: {e}") from e
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise ValueError(f"{str(path)!r} has no audio stream (its streams: {', '.join(kinds)})")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate or rate > MAX_SAMPLE_RATE:
            raise ValueError(f"audio file {str(path)!r} claims a sample rate of {rate} Hz; expected 1 to "
                             f"{MAX_SAMPLE_RATE} Hz (MAX_SAMPLE_RATE): is its header corrupt?")  # fmt: skip
        promised = _promised_samples(path, container, stream, rate)
        limit = None if max_seconds is None else max(1, round(max_seconds * rate))
        parts, total = [], 0
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray()  # planar (channels, n) or packed (1, n * channels)
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                kept = total + arr.shape[1] if limit is None else min(total + arr.shape[1], limit)
                if kept * arr.shape[0] * 4 > MAX_AUDIO_BYTES:
                    raise ValueError(
                        f"audio file {str(path)!r} holds more than {MAX_AUDIO_BYTES / 2**20:g} MiB of float samples "
                        f"(MAX_AUDIO_BYTES, {total / rate:.0f} s read so far); pass max_seconds= to read a part"
                    )
                parts.append(_pcm_to_float(arr))
                total += arr.shape[1]
                if limit is not None and total >= limit:
                    break
        except av.error.FFmpegError as e:
            raise ValueError(f"audio file {str(path)!r} is corrupt or truncated: {e}") from e
    if not parts or total == 0:
        raise ValueError(f"audio file {str(path)!r} holds no samples")
    if promised is not None and total < min(promised, limit or promised):
        raise ValueError(
            f"audio file {str(path)!r} is truncated: its header promises {promised} samples "
            f"({promised / rate:.3f} s), its data holds {total} ({total / rate:.3f} s)"
        )
    wave = torch.from_numpy(np.concatenate(parts, axis=1)[:, :limit].astype(np.float32))
    if not torch.isfinite(wave).all():
        raise ValueError(f"audio file {str(path)!r} holds NaN or inf samples")
    if mono:
        wave = wave.mean(0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wave, rate = resample(wave, rate, int(sample_rate)), int(sample_rate)
    return wave.contiguous(), int(rate)


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """(..., samples) at `orig` Hz -> (..., ceil(samples * new / orig)) at `new` Hz, with torchaudio's sinc
    resampler. Its kernel has about new' x orig' entries for the ratio new' / orig' in lowest terms, so an
    awkward pair (47999 -> 16000 Hz: 3 GB) goes through FFmpeg's libswresample instead, which streams."""
    import torchaudio.functional as AF

    orig, new = checked_rate(orig, "resample orig"), checked_rate(new, "resample new")
    if orig == new:
        return wave
    g = math.gcd(orig, new)
    width = math.ceil(6 * (orig // g) / (min(orig, new) // g * 0.99))  # torchaudio's lowpass_filter_width=6
    if new // g * (orig // g + 2 * width) <= MAX_RESAMPLE_KERNEL:
        return AF.resample(wave, orig, new)
    return _swresample(wave, orig, new)


def _swresample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """`resample` by FFmpeg (libswresample through PyAV), one channel at a time, cut or padded to its length."""
    import av
    import numpy as np

    flat = wave.detach().float().cpu().reshape(-1, wave.shape[-1]).numpy()
    length = math.ceil(wave.shape[-1] * new / orig)
    out = np.zeros((flat.shape[0], length), dtype=np.float32)
    for i, channel in enumerate(flat):
        resampler = av.AudioResampler(format="flt", layout="mono", rate=new)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channel[None]), format="flt", layout="mono")
        frame.sample_rate = orig
        pieces = [f.to_ndarray()[0] for f in resampler.resample(frame) + resampler.resample(None)]
        got = np.concatenate(pieces)[:length] if pieces else np.zeros(0, dtype=np.float32)
        out[i, : len(got)] = got
    return torch.from_numpy(out).reshape(*wave.shape[:-1], length).to(wave.dtype)


def _promised_samples(path: Path, container: Any, stream: Any, rate: int) -> int | None:
    """Samples per channel the file's header states exactly (a WAV's data chunk, FLAC's STREAMINFO), else None."""
    if container.format.name == "flac" and stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if container.format.name != "wav":
        return None
    with open(path, "rb") as f:  # FFmpeg reports a WAV's length from the file's size, so read the header here
        if f.read(12)[8:12] != b"WAVE":
            return None  # RF64 / W64: sizes live elsewhere
        block = None
        while len(head := f.read(8)) == 8:
            chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk == b"fmt ":
                fmt = f.read(size)
                block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                f.seek(size & 1, 1)
            elif chunk == b"data":
                unknown = size in (0, 0xFFFFFFFF)  # a stream written before its length was known
                return None if unknown or not block else size // block
            else:
                f.seek(size + (size & 1), 1)
    return None


def _pcm_to_float(arr):
    """A decoded PCM array as float32 in [-1, 1] (integer formats scaled by their range)."""
    import numpy as np

    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128) / 128
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(-np.iinfo(arr.dtype).min)
    return arr.astype(np.float32)


def save_audio(path: PathLike, waveform: torch.Tensor, sample_rate: int) -> None:
    """Write a waveform (samples,) or (channels, samples), float in [-1, 1], atomically.

    The format follows the suffix: .wav and .flac (16-bit PCM), .mp3, .ogg / .opus (Opus, at 8, 12,
    16, 24 or 48 kHz). Lossy formats change the length (encoder delay) and Opus reads back at 48 kHz.
    Samples beyond [-1, 1] are clipped (a decoder's overshoot); NaN or inf is refused."""
    import av
    import numpy as np

    suffix = Path(path).suffix.lower()
    if suffix not in AUDIO_FORMATS:
        raise ValueError(f"cannot tell an audio format from the suffix {suffix!r} of {str(path)!r}; "
                         f"use one of {sorted(AUDIO_FORMATS)}")  # fmt: skip
    if isinstance(waveform, torch.Tensor) and not waveform.dtype.is_floating_point:
        raise TypeError(f"save_audio needs float samples in [-1, 1], got {waveform.dtype} (scale PCM first)")
    if not isinstance(waveform, torch.Tensor) or waveform.ndim not in (1, 2) or waveform.numel() == 0:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise ValueError(f"save_audio needs a non-empty waveform (samples,) or (channels, samples), got {shape}")
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise ValueError(f"save_audio: sample_rate must be a positive int, got {sample_rate!r}")
    checked_rate(sample_rate, "save_audio sample_rate")
    wave = waveform.detach().float().cpu().reshape(-1, waveform.shape[-1])  # (channels, samples)
    if wave.shape[0] > 2:
        raise ValueError(f"save_audio writes mono or stereo, got {wave.shape[0]} channels (shape {tuple(wave.shape)})")
    if not torch.isfinite(wave).all():
        raise ValueError(f"the waveform holds {int((~torch.isfinite(wave)).sum())} NaN or inf sample(s); not written")
    container_fmt, codec, sample_fmt = AUDIO_FORMATS[suffix]
    for name, rates in (("libopus", OPUS_RATES), ("libmp3lame", MP3_RATES)):
        if codec == name and sample_rate not in rates:
            raise ValueError(f"{suffix} needs a sample rate in {rates}, got {sample_rate}; resample first")
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    arr = wave.clamp(-1, 1).numpy()
    if sample_fmt == "s16":
        arr = (arr * 32767).round().astype(np.int16)
    frame_data = arr if sample_fmt.endswith("p") else arr.T.reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame_data), format=sample_fmt, layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    write_bytes_atomic(path, buf.getvalue())


def as_waveform(x: Any, batched: bool = False) -> torch.Tensor:
    """A waveform as float (channels, samples), or (B, channels, samples) when `batched` and 3-d; clear errors.

    int16 / int32 PCM is scaled to [-1, 1]; float samples must be finite with peak <= MAX_PEAK."""
    if not isinstance(x, torch.Tensor):
        kind = type(x).__name__
        hint = "; load a file with mmgist.io.load_audio(path)" if isinstance(x, str) else ""
        raise TypeError(f"a waveform must be a tensor (samples,) or (channels, samples), got {kind}{hint}")
    if x.dtype in (torch.int16, torch.int32):
        x = x.float() / (32768.0 if x.dtype == torch.int16 else 2.0**31)
    elif not x.dtype.is_floating_point:
        raise TypeError(f"a waveform must be float in [-1, 1] or int16/int32 PCM, got {x.dtype}")
    x = x.float()
    if x.ndim == 1:
        x = x[None]
    wants = (2, 3) if batched else (2,)
    if x.ndim not in wants:
        raise ValueError(
            f"a waveform must be (samples,) or (channels, samples)"
            f"{' or (batch, channels, samples)' if batched else ''}, got shape {tuple(x.shape)}"
        )
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"the waveform is empty (shape {tuple(x.shape)}); expected at least one sample")
    if x.shape[-2] > 64:
        raise ValueError(
            f"the waveform has {x.shape[-2]} channels (shape {tuple(x.shape)}); expected (channels, samples) "
            "with at most 64 channels: is it (samples, channels)? pass waveform.T"
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"the waveform holds {bad} NaN or inf sample(s); expected finite samples in [-1, 1]")
    peak = float(x.abs().max())
    if peak > MAX_PEAK:
        raise ValueError(
            f"the waveform's peak amplitude is {peak:.4g}; expected float samples in [-1, 1] (int16 PCM as float? "
            "divide by 32768)"
        )
    return x[None] if batched and x.ndim == 2 else x
