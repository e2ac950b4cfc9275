"""The language-model room: the model itself (build, extend, save, load), what sits before a query (heads),
generation that always parses (constraint, generate), scoring answer options, chat turns, the pretrained
SmolLM2 and the LM's training data and loop (manifest, train).

`from mmgist.lm import build_lm` keeps working: the model's functions are this package's own names.
"""

from .model import (
    PRESETS,
    SIZE_FIELDS,
    build_lm,
    cache_kwargs,
    check_model,
    check_sizes,
    context_length,
    extend_lm,
    find_model,
    frozen,
    list_models,
    load_model,
    model_dirs,
    output_cache,
    save_model,
)

__all__ = [
    "PRESETS",
    "SIZE_FIELDS",
    "build_lm",
    "cache_kwargs",
    "check_model",
    "check_sizes",
    "context_length",
    "extend_lm",
    "find_model",
    "frozen",
    "list_models",
    "load_model",
    "model_dirs",
    "output_cache",
    "save_model",
]
