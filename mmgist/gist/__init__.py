"""Gist compression: a long prefix replaced by k learned embeddings (per-prompt distillation)."""

from .config import GistConfig, gist_tokens_for
from .distill import distill_gist
from .prefix import GistPrefix, model_fingerprint
from .self_study import CHAT_QUESTIONS, ChatStudy, StudyConfig, StudyQuestion, chat_config, chat_questions, chat_study

__all__ = [
    "CHAT_QUESTIONS",
    "ChatStudy",
    "GistConfig",
    "GistPrefix",
    "StudyConfig",
    "StudyQuestion",
    "chat_config",
    "chat_questions",
    "chat_study",
    "distill_gist",
    "gist_tokens_for",
    "model_fingerprint",
]
