"""Tokenizers: the protocol, the registry, and the built-in tokenizers (imported to register them)."""

from .audio import AudioRVQConfig, AudioRVQTokenizer
from .base import AudioTokenizer, ImageTokenizer, ModalityTokenizer, TextTokenizer, VideoTokenizer
from .hf_audio import HFAudioConfig, HFAudioTokenizer
from .hf_image import HFImageConfig, HFImageTokenizer
from .image import ImageVQConfig, ImageVQTokenizer
from .keyframes import KeyframeConfig, VideoKeyframeTokenizer
from .registry import (
    create_tokenizer,
    get_tokenizer_class,
    list_aliases,
    list_tokenizers,
    list_zoo,
    load_tokenizer,
    register_tokenizer,
    zoo_dirs,
)
from .text import ByteTokenizer, HFTextTokenizer
from .video import VideoVQConfig, VideoVQTokenizer

__all__ = [
    "AudioRVQConfig",
    "AudioRVQTokenizer",
    "AudioTokenizer",
    "ByteTokenizer",
    "HFAudioConfig",
    "HFAudioTokenizer",
    "HFImageConfig",
    "HFImageTokenizer",
    "HFTextTokenizer",
    "ImageTokenizer",
    "ImageVQConfig",
    "ImageVQTokenizer",
    "KeyframeConfig",
    "ModalityTokenizer",
    "TextTokenizer",
    "VideoKeyframeTokenizer",
    "VideoTokenizer",
    "VideoVQConfig",
    "VideoVQTokenizer",
    "create_tokenizer",
    "get_tokenizer_class",
    "list_aliases",
    "list_tokenizers",
    "list_zoo",
    "load_tokenizer",
    "register_tokenizer",
    "zoo_dirs",
]
