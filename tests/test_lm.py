"""The LM over the shared vocabulary on the tiny preset: build, extend, save/load, processor, generation."""

import pytest
import torch

from mmgist import ByteTokenizer, Image, Prompt, SharedVocabulary, create_tokenizer
from mmgist.lm import build_lm, extend_lm, load_model, save_model
from mmgist.lm.generate import generate
from mmgist.processor import MultimodalProcessor


@pytest.fixture
def model(vocab):
    torch.manual_seed(0)
    return build_lm(vocab, preset="tiny").eval()


def test_build_lm_fits_the_vocabulary(vocab, model):
    assert model.get_input_embeddings().weight.shape[0] == len(vocab)
    ids = vocab.encode(["hi", torch.rand(3, 8, 8)], add_bos=True, return_tensors="pt")
    assert model(ids[None]).logits.shape == (1, len(ids), len(vocab))
    with pytest.raises(ValueError, match="unknown LM preset 'huge'"):
        build_lm(vocab, preset="huge")


def test_save_and_load_one_folder(vocab, model, tmp_path):
    from transformers import AutoModelForCausalLM

    save_model(model, vocab, tmp_path)
    loaded, loaded_vocab = load_model(tmp_path)
    assert loaded_vocab.fingerprint() == vocab.fingerprint()
    assert AutoModelForCausalLM.from_pretrained(tmp_path) is not None and SharedVocabulary.from_pretrained(tmp_path)
    ids = torch.tensor([vocab.encode(["abc"], add_bos=True)])
    assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-6)
    other = SharedVocabulary(text=ByteTokenizer(), image=create_tokenizer("toy-image"))
    with pytest.raises(ValueError, match=f"model has {len(vocab)} embedding rows but the vocabulary has {len(other)}"):
        save_model(model, other, tmp_path / "x")


def test_extend_lm_keeps_text_logits(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    text_model = LlamaForCausalLM(config).eval()
    ids = torch.tensor([list(b"the cat sat")])
    before = text_model(ids).logits
    extended = extend_lm(text_model, vocab)
    assert extended.get_input_embeddings().weight.shape[0] == len(vocab)
    after = extended(ids).logits
    assert torch.allclose(after[..., :256], before, atol=1e-5)
    with pytest.raises(ValueError, match="has 326 embedding rows but the vocabulary's text part has 256 ids"):
        extend_lm(extended, vocab)


def test_processor_pads_and_places_media(vocab):
    proc = MultimodalProcessor(vocab)
    image = torch.rand(3, 8, 8)
    batch = proc(text=["Look: <image> ok?", "Hi"], images=[image], return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    first = vocab.encode(Prompt(["Look: ", image, " ok?"]), add_bos=True)
    assert ids.shape == (2, len(first)) and ids[0].tolist() == first
    assert mask[1].tolist() == [1, 1, 1] + [0] * (len(first) - 3)
    assert ids[1, 3:].eq(vocab.pad_id).all()
    left = proc(text=["Look: <image> ok?", "Hi"], images=[image], padding_side="left")
    assert left["input_ids"][1, -3:].tolist() == vocab.encode(["Hi"], add_bos=True)
    direct = proc(Prompt(["Look: ", image, " ok?"]))
    assert direct["input_ids"][0].tolist() == first


def test_processor_placeholder_mismatch_names_both_counts(vocab):
    proc = MultimodalProcessor(vocab)
    with pytest.raises(ValueError, match=r"text has 2 <image> placeholder\(s\) but 1 image item\(s\) were given"):
        proc(text="<image> and <image>", images=[torch.rand(3, 8, 8)])
    with pytest.raises(ValueError, match=r"text has 0 <audio> placeholder\(s\) but 1 audio"):
        proc(text="x", audio=[(torch.rand(1, 100), 8000)])
    with pytest.raises(ValueError, match="over max_length 5"):
        MultimodalProcessor(vocab, max_length=5)(text="a long prompt")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "sizes, modality",
    [
        ({"image": (3, 4)}, "image"),
        ({}, "image"),
        ({"audio": 5}, "audio"),
        ({}, "audio"),
        ({"video": (2, 2, 3)}, "video"),
    ],
)
def test_constrained_generation_is_always_well_formed(vocab, model, seed, sizes, modality):
    torch.manual_seed(seed)
    out = generate(
        model, vocab, Prompt(["draw: "]), max_new_tokens=40, modality=modality, sizes=sizes, do_sample=True, top_k=20
    )
    segment = out[0]
    assert segment.modality == modality
    if modality in sizes:
        expected = sizes[modality]
        shape = {
            "image": tuple(segment.codes.shape),
            "audio": segment.codes.shape[1],
            "video": tuple(segment.codes.shape),
        }[modality]
        assert shape == (tuple(expected) if isinstance(expected, tuple) else expected)
    ids = vocab.encode(out)
    assert vocab.encode(vocab.decode(ids)) == ids


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_free_size_segments_are_closed_within_the_budget(vocab, model, modality):
    for seed in range(3):
        for budget in (3, 4, 6, 11):  # 3 is the least either needs: image code, row, close; audio 2 codes, close
            torch.manual_seed(seed)
            # decode inside generate raises on a segment that was never closed
            out = generate(model, vocab, Prompt(["x"]), max_new_tokens=budget, modality=modality, do_sample=True)
            assert out[0].modality == modality and out[0].codes.numel() >= 1


def test_generation_errors(vocab, model):
    with pytest.raises(ValueError, match="exceeds the model's context of 512"):
        generate(model, vocab, Prompt(["x" * 500]), max_new_tokens=20)
    with pytest.raises(ValueError, match="needs 13 new tokens; max_new_tokens is 5"):
        generate(model, vocab, Prompt(["x"]), max_new_tokens=5, modality="image", sizes={"image": (2, 5)})
    with pytest.raises(ValueError, match="a image needs 3 new tokens; max_new_tokens is 2"):
        generate(model, vocab, Prompt(["x"]), max_new_tokens=2, modality="image")
    with pytest.raises(ValueError, match="generating video needs sizes"):
        generate(model, vocab, Prompt(["x"]), max_new_tokens=5, modality="video")
    with pytest.raises(ValueError, match="sizes has unknown modalities"):
        generate(model, vocab, Prompt(["x"]), sizes={"smell": 3})


def test_segment_types_in_generated_prompts(vocab, model):
    torch.manual_seed(1)
    out = generate(model, vocab, Prompt(["x"]), max_new_tokens=30, modality="image", sizes={"image": (2, 2)})
    assert isinstance(out[0], Image) and out[0].pixels.shape == (3, 8, 8)


@pytest.mark.parametrize(
    "sizes", [{"image": (0, 3)}, {"image": (2,)}, {"audio": 0}, {"audio": (2,)}, {"video": (0, 1, 1)}, {"image": 3}]
)
def test_bad_sizes_are_refused(vocab, model, sizes):
    with pytest.raises(ValueError, match=r"sizes\['(image|audio|video)'\] must be .* of positive ints"):
        generate(model, vocab, Prompt(["x"]), sizes=sizes)


def test_padded_text_ids_are_never_generated(vocab):
    from mmgist.lm.generate import LayoutConstraint

    class Padded(ByteTokenizer):  # a text tokenizer whose last 6 reserved ids decode to nothing
        @property
        def codebook_size(self):
            return 262

        @property
        def generatable_size(self):
            return 256

    padded = SharedVocabulary(text=Padded(), image=create_tokenizer("toy-image"))
    allowed = LayoutConstraint(padded, max_length=100).allowed([padded.bos_id])
    assert allowed[:256].all() and not allowed[256:262].any()
