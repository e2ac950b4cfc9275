"""mmgist: multimodal tokenization and gist compression for decoder-only Transformers."""

import importlib as _importlib
import sys as _sys

from .gist import GistCompressor, GistConfig, GistPrefix, compress, compress_many, distill_gist
from .layout import IdLayout
from .lm.chat import system_turn, user_turn
from .lm.generate import LayoutConstraint, generate
from .lm.model import build_lm, extend_lm, load_model, save_model
from .lm.pretrained import load_pretrained_lm
from .lm.scoring import OptionScores, Question, score_options
from .processor import MultimodalProcessor
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
    list_aliases,
    list_tokenizers,
    load_tokenizer,
    register_tokenizer,
)
from .vocab import SharedVocabulary

__version__ = "0.1.0"

# Modules that moved into rooms (ARCHITECTURE.md) still import by their old names, as the same module objects:
# `import mmgist.scoring` or `from mmgist.datasets import RandomCrops` keep working.
MOVED_MODULES = {
    "mmgist.audio_data": "mmgist.data.audio",
    "mmgist.chat": "mmgist.lm.chat",
    "mmgist.datasets": "mmgist.data.images",
    "mmgist.generate": "mmgist.lm.generate",
    "mmgist.lm_train": "mmgist.lm.train",
    "mmgist.manifest": "mmgist.lm.manifest",
    "mmgist.pretrained": "mmgist.lm.pretrained",
    "mmgist.scoring": "mmgist.lm.scoring",
    "mmgist.video_data": "mmgist.data.video",
    "mmgist.video_io": "mmgist.io.video",
}
for _old, _new in MOVED_MODULES.items():
    _sys.modules.setdefault(_old, _importlib.import_module(_new))
    globals().setdefault(_old.rpartition(".")[2], _sys.modules[_old])  # mmgist.generate stays the function

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
