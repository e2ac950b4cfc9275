"""SharedVocabulary: the worked example, round trips over random interleavings, layout invariants, errors."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmgist import Audio, ByteTokenizer, IdLayout, Image, Prompt, SharedVocabulary, Text, Video, create_tokenizer
from mmgist.vocab import TOKENIZERS_DIR, VOCAB_FILE

VOCAB = SharedVocabulary(
    text=ByteTokenizer(),
    image=create_tokenizer("toy-image"),
    audio=create_tokenizer("toy-audio"),
    video=create_tokenizer("toy-video"),
)


def test_worked_example_from_the_docs():
    vocab = SharedVocabulary(text=ByteTokenizer(), image=create_tokenizer("toy-image", codebook_size=16))
    assert vocab.special_tokens == {
        "<|image|>": 272,
        "<|/image|>": 273,
        "<|row|>": 274,
        "<|pad|>": 275,
        "<|bos|>": 276,
        "<|eos|>": 277,
    }
    assert len(vocab) == 278
    ids = vocab.encode(Prompt(["Hi", Image(codes=torch.tensor([[1, 2], [3, 4]]))]))
    assert ids == [72, 105, 272, 257, 258, 274, 259, 260, 274, 273]
    assert vocab.encode(["Hi"], add_bos=True, add_eos=True) == [276, 72, 105, 277]


def test_audio_and_video_layout_by_hand(vocab):
    a0, a1, v = vocab.layout.offset("audio", 0), vocab.layout.offset("audio", 1), vocab.layout.offset("video")
    S = vocab.special_tokens
    audio = torch.tensor([[1, 2, 3], [4, 5, 6]])  # (codebooks, frames)
    assert vocab.encode([Audio(codes=audio)]) == [
        S["<|audio|>"],
        a0 + 1,
        a1 + 4,
        a0 + 2,
        a1 + 5,
        a0 + 3,
        a1 + 6,
        S["<|/audio|>"],
    ]
    video = torch.tensor([[[7]], [[8]]])  # (t, h, w) = (2, 1, 1)
    assert vocab.encode([Video(codes=video)]) == [
        S["<|video|>"],
        v + 7,
        S["<|row|>"],
        S["<|frame|>"],
        v + 8,
        S["<|row|>"],
        S["<|frame|>"],
        S["<|/video|>"],
    ]


# --- random prompts ---------------------------------------------------------------------------
def _codes(k, *shape):
    return st.lists(
        st.integers(0, k - 1), min_size=int(torch.tensor(shape).prod()), max_size=int(torch.tensor(shape).prod())
    ).map(lambda xs: torch.tensor(xs).reshape(*shape))


dims = st.integers(1, 4)
image_seg = st.tuples(dims, dims).flatmap(lambda s: _codes(16, *s)).map(lambda c: Image(codes=c))
audio_seg = st.integers(1, 5).flatmap(lambda t: _codes(8, 2, t)).map(lambda c: Audio(codes=c))
video_seg = st.tuples(dims, dims, dims).flatmap(lambda s: _codes(27, *s)).map(lambda c: Video(codes=c))
text_seg = st.text(min_size=1, max_size=12).map(Text)
prompts = st.lists(st.one_of(text_seg, image_seg, audio_seg, video_seg), min_size=1, max_size=6).map(Prompt)


def _merged(prompt):
    """Adjacent text segments merge when decoded (text has no markers): the canonical form."""
    out = []
    for s in prompt:
        if isinstance(s, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + s.text)
        else:
            out.append(s)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompts)
def test_encode_decode_round_trip(prompt):
    ids = VOCAB.encode(prompt)
    decoded = VOCAB.decode(ids, media=False)
    expected = _merged(prompt)
    assert decoded.modalities == [s.modality for s in expected]
    for got, want in zip(decoded, expected):
        if isinstance(want, Text):
            assert got.text == want.text
        else:
            assert torch.equal(got.codes, want.codes)
    assert VOCAB.encode(decoded) == ids  # ids -> prompt -> ids is exact
    assert VOCAB.encode(VOCAB.decode(ids, media=True)) == ids  # also when media are decoded


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(0, 50), st.integers(0, 9), st.integers(0, 4), st.integers(0, 50))
def test_layout_ranges_are_disjoint_and_cover_everything(text, image, audio, codebooks, video):
    audio, codebooks = (audio, codebooks) if audio and codebooks else (0, 0)
    layout = IdLayout(text, image, audio, codebooks, video)
    covered = [i for r in layout.ranges.values() for i in r] + list(layout.specials.values())
    assert sorted(covered) == list(range(len(layout)))
    for modality in layout.modalities:
        for i in layout.allowed_ids(modality).tolist():
            assert layout.segment_of(i) == modality


def test_segment_of_agrees_with_allowed_ids(vocab):
    for i in range(len(vocab)):
        kind = vocab.segment_of(i)
        for m in vocab.modalities:
            assert (i in set(vocab.allowed_ids(m).tolist())) == (kind == m)
    assert vocab.allowed_ids("audio", codebook=1).tolist() == list(vocab.layout.ranges["audio:1"])


def test_media_are_tokenized_when_a_segment_has_no_codes(vocab):
    image = torch.rand(3, 8, 12)
    wave = torch.rand(1, 256) * 2 - 1
    frames = torch.rand(2, 3, 16, 16)
    prompt = Prompt(["look:", image, (wave, 8000), Video(frames, fps=4)])
    decoded = vocab.decode(vocab.encode(prompt))
    assert torch.equal(decoded[1].codes, vocab.tokenizers["image"].encode(image))
    assert decoded[1].pixels.shape == (3, 8, 12)
    assert decoded[2].codes.shape == (2, 4)
    assert decoded[3].codes.shape == (2, 2, 2)


def test_bos_pad_are_skipped_and_eos_stops(vocab):
    ids = [vocab.bos_id, *vocab.encode(["ab"]), vocab.pad_id, *vocab.encode(["c"]), vocab.eos_id, 100]
    assert vocab.decode(ids).text() == "abc"


def test_tensor_output(vocab):
    out = vocab.encode(["hi"], return_tensors="pt")
    assert out.dtype == torch.long and out.tolist() == [104, 105]


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ids, message",
    [
        ([10**6], r"id 1000000 at position 0 is outside the vocabulary"),
        ([-1], r"id -1 at position 0 is outside"),
        (["image-code"], r"position 0 cannot appear outside its segment"),
        (["<|image|>", "image-code", "<|row|>"], r"never closed"),
        (["<|/image|>"], r"closes no open segment"),
        (
            ["<|image|>", "image-code", "<|row|>", "image-code", "image-code", "<|row|>", "<|/image|>"],
            r"rows of lengths \[1, 2\]",
        ),
        (["<|image|>", "image-code", "<|/image|>"], r"each ended by <\|row\|>"),
        (["<|image|>", "<|/image|>"], r"one or more rows"),
        (["<|image|>", 65, "<|row|>", "<|/image|>"], r"id 65 \(text:65\) at position 1 cannot appear inside an image"),
        (["<|audio|>", "audio-code-1", "audio-code-0", "<|/audio|>"], r"should be a code of audio codebook 0"),
        (["<|audio|>", "audio-code-0", "<|/audio|>"], r"positive multiple of 2"),
        (["<|video|>", "video-code", "<|row|>", "<|/video|>"], r"each ended by <\|frame\|>"),
    ],
)
def test_decode_refuses_malformed_ids(vocab, ids, message):
    names = {
        "image-code": vocab.layout.offset("image"),
        "audio-code-0": vocab.layout.offset("audio", 0),
        "audio-code-1": vocab.layout.offset("audio", 1),
        "video-code": vocab.layout.offset("video"),
    }
    ids = [names.get(t, vocab.special_tokens.get(t, t)) if isinstance(t, str) else t for t in ids]
    with pytest.raises(ValueError, match=message):
        vocab.decode(ids)


def test_decode_refuses_ragged_video_frames(vocab):
    ids = vocab.encode([Video(codes=torch.zeros(1, 1, 1, dtype=torch.long))])[:-1]
    ids += vocab.encode([Video(codes=torch.zeros(1, 1, 2, dtype=torch.long))])[1:]
    with pytest.raises(ValueError, match="frames of different shapes"):
        vocab.decode(ids)


def test_encode_errors(vocab):
    with pytest.raises(ValueError, match="empty prompt"):
        vocab.encode([])
    with pytest.raises(ValueError, match=r"code 16 is outside the codebook \[0, 16\)"):
        vocab.encode([Image(codes=torch.tensor([[16]]))])
    text_only = SharedVocabulary(text=ByteTokenizer())
    with pytest.raises(ValueError, match=r"no image tokenizer; it has \['text'\]"):
        text_only.encode([Image(codes=torch.tensor([[1]]))])
    with pytest.raises(ValueError, match=r"codes have 3 codebooks \(shape .*\); expected 2 codebooks"):
        vocab.encode([Audio(codes=torch.zeros(3, 2, dtype=torch.long))])
    with pytest.raises(ValueError, match="return_tensors"):
        vocab.encode(["x"], return_tensors="np")
    with pytest.raises(ValueError, match="got a 'image' tokenizer"):
        SharedVocabulary(text=ByteTokenizer(), audio=create_tokenizer("toy-image"))


# --- save / load ----------------------------------------------------------------------------------
def test_save_load_round_trip(vocab, tmp_path):
    vocab.save_pretrained(tmp_path)
    loaded = SharedVocabulary.from_pretrained(tmp_path)
    assert loaded.fingerprint() == vocab.fingerprint()
    assert loaded.layout == vocab.layout
    prompt = Prompt(["x", torch.rand(3, 8, 8), (torch.rand(1, 200), 8000)])
    assert loaded.encode(prompt) == vocab.encode(prompt)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_load_refuses_unknown_version(vocab, tmp_path):
    vocab.save_pretrained(tmp_path)
    header = json.loads((tmp_path / VOCAB_FILE).read_text())
    header["format_version"] = 99
    (tmp_path / VOCAB_FILE).write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"format_version 99; this mmgist reads versions \[1\]"):
        SharedVocabulary.from_pretrained(tmp_path)


def test_load_refuses_tokenizer_that_does_not_match(vocab, tmp_path):
    vocab.save_pretrained(tmp_path)
    create_tokenizer("toy-image", codebook_size=16, patch=2).save_pretrained(tmp_path / TOKENIZERS_DIR / "image")
    with pytest.raises(ValueError, match=r"image tokenizer .* does not match"):
        SharedVocabulary.from_pretrained(tmp_path)


def test_load_refuses_tampered_weights(vocab, tmp_path):
    vocab.save_pretrained(tmp_path)
    weights = tmp_path / TOKENIZERS_DIR / "image" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        SharedVocabulary.from_pretrained(tmp_path)


def test_resize_model_fits_a_hugging_face_lm(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=99,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        )
    )
    vocab.resize_model(model)
    assert model.get_input_embeddings().weight.shape[0] == len(vocab)
    assert model.config.pad_token_id == vocab.pad_id and model.config.eos_token_id == vocab.eos_id
    ids = vocab.encode(["hi", torch.rand(3, 8, 8)], add_bos=True, return_tensors="pt")
    assert model(ids[None]).logits.shape == (1, len(ids), len(vocab))
    with pytest.raises(TypeError, match="PreTrainedModel"):
        vocab.resize_model(torch.nn.Linear(2, 2))


def test_a_zoo_tokenizer_is_referred_to_not_copied(tmp_path, monkeypatch):
    from mmgist import ByteTokenizer, create_tokenizer, load_tokenizer

    zoo = tmp_path / "zoo"
    torch.manual_seed(0)
    tok = create_tokenizer("image-vq", preset="tiny").train()
    tok(torch.rand(4, 3, 8, 8))  # k-means init
    tok.eval().save_pretrained(zoo / "tiny-zoo")
    monkeypatch.setenv("MMGIST_ZOO", str(zoo))
    from_zoo = load_tokenizer("tiny-zoo")
    assert from_zoo.zoo_name == "tiny-zoo" and load_tokenizer(zoo / "tiny-zoo").zoo_name == "tiny-zoo"
    vocab = SharedVocabulary(text=ByteTokenizer(), image=from_zoo)
    vocab.save_pretrained(tmp_path / "v")
    assert not (tmp_path / "v" / "mmgist_tokenizers" / "image").exists()  # only the text tokenizer is copied
    assert SharedVocabulary.from_pretrained(tmp_path / "v").fingerprint() == vocab.fingerprint()
    other = create_tokenizer("image-vq", preset="tiny").train()
    other(torch.rand(4, 3, 8, 8))
    other.eval().save_pretrained(zoo / "tiny-zoo")  # the zoo copy changes under the saved vocabulary
    with pytest.raises(ValueError, match="the zoo's 'tiny-zoo' does not match"):
        SharedVocabulary.from_pretrained(tmp_path / "v")
    own = create_tokenizer("image-vq", preset="tiny")  # not from the zoo: copied as before
    SharedVocabulary(text=ByteTokenizer(), image=own).save_pretrained(tmp_path / "w")
    assert (tmp_path / "w" / "mmgist_tokenizers" / "image" / "model.safetensors").is_file()
