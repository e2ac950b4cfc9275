"""Gist compression: a long prefix replaced by k learned embeddings (per-prompt distillation)."""

from .config import GistConfig
from .distill import distill_gist
from .prefix import GistPrefix, model_fingerprint
from .self_study import CHAT_QUESTIONS, StudyQuestion, chat_config, chat_questions

__all__ = [
    "CHAT_QUESTIONS",
    "GistConfig",
    "GistPrefix",
    "StudyQuestion",
    "chat_config",
    "chat_questions",
    "distill_gist",
    "model_fingerprint",
]
