"""Text tokenizers: bytes are lossless for any UTF-8; a local Hugging Face tokenizer round-trips."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mmgist import ByteTokenizer, HFTextTokenizer, Prompt, SharedVocabulary, create_tokenizer, load_tokenizer


@given(st.text())
def test_bytes_round_trip_any_unicode(text):
    tok = ByteTokenizer()
    codes = tok.encode(text)
    assert codes.tolist() == list(text.encode("utf-8"))
    assert tok.decode(codes) == text if text else True


def test_bytes_worked_example_and_invalid_utf8():
    tok = ByteTokenizer()
    assert tok.encode("hé").tolist() == [104, 195, 169]
    assert tok.decode(torch.tensor([104, 195])) == "h\ufffd"
    with pytest.raises(UnicodeDecodeError):
        create_tokenizer("byte", errors="strict").decode(torch.tensor([195]))
    with pytest.raises(ValueError, match="errors must be one of"):
        create_tokenizer("byte", errors="loud")
    with pytest.raises(TypeError, match="takes a str, got bytes"):
        tok.encode(b"x")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny byte-level BPE trained here and saved like any Hugging Face tokenizer: no downloads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<s>", "</s>"]
    )
    raw.train_from_iterator(["the cat sat on the mat", "a dog and a cat", "images and words"] * 20, trainer)
    path = tmp_path_factory.mktemp("hf")
    PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>").save_pretrained(path)
    return path


def test_hf_text_tokenizer_round_trips_and_saves(hf_dir, tmp_path):
    tok = HFTextTokenizer.from_hf(hf_dir)
    text = "the cat and the dog, café"
    codes = tok.encode(text)
    assert tok.decode(codes) == text
    assert tok.codebook_size == len(tok.hf)
    tok.save_pretrained(tmp_path / "t")
    tok.save_pretrained(tmp_path / "t")  # saving over an earlier save replaces it cleanly
    loaded = load_tokenizer(tmp_path / "t")
    assert isinstance(loaded, HFTextTokenizer) and torch.equal(loaded.encode(text), codes)
    assert loaded.fingerprint() == tok.fingerprint()


def test_hf_text_in_a_shared_vocabulary(hf_dir, tmp_path):
    tok = HFTextTokenizer.from_hf(hf_dir)
    vocab = SharedVocabulary(text=tok, image=create_tokenizer("toy-image"))
    prompt = Prompt(["the cat", torch.rand(3, 8, 8), "sat"])
    ids = vocab.encode(prompt)
    assert ids[: len(tok.encode("the cat"))] == tok.encode("the cat").tolist()
    assert vocab.decode(ids).text() == "the catsat"
    vocab.save_pretrained(tmp_path)
    assert SharedVocabulary.from_pretrained(tmp_path).encode(prompt) == ids


def test_hf_text_needs_a_local_folder(tmp_path):
    with pytest.raises(ValueError, match="needs a local folder"):
        HFTextTokenizer.from_hf(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a trained tokenizer in the zoo"):
        load_tokenizer("hf-text")
