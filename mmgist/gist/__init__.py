"""Gist compression: a long prefix replaced by k learned positions, distilled per prompt or made in one pass by a
trained compressor."""

from .compressor import (
    CompressorConfig,
    GistCompressor,
    PrefixStudy,
    chat_compressor_study,
    compress,
    compress_many,
    compressor_study,
    train_compressor,
)
from .config import GistConfig, gist_tokens_for
from .distill import distill_gist
from .prefix import GistPrefix, model_fingerprint
from .self_study import CHAT_QUESTIONS, ChatStudy, StudyConfig, StudyQuestion, chat_config, chat_questions, chat_study

__all__ = [
    "CHAT_QUESTIONS",
    "ChatStudy",
    "CompressorConfig",
    "GistCompressor",
    "GistConfig",
    "GistPrefix",
    "PrefixStudy",
    "StudyConfig",
    "StudyQuestion",
    "chat_compressor_study",
    "chat_config",
    "chat_questions",
    "chat_study",
    "compress",
    "compress_many",
    "compressor_study",
    "distill_gist",
    "gist_tokens_for",
    "model_fingerprint",
    "train_compressor",
]
