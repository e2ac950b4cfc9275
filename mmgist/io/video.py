"""Reading and writing video files with PyAV (FFmpeg): `load_video` and `save_video` (re-exported by mmgist.io).

    frames, fps = load_video("clip.mp4", fps=8, max_frames=17, size=128)   # uint8 (T, 3, H, W), frames per second
    save_video("out.gif", frames, fps)                                       # mp4 (H.264) or gif, atomically

Frames are decoded one at a time and only the ones kept are held, so a long file costs the memory of
what is returned. `fps` resamples by timestamps (a variable-frame-rate file comes out at a constant
rate: each output time takes the last frame shown at or before it); without it the frames come as
stored, with the stream's average rate. `size` scales the shorter side (aspect kept, bilinear) and is
required for frames over MAX_VIDEO_PIXELS. Errors name the file and what is wrong: not a media file,
corrupt or truncated data, no video stream (an audio-only file), no frames.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from ..storage import PathLike, write_bytes_atomic
from ..validate import existing_file, frame_rate, positive_int

MAX_VIDEO_PIXELS = 3840 * 2160  # per frame; larger frames need `size` (a 4K frame is 25 MB as uint8 RGB)
MAX_VIDEO_BYTES = 4 << 30  # uint8 RGB frames one load_video may hold (4 GiB: 27 minutes of 640x480 at 8 fps)
VIDEO_FORMATS = {".mp4": ("mp4", "libx264"), ".gif": ("gif", "pillow")}  # suffix -> (container, codec)


def load_video(
    path: PathLike, fps: float | None = None, max_frames: int | None = None, size: int | None = None
) -> tuple[torch.Tensor, float]:
    """Read a video (mp4, webm, avi, mkv, animated gif, ...): (frames uint8 (T, 3, H, W), frames per second).

    `fps` resamples to a constant rate (at most MAX_FPS), `max_frames` stops early, `size` scales the shorter
    side. ValueError, naming the file: not a video, corrupt data, a truncated file (its index promises more
    frames than its data holds), frames over MAX_VIDEO_PIXELS without `size`, more than MAX_VIDEO_BYTES."""
    import av
    import numpy as np

    path = existing_file(path, "video file")
    if fps is not None:
        frame_rate(fps, "load_video fps")
    if max_frames is not None:
        positive_int(max_frames, "load_video max_frames")
    if size is not None:
        positive_int(size, "load_video size")
    try:
        container = av.open(str(path))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not a video file PyAV (FFmpeg) can read: {e}") from e
    frames: list[Any] = []
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise ValueError(f"{str(path)!r} has no video stream (its streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        next_time, last, decoded, nbytes = 0.0, None, 0, 0

        def emit(frame: Any) -> None:  # one output frame, within MAX_VIDEO_BYTES
            nonlocal nbytes
            nbytes += frame.nbytes
            if nbytes > MAX_VIDEO_BYTES:
                raise ValueError(
                    f"{str(path)!r}: its frames come to more than {MAX_VIDEO_BYTES / 2**20:g} MiB (MAX_VIDEO_BYTES) "
                    f"after {len(frames)} frames; pass max_frames=, a lower fps= or size="
                )
            frames.append(frame)

        try:
            for frame in container.decode(stream):
                decoded += 1
                if frame.width * frame.height > MAX_VIDEO_PIXELS and size is None:
                    raise ValueError(
                        f"{str(path)!r}: frames of {frame.width}x{frame.height} are over the limit of "
                        f"{MAX_VIDEO_PIXELS} pixels (MAX_VIDEO_PIXELS); pass size= to scale them down"
                    )
                if fps is None:
                    emit(_rgb(frame, size))
                else:  # constant-rate output: emit the frame shown at each multiple of 1 / fps
                    t = float(frame.time) if frame.time is not None else len(frames) / (rate or fps)
                    while last is not None and next_time < t - 1e-9 and not _full(frames, max_frames):
                        emit(last)
                        next_time += 1 / fps
                    last = _rgb(frame, size)
                    if next_time <= t + 1e-9 and not _full(frames, max_frames):
                        emit(last)
                        next_time += 1 / fps
                if _full(frames, max_frames):
                    break
        except av.error.FFmpegError as e:
            raise ValueError(f"video file {str(path)!r} is corrupt or truncated: {e}") from e
        if stream.frames and decoded < stream.frames and not _full(frames, max_frames):
            raise ValueError(
                f"video file {str(path)!r} is truncated: its index promises {stream.frames} frames, its data "
                f"holds {decoded}"
            )
    if not frames:
        raise ValueError(f"video file {str(path)!r} holds no frames")
    out = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # (T, H, W, 3) -> (T, 3, H, W)
    return out, float(fps if fps is not None else (rate or 25.0))


def _full(frames: list, max_frames: int | None) -> bool:
    return max_frames is not None and len(frames) >= max_frames


def _rgb(frame: Any, size: int | None):
    """One decoded frame as uint8 (H, W, 3), the shorter side scaled to `size`."""
    if size is not None:
        scale = size / min(frame.width, frame.height)
        w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="BILINEAR")
    return frame.to_ndarray(format="rgb24")


def save_video(path: PathLike, frames: torch.Tensor, fps: float) -> None:
    """Write frames (T, 3, H, W), uint8 or float in [0, 1], as .mp4 (H.264, yuv420p) or .gif (Pillow), atomically.

    H.264 needs even sizes: an odd width or height is padded by one (replicated) column or row."""
    import av
    import numpy as np

    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"cannot tell a video format from the suffix {suffix!r} of {str(path)!r}; "
                         f"use one of {sorted(VIDEO_FORMATS)}")  # fmt: skip
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3 or frames.numel() == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"save_video needs frames (T, 3, H, W) with T >= 1, got {shape}")
    frame_rate(fps, "save_video fps")
    x = frames.detach().cpu()
    if x.dtype.is_floating_point:
        if not torch.isfinite(x).all():
            raise ValueError("save_video: the frames hold NaN or inf; not written")
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    elif x.dtype != torch.uint8:
        raise TypeError(f"save_video needs uint8 or float frames, got {x.dtype}")
    container_fmt, codec = VIDEO_FORMATS[suffix]
    if codec == "pillow":  # Pillow picks an adaptive palette per frame (FFmpeg's gif encoder takes rgb8 only)
        write_bytes_atomic(path, _gif_bytes(x, fps))
        return
    if codec == "libx264" and (x.shape[-1] % 2 or x.shape[-2] % 2):
        x = torch.nn.functional.pad(x.float(), (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate").byte()
    arr = x.permute(0, 2, 3, 1).contiguous().numpy()  # (T, H, W, 3)
    rate = _rational(fps)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for image in arr:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    write_bytes_atomic(path, buf.getvalue())


def _gif_bytes(x: torch.Tensor, fps: float) -> bytes:
    """uint8 frames (T, 3, H, W) as an animated GIF (looping; exact for frames of at most 256 colours)."""
    from PIL import Image

    images = [Image.fromarray(f.permute(1, 2, 0).contiguous().numpy()) for f in x]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   optimize=False, disposal=1)  # fmt: skip
    return buf.getvalue()


def _rational(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001) if not math.isclose(fps, round(fps)) else round(fps)
