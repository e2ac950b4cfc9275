import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import toy_tokenizers  # noqa: F401  (registers toy-image, toy-audio, toy-video)

from mmgist import ByteTokenizer, SharedVocabulary, create_tokenizer

# The seed's method (trained embeddings, the KL alone, no self-study) for tests of that path (the defaults are
# KV, self-study and the hidden-state term)
EMBEDDINGS_ONLY = {"target": "embeddings", "self_study": 0, "hidden_weight": 0.0}


def make_vocab() -> SharedVocabulary:
    """Bytes + every toy media tokenizer: all four modalities in one id space."""
    return SharedVocabulary(
        text=ByteTokenizer(),
        image=create_tokenizer("toy-image"),
        audio=create_tokenizer("toy-audio"),
        video=create_tokenizer("toy-video"),
    )


@pytest.fixture
def vocab() -> SharedVocabulary:
    return make_vocab()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
