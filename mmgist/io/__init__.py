"""Media files in and out: images (Pillow), audio (PyAV, torchaudio), video (PyAV), one module each, every
error naming the file and what is wrong."""

from .audio import MAX_AUDIO_BYTES, MAX_PEAK, as_waveform, load_audio, resample, save_audio
from .image import check_pil, image_to_tensor, load_image, save_image, tensor_to_image, to_rgb
from .video import MAX_VIDEO_BYTES, MAX_VIDEO_PIXELS, load_video, save_video

__all__ = [
    "MAX_AUDIO_BYTES",
    "MAX_PEAK",
    "MAX_VIDEO_BYTES",
    "MAX_VIDEO_PIXELS",
    "as_waveform",
    "check_pil",
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
