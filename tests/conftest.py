import pytest
import support.toy_tokenizers  # noqa: F401  (registers toy-image, toy-audio, toy-video)
import torch
from support.bad_input import corpus  # noqa: F401  (a fixture: the bad-input tests' tiny objects and files)

from mmgist import ByteTokenizer, HFTextTokenizer, SharedVocabulary, create_tokenizer
from mmgist.lm import build_lm

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


@pytest.fixture(scope="module")
def tiny_lm():
    """(model, vocab): the "tiny" Llama over `make_vocab()`, seed 0, in eval mode; one per test module."""
    vocab = make_vocab()
    torch.manual_seed(0)
    return build_lm(vocab, preset="tiny").eval(), vocab


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# A tiny chat model: SmolLM2's special tokens and chat template on a byte-level BPE trained here (test_chat,
# test_gist_facts; the real SmolLM2 tests are slow)
SPECIALS = {"<|bos|>": "<|endoftext|>", "<|eos|>": "<|im_end|>", "<|pad|>": "<|endoftext|>"}
TEMPLATE = (  # SmolLM2's template, without its default system message
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A tiny byte-level BPE with SmolLM2's special tokens and chat template, trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    )
    raw.train_from_iterator(
        ["the harbour opens at six", "what is the fee? twelve coins", "list the rules"] * 20, trainer
    )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    hf.chat_template = TEMPLATE
    return hf


@pytest.fixture(scope="module")
def chat(chat_tokenizer):
    vocab = SharedVocabulary(text=HFTextTokenizer.from_hf(chat_tokenizer, specials=SPECIALS))
    torch.manual_seed(0)
    return build_lm(vocab, preset="tiny").eval(), vocab
