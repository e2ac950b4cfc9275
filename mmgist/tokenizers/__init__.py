"""Tokenizers: the protocol, the registry, and the built-in tokenizers (imported to register them)."""

from .audio import AudioRVQConfig, AudioRVQTokenizer
from .base import AudioTokenizer, ImageTokenizer, ModalityTokenizer, TextTokenizer, VideoTokenizer
from .image import ImageVQConfig, ImageVQTokenizer
from .registry import (
    create_tokenizer,
    get_tokenizer_class,
    list_tokenizers,
    list_zoo,
    load_tokenizer,
    register_tokenizer,
    zoo_dirs,
)
from .text import ByteTokenizer, HFTextTokenizer

__all__ = [
    "AudioRVQConfig",
    "AudioRVQTokenizer",
    "AudioTokenizer",
    "ByteTokenizer",
    "HFTextTokenizer",
    "ImageTokenizer",
    "ImageVQConfig",
    "ImageVQTokenizer",
    "ModalityTokenizer",
    "TextTokenizer",
    "VideoTokenizer",
    "create_tokenizer",
    "get_tokenizer_class",
    "list_tokenizers",
    "list_zoo",
    "load_tokenizer",
    "register_tokenizer",
    "zoo_dirs",
]
