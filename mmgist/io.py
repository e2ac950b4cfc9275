"""Reading and writing media files, with errors that say which file and what is wrong.

Images go through Pillow; audio through PyAV (FFmpeg), resampled with torchaudio (`resample`). An image
over `Image.MAX_IMAGE_PIXELS` (about 89 megapixels) is refused before it is decoded (Pillow itself only
warns up to twice that). 32-bit float images (mode F, a
float TIFF) are read as values in [0, 1], or [0, 255], or [0, 65535], whichever range holds them.

Truncated files are refused, not loaded short: where a header states exactly how much it holds (a WAV's
data chunk, FLAC's STREAMINFO, a video's frame index), decoding less than that is a ValueError naming
the file and both lengths. Sizes past the limits (MAX_SAMPLE_RATE, MAX_AUDIO_BYTES, mmgist.validate's
MAX_FPS, MAX_VIDEO_BYTES) are refused before the memory is taken, with the limit in the message.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from pathlib import Path
from typing import Any

import torch

from .storage import PathLike, write_bytes_atomic
from .validate import MAX_SAMPLE_RATE, existing_file, finite, show
from .validate import sample_rate as checked_rate


def load_image(path: PathLike, mode: str = "RGB"):
    """Open an image file fully decoded and converted to `mode` (grayscale, palette, RGBA, 16-bit all become RGB).

    Raises FileNotFoundError for a missing file, IsADirectoryError for a folder and ValueError for
    anything Pillow cannot decode (not an image, truncated, zero-size, over the pixel limit), naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = existing_file(path, "image file")
    try:
        with warnings.catch_warnings():  # the size is checked below, before decoding: no half-way warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"image file {str(path)!r} is {im.width}x{im.height} = {im.width * im.height} pixels, over "
                    f"the limit of {Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS); refused before decoding"
                )
            im.load()  # decode now, so a truncated file fails here and not later
            if im.width == 0 or im.height == 0:
                raise ValueError(f"image file {str(path)!r} has zero size {im.width}x{im.height}")
            return to_rgb(im) if mode == "RGB" else im.convert(mode)
    except UnidentifiedImageError as e:
        raise ValueError(f"{str(path)!r} is not an image file Pillow can read") from e
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"image file {str(path)!r} is over Pillow's pixel limit ({Image.MAX_IMAGE_PIXELS} pixels): {e}"
        ) from e
    except OSError as e:  # truncated or corrupt data
        raise ValueError(f"image file {str(path)!r} is corrupt or truncated: {e}") from e
    except ValueError as e:  # a float image with NaN pixels, say: name the file
        if str(path) in str(e):
            raise
        raise ValueError(f"image file {str(path)!r}: {e}") from e


def to_rgb(im):
    """A PIL image as 8-bit RGB: 16-bit grayscale is scaled down, float grayscale scaled from the range
    that holds it, transparency composited on white."""
    from PIL import Image

    if im.mode == "F":  # 32-bit float: [0, 1], [0, 255] or [0, 65535], whichever holds the values
        import numpy as np

        arr = np.asarray(im).astype(np.float64)
        if not np.isfinite(arr).all() or (arr.size and arr.min() < 0):
            raise ValueError("a float image must hold finite values >= 0 (NaN, inf or negative pixels found)")
        top = float(arr.max(initial=0))
        peak = next(p for p in (1.0, 255.0, 65535.0, max(top, 1.0)) if top <= p)
        im = Image.fromarray((arr * 255 / peak).round().clip(0, 255).astype(np.uint8), mode="L")
    if im.mode.startswith("I"):  # 16- or 32-bit integer grayscale: scale the 16-bit range to 8 bits
        import numpy as np

        arr = np.asarray(im).astype(np.float64)  # numpy honours the byte order of I;16B
        peak = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        im = Image.fromarray((arr * 255 / peak).round().clip(0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def image_to_tensor(im) -> torch.Tensor:
    """PIL image -> float tensor (3, H, W) in [0, 1]. Anything else (a path, an array) is refused with a hint."""
    import numpy as np

    check_pil(im)
    arr = np.asarray(to_rgb(im), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def check_pil(im) -> None:
    """Refuse anything but a PIL image, saying how to get one from what was given."""
    from PIL import Image

    if isinstance(im, Image.Image):
        return
    if isinstance(im, (str, Path)):
        hint = "; load the file first with mmgist.io.load_image(path)"
    elif type(im).__module__ == "numpy":
        hint = f" of shape {getattr(im, 'shape', '?')}; convert it with PIL.Image.fromarray(array) (uint8 H x W x 3)"
    elif isinstance(im, torch.Tensor):
        hint = f" of shape {tuple(im.shape)}; pass an image tensor (3, H, W) where a tensor is accepted"
    else:
        hint = ""
    raise TypeError(f"expected a PIL image, got {type(im).__name__} {show(im)}{hint}")


def tensor_to_image(x: torch.Tensor):
    """Image tensor (3, H, W), float in [0, 1] (values clamped) or uint8 0..255 -> PIL RGB image."""
    from PIL import Image

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor (3, H, W), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor (3, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        arr = x.detach().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(arr.copy(), mode="RGB")
    if not x.dtype.is_floating_point:
        raise TypeError(f"an image tensor must be float in [0, 1] or uint8, got {x.dtype}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"the image tensor holds {bad} NaN or inf value(s); refusing to write them as black pixels")
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")


def save_image(im, path: PathLike) -> None:
    """Save a PIL image or (3, H, W) tensor atomically; the format follows the file suffix."""
    if isinstance(im, torch.Tensor):
        im = tensor_to_image(im)
    check_pil(im)
    from PIL import Image

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ValueError(f"cannot tell an image format from the suffix {suffix!r} of {str(path)!r}; use .png or .jpg")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    write_bytes_atomic(path, buf.getvalue())


# --- audio ------------------------------------------------------------------------------------
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


from .video_io import MAX_VIDEO_BYTES, MAX_VIDEO_PIXELS, load_video, save_video  # noqa: E402  (video lives in its own module)

__all__ = [
    "MAX_AUDIO_BYTES",
    "MAX_PEAK",
    "MAX_VIDEO_BYTES",
    "MAX_VIDEO_PIXELS",
    "as_waveform",
    "image_to_tensor",
    "load_audio",
    "load_image",
    "load_video",
    "resample",
    "save_audio",
    "save_image",
    "save_video",
    "tensor_to_image",
    "to_rgb",
]
