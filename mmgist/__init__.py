"""mmgist: multimodal tokenization and gist compression for decoder-only Transformers."""

from .chat import system_turn, user_turn
from .generate import LayoutConstraint, generate
from .gist import GistCompressor, GistConfig, GistPrefix, compress, compress_many, distill_gist
from .layout import IdLayout
from .lm import build_lm, extend_lm, load_model, save_model
from .pretrained import load_pretrained_lm
from .processor import MultimodalProcessor
from .prompt import Audio, Image, Prompt, Text, Video
from .scoring import OptionScores, Question, score_options
from .tokenizers import (
    AudioTokenizer,
    ByteTokenizer,
    HFTextTokenizer,
    ImageTokenizer,
    ModalityTokenizer,
    TextTokenizer,
    VideoTokenizer,
    create_tokenizer,
    list_aliases,
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
    "GistCompressor",
    "GistConfig",
    "GistPrefix",
    "HFTextTokenizer",
    "IdLayout",
    "Image",
    "ImageTokenizer",
    "LayoutConstraint",
    "ModalityTokenizer",
    "MultimodalProcessor",
    "OptionScores",
    "Prompt",
    "Question",
    "SharedVocabulary",
    "Text",
    "TextTokenizer",
    "Video",
    "VideoTokenizer",
    "build_lm",
    "compress",
    "compress_many",
    "create_tokenizer",
    "distill_gist",
    "extend_lm",
    "generate",
    "list_aliases",
    "list_tokenizers",
    "load_model",
    "load_pretrained_lm",
    "load_tokenizer",
    "register_tokenizer",
    "save_model",
    "score_options",
    "system_turn",
    "user_turn",
]
