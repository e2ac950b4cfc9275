"""mmgist: multimodal tokenization and gist compression for decoder-only Transformers."""

from .layout import IdLayout
from .prompt import Audio, Image, Prompt, Text, Video
from .tokenizers import (
    AudioTokenizer,
    ByteTokenizer,
    HFTextTokenizer,
    ImageTokenizer,
    ModalityTokenizer,
    TextTokenizer,
    VideoTokenizer,
    create_tokenizer,
    list_tokenizers,
    load_tokenizer,
    register_tokenizer,
)
from .vocab import SharedVocabulary

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AudioTokenizer",
    "ByteTokenizer",
    "HFTextTokenizer",
    "IdLayout",
    "Image",
    "ImageTokenizer",
    "ModalityTokenizer",
    "Prompt",
    "SharedVocabulary",
    "Text",
    "TextTokenizer",
    "Video",
    "VideoTokenizer",
    "create_tokenizer",
    "list_tokenizers",
    "load_tokenizer",
    "register_tokenizer",
]
