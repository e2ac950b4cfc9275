"""An audio+text prompt through the real audio tokenizer (tiny preset), the shared vocabulary, a tiny LM,
gist distillation and generation, as an image+text prompt goes."""

import pytest
import torch
from conftest import EMBEDDINGS_ONLY
from test_audio_tokenizer import sound, tiny

from mmgist import ByteTokenizer, MultimodalProcessor, Prompt, SharedVocabulary
from mmgist.gist import GistConfig, distill_gist
from mmgist.lm import build_lm
from mmgist.lm.generate import generate
from mmgist.prompt import Audio


@pytest.fixture(scope="module")
def setup():
    tok = tiny()
    vocab = SharedVocabulary(text=ByteTokenizer(), audio=tok)
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").eval()
    return tok, vocab, model


def test_an_audio_prompt_round_trips_through_the_vocabulary(setup):
    tok, vocab, _ = setup
    wave = sound(16000, 0.05)  # 16 kHz in: resampled to the codec's 8 kHz, 25 frames
    prompt = Prompt(["Listen:", Audio(wave, 16000), "What is said?"])
    ids = vocab.encode(prompt, add_bos=True)
    codes = tok.encode(wave, 16000)
    assert codes.shape == (3, 25)
    assert len(ids) == 1 + len("Listen:") + 2 + codes.numel() + len("What is said?")
    back = vocab.decode(ids)
    assert [s.modality for s in back] == ["text", "audio", "text"]
    assert torch.equal(back[1].codes, codes) and back[1].waveform.shape == (1, 25 * tok.hop)
    assert back[1].sample_rate == tok.sample_rate and back[0].text == "Listen:"
    # the (waveform, rate) shorthand and the processor build the same ids
    assert vocab.encode(Prompt(["Listen:", (wave, 16000), "What is said?"]), add_bos=True) == ids
    batch = MultimodalProcessor(vocab)(["Listen:<audio>What is said?"], audio=[Audio(wave, 16000)])
    assert batch["input_ids"][0].tolist() == ids


def test_distill_a_gist_of_an_audio_prefix(setup):
    _, vocab, model = setup
    prefix = Prompt(["The sound is a chirp. ", Audio(sound(8000, 0.04), 8000), " Answer: chirp."])
    cfg = GistConfig(**EMBEDDINGS_ONLY, num_gist_tokens=2, steps=30, lr=3e-2, num_continuations=8,
                     continuation_length=6, eval_every=15)  # fmt: skip
    gist = distill_gist(model, vocab, prefix, cfg)
    rows = gist.report["baselines"]
    assert gist.report["prefix_tokens"] == len(vocab.encode(prefix, add_bos=True))
    assert rows["gist"]["kl"] < rows["no_prefix"]["kl"]
    out = generate(model, vocab, Prompt(["Q:"]), gist=gist, max_new_tokens=4)
    assert isinstance(out, Prompt)


def test_generate_an_audio_segment(setup):
    tok, vocab, model = setup
    out = generate(model, vocab, Prompt(["Say it:"]), modality="audio", sizes={"audio": 6}, max_new_tokens=40)
    audio = [s for s in out if s.modality == "audio"]
    assert audio and audio[0].codes.shape == (tok.num_codebooks, 6)
    assert audio[0].waveform.shape == (1, 6 * tok.hop) and torch.isfinite(audio[0].waveform).all()
