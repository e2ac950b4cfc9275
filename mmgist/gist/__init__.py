"""Gist compression: a long prefix replaced by k learned embeddings (per-prompt distillation)."""

from .config import GistConfig
from .distill import distill_gist
from .prefix import GistPrefix, model_fingerprint

__all__ = ["GistConfig", "GistPrefix", "distill_gist", "model_fingerprint"]
