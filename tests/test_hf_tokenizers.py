"""hf-audio and hf-image: pretrained transformers codecs and VQ-VAEs through the registry, the shared
vocabulary, a tiny LM and distill_gist, on tiny random models saved in a temporary folder (no download)."""

import json

import pytest
import torch
from conftest import EMBEDDINGS_ONLY
from support.hf_tiny import AUDIO, FULL, IMAGE, build, save_tiny

import mmgist
from mmgist import ByteTokenizer, Prompt, SharedVocabulary
from mmgist.gist import GistConfig, distill_gist
from mmgist.lm import build_lm
from mmgist.prompt import Audio, Image
from mmgist.tokenizers import HFAudioTokenizer, HFImageTokenizer

RATE = {"encodec": 24000, "dac": 16000, "mimi": 24000, "xcodec": 16000}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


def wave(seconds: float = 0.3, rate: int = 22050, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    return (0.4 * torch.sin(2 * torch.pi * 330 * t) + 0.1 * torch.randn(len(t), generator=g))[None]


def photo(h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def own_codes(kind: str, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Codes by the model's own transformers API (x already at its rate / normalized), (B, n, F) or (B, h, w)."""
    with torch.no_grad():
        if kind == "encodec":
            return model.encode(x, bandwidth=max(model.config.target_bandwidths)).audio_codes[0]
        if kind == "dac":
            return model.encode(x).audio_codes
        if kind == "mimi":
            return model.encode(x).audio_codes
        if kind == "xcodec":
            return model.encode(x).audio_codes
        if kind == "emu3":
            return torch.stack(model.encode(x, image_sizes=[list(x.shape[-2:])] * len(x)).image_tokens)
        return model.encode(x).image_tokens.view(len(x), x.shape[-2] // 16, x.shape[-1] // 16)


# --- audio ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", AUDIO)
def test_audio_codes_agree_with_the_models_own_encode_and_decode(kind, models):
    folder = save_tiny(kind, models)
    tok = mmgist.load_tokenizer("hf-audio", path=folder)
    assert isinstance(tok, HFAudioTokenizer) and tok.config.model_type == kind
    assert tok.sample_rate == RATE[kind] and tok.num_codebooks == 4
    x = wave(0.3, tok.sample_rate)
    codes = tok.encode(x, tok.sample_rate)
    frames = -(-x.shape[-1] // tok.hop)
    assert codes.shape == (tok.num_codebooks, frames) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    padded = torch.nn.functional.pad(x, (0, frames * tok.hop - x.shape[-1]))[None]
    assert torch.equal(codes, own_codes(kind, tok.model, padded)[0])
    audio = tok.decode(codes)
    assert audio.shape == (1, frames * tok.hop) and torch.isfinite(audio).all()


@pytest.mark.parametrize("kind", AUDIO)
def test_audio_batches_prefixes_and_rates(kind, models):
    tok = mmgist.load_tokenizer(save_tiny(kind, models))  # the folder alone: its model_type picks hf-audio
    a, b = wave(0.2, 44100, seed=1), wave(0.2, 44100, seed=2)
    batch = tok.encode([a, b], 44100)
    assert torch.equal(batch[0], tok.encode(a, 44100)) and torch.equal(batch[1], tok.encode(b, 44100))
    assert torch.equal(tok.encode(torch.stack([a, b]), 44100), batch)
    low = tok.encode(a, 44100, num_codebooks=2)  # residual VQ: fewer codebooks are a prefix
    assert torch.equal(low, batch[0, :2])
    assert tok.decode(batch).shape == (2, 1, batch.shape[-1] * tok.hop)
    assert tok.decode(low).shape == (1, low.shape[-1] * tok.hop)
    stereo = torch.cat([a, a])  # channels are averaged
    assert torch.equal(tok.encode(stereo, 44100), tok.encode(a, 44100))


def test_bandwidth_picks_the_number_of_codebooks(models):
    folder = save_tiny("encodec", models)  # 75 Hz x 6 bits = 0.45 kbps per codebook; target bandwidths 0.9, 1.8
    tok = mmgist.load_tokenizer("hf-audio", path=folder, bandwidth=0.9)
    assert tok.num_codebooks == 2 and tok.bitrate() == pytest.approx(900)
    assert tok.encode(wave(), 22050).shape[0] == 2
    with pytest.raises(ValueError, match=r"doesn't support the bandwidth 1\.0 kbps\. Select one of \[0\.45, 0\.9"):
        mmgist.load_tokenizer("hf-audio", path=folder, bandwidth=1.0)
    with pytest.raises(ValueError, match=r"num_codebooks must be an int in 1\.\.4, got 5"):
        mmgist.load_tokenizer("hf-audio", path=folder, num_codebooks=5)
    with pytest.raises(ValueError, match=r"num_codebooks must be an int in 1\.\.2, got 3"):
        tok.encode(wave(), 22050, num_codebooks=3)


def test_encodec_models_that_need_a_scale_per_chunk_are_refused(tmp_path):
    build("encodec-48khz").save_pretrained(tmp_path / "e48")
    with pytest.raises(ValueError, match=r"normalizes loudness per chunk \(normalize=True, chunk_length_s=1\.0"):
        mmgist.load_tokenizer(tmp_path / "e48")


# --- images -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE + FULL)
def test_image_codes_agree_with_the_vq_models_own_encode(kind, models):
    folder = save_tiny(kind, models)
    tok = mmgist.load_tokenizer("hf-image", path=folder, image_size=0)
    family = kind.removesuffix("-full")
    assert isinstance(tok, HFImageTokenizer) and tok.config.model_type in (family, f"{family}_vqgan")
    x = photo()
    codes = tok.encode(x)
    assert codes.shape == (64 // tok.factor, 96 // tok.factor) and int(codes.min()) >= 0
    assert int(codes.max()) < tok.codebook_size and tok.tokens_per_image(64, 96) == codes.numel()
    if family != "janus":  # Janus: cosine lookup as the original, not transformers' Euclidean encode (below)
        assert torch.equal(codes, own_codes(family, tok.model, x[None] * 2 - 1)[0])
    if family == "chameleon":
        with pytest.raises(NotImplementedError, match="Chameleon VQ-VAE has no decoder"):
            tok.decode(codes)
        return
    image = tok.decode(codes)
    assert image.shape == (3, 64, 96) and float(image.min()) >= 0 and float(image.max()) <= 1
    batch = tok.encode([x, photo(seed=1)])
    assert torch.equal(batch[0], codes) and tok.decode(batch).shape == (2, 3, 64, 96)


def test_janus_codes_are_cosine_nearest_and_decode_as_transformers_does(models):
    tok = mmgist.load_tokenizer("hf-image", path=save_tiny("janus", models), image_size=64)
    codes = tok.encode(photo(80, 80))  # shorter side to 64, centre crop: the 4 x 4 grid Janus decodes
    assert codes.shape == (4, 4)
    vq = tok.model
    with torch.no_grad():
        z = vq.quant_conv(vq.encoder(tok.preprocess(photo(80, 80)) * 2 - 1))  # (1, d, 4, 4)
        e = vq.quantize.embedding.weight
        cos = torch.einsum(
            "bdhw,kd->bkhw", torch.nn.functional.normalize(z, dim=1), torch.nn.functional.normalize(e, dim=-1)
        )
        assert torch.equal(codes, cos.argmax(1)[0])
        theirs = vq.decode(codes.view(1, -1))
    assert torch.allclose(tok.decode(codes), ((theirs[0] + 1) / 2).clamp(0, 1), atol=1e-5)


def test_image_size_default_is_the_models_own(models):
    tok = mmgist.load_tokenizer("hf-image", path=save_tiny("janus", models))
    assert tok.image_size == 384 and tok.tokens_per_image(100, 700) == 24 * 24
    small = mmgist.load_tokenizer("hf-image", path=save_tiny("emu3", models), fit="crop", image_size=0)
    assert small.encode(photo(70, 90)).shape == (8, 11)


# --- saving, fingerprints, vocabularies ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dac", "emu3-full"])
def test_saved_tokenizers_refer_to_the_folder_and_refuse_changed_weights(kind, tmp_path):
    folder = save_tiny(kind, tmp_path / "models")
    tok = mmgist.load_tokenizer(folder)
    saved = tok.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in saved.iterdir()) == ["config.json"]  # no copy of the weights
    header = json.loads((saved / "config.json").read_text())
    assert header["config"]["path"] == str(folder) and len(header["config"]["weights_sha256"]) == 64
    again = mmgist.load_tokenizer(saved)
    assert type(again) is type(tok) and again.fingerprint() == tok.fingerprint()
    model = build(kind)
    named = dict(model.named_parameters())
    if kind.endswith("-full"):  # the language model's weights are not the tokenizer's: changing them is fine
        with torch.no_grad():
            next(p for n, p in named.items() if "vqmodel" not in n).mul_(1.5)
        model.save_pretrained(folder)
        assert mmgist.load_tokenizer(saved).fingerprint() == tok.fingerprint()
    with torch.no_grad():
        next(p for n, p in named.items() if p.ndim > 1 and ("vqmodel" in n or kind == "dac")).mul_(1.5)
    model.save_pretrained(folder)
    with pytest.raises(ValueError, match="weights or config changed since this tokenizer was saved"):
        mmgist.load_tokenizer(saved)


@pytest.mark.parametrize("kind", AUDIO + IMAGE)
def test_a_vocabulary_with_a_pretrained_tokenizer_round_trips_ids_exactly(kind, models):
    if kind in AUDIO:
        tok = mmgist.load_tokenizer("hf-audio", path=save_tiny(kind, models), num_codebooks=2)
        media, codes = Audio(wave(0.2, 24000), 24000), tok.encode(wave(0.2, 24000), 24000)
    else:
        tok = mmgist.load_tokenizer("hf-image", path=save_tiny(kind, models), image_size=0)
        media, codes = Image(photo(32, 48)), tok.encode(photo(32, 48))
    vocab = SharedVocabulary(text=ByteTokenizer(), **{tok.modality: tok})
    prompt = Prompt(["Look:", media, "?"])
    ids = vocab.encode(prompt, add_bos=True)
    assert len(ids) == 1 + len("Look:") + 2 + codes.numel() + (codes.shape[0] if kind in IMAGE else 0) + 1
    back = vocab.decode(ids)
    assert [s.modality for s in back] == ["text", tok.modality, "text"] and torch.equal(back[1].codes, codes)
    if kind == "chameleon":  # no decoder: the segment holds the codes alone
        assert back[1].pixels is None
    elif kind in IMAGE:
        assert back[1].pixels.shape == (3, 32, 48)
    else:
        assert back[1].waveform.shape == (1, codes.shape[-1] * tok.hop)
    assert vocab.encode(Prompt(["Look:", back[1], "?"]), add_bos=True) == ids  # codes are reused as they are


def test_a_saved_vocabulary_refers_to_the_pretrained_models(models, tmp_path):
    codec = mmgist.load_tokenizer("hf-audio", path=save_tiny("mimi", models), num_codebooks=2)
    vq = mmgist.load_tokenizer("hf-image", path=save_tiny("emu3", models), image_size=0)
    vocab = SharedVocabulary(text=ByteTokenizer(), image=vq, audio=codec)
    prompt = Prompt(["Look:", Image(photo(32, 32)), " and listen:", Audio(wave(0.2, 24000), 24000), "?"])
    ids = vocab.encode(prompt, add_bos=True)
    vocab.save_pretrained(tmp_path / "vocab")
    for modality in ("image", "audio"):  # the tokenizers' weights stay in their model folders
        assert [p.name for p in (tmp_path / "vocab" / "mmgist_tokenizers" / modality).iterdir()] == ["config.json"]
    loaded = SharedVocabulary.from_pretrained(tmp_path / "vocab")
    assert loaded.fingerprint() == vocab.fingerprint() and loaded.encode(prompt, add_bos=True) == ids


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_prompt_with_pretrained_tokenizer_media_distills_into_a_gist(modality, models):
    if modality == "image":
        tok = mmgist.load_tokenizer("hf-image", path=save_tiny("janus", models), image_size=32)
        media = Image(photo(40, 40))
    else:
        tok = mmgist.load_tokenizer("hf-audio", path=save_tiny("xcodec", models), num_codebooks=2)
        media = Audio(wave(0.1, 16000), 16000)
    vocab = SharedVocabulary(text=ByteTokenizer(), **{modality: tok})
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").eval()
    prefix = Prompt(["Reference: ", media, " Answer in one word."])
    cfg = GistConfig(**EMBEDDINGS_ONLY, num_gist_tokens=2, steps=20, lr=3e-2, num_continuations=6,
                     continuation_length=5, eval_every=10)  # fmt: skip
    gist = distill_gist(model, vocab, prefix, cfg)
    assert gist.report["prefix_tokens"] == len(vocab.encode(prefix, add_bos=True))
    rows = gist.report["baselines"]
    assert rows["gist"]["kl"] < rows["no_prefix"]["kl"]


def test_dtype_and_device_options(models):
    tok = mmgist.load_tokenizer("hf-audio", path=save_tiny("dac", models), dtype="bfloat16", device="cpu")
    assert tok.dtype == torch.bfloat16 and next(tok.model.parameters()).dtype == torch.bfloat16
    codes = tok.encode(wave(), 22050)
    assert codes.dtype == torch.long and tok.decode(codes).dtype == torch.float32
    reference = mmgist.load_tokenizer("hf-audio", path=save_tiny("dac", models))
    assert tok.fingerprint() != reference.fingerprint()  # bf16 codes differ from float32 ones


# --- what is refused -------------------------------------------------------------------------------------
def test_a_folder_of_another_model_type_is_refused_naming_both(models, tmp_path):
    import transformers as T

    T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match=r"holds a transformers 'gpt2' model, which no tokenizer wraps.*'hf-audio'"):
        mmgist.load_tokenizer(tmp_path / "gpt2")
    with pytest.raises(ValueError, match=r"holds a 'dac' model; hf-image wraps the model types \['chameleon'"):
        mmgist.load_tokenizer("hf-image", path=save_tiny("dac", models))
    with pytest.raises(ValueError, match=r"holds a 'gpt2' model; hf-audio wraps the model types \['encodec'"):
        mmgist.load_tokenizer("hf-audio", path=tmp_path / "gpt2")


def test_missing_folders_and_uncached_repo_ids_are_refused_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match=r"hf download facebook/encodec_24khz"):
        mmgist.load_tokenizer("encodec-24khz")  # an alias: hf-audio, path="facebook/encodec_24khz"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mmgist.load_tokenizer("hf-image", path=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"needs path="):
        mmgist.load_tokenizer("hf-audio")
    with pytest.raises(TypeError, match=r"no config option\(s\) \['bandwith'\]"):
        mmgist.load_tokenizer("hf-audio", path=tmp_path, bandwith=1.5)


def test_aliases_are_listed():
    aliases = mmgist.list_aliases()
    assert aliases["encodec-24khz"] == ("hf-audio", {"path": "facebook/encodec_24khz"})
    assert aliases["janus-pro-1b"][0] == "hf-image"


def test_pretrained_tokenizers_refuse_bad_input(models):
    codec = mmgist.load_tokenizer(save_tiny("dac", models))
    with pytest.raises(ValueError, match="needs the waveform's sample_rate"):
        codec.encode(wave())
    with pytest.raises(ValueError, match="NaN or inf"):
        codec.encode(torch.full((1, 100), float("nan")), 16000)
    with pytest.raises(ValueError, match=r"code 64 is outside the codebook \[0, 64\)"):
        codec.decode(torch.full((4, 3), 64))
    vq = mmgist.load_tokenizer(save_tiny("emu3", models), image_size=0)
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        vq.encode(photo() * 3)
    with pytest.raises(ValueError, match=r"codes must be a non-empty 2-d or 3-d tensor"):
        vq.decode(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="dtype must be one of"):
        mmgist.load_tokenizer(save_tiny("emu3", models), dtype="float8")


# --- found in review -------------------------------------------------------------------------------------
def test_a_changed_model_config_is_refused_like_changed_weights(tmp_path):
    folder = save_tiny("dac", tmp_path / "models")
    saved = mmgist.load_tokenizer(folder).save_pretrained(tmp_path / "tok")
    config = json.loads((folder / "config.json").read_text())
    config["sampling_rate"] = 24000  # same tensors, other codes
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights or config changed since this tokenizer was saved"):
        mmgist.load_tokenizer(saved)


def test_every_bandwidth_the_error_lists_loads_and_names_one_tokenizer(models):
    folder = save_tiny("encodec", models)
    with pytest.raises(ValueError, match="Select one of") as info:
        mmgist.load_tokenizer("hf-audio", path=folder, bandwidth=0.1)
    listed = json.loads(str(info.value).split("Select one of ")[1].rstrip("."))
    assert listed == [0.45, 0.9, 1.35, 1.8]
    for k, bandwidth in enumerate(listed, 1):
        tok = mmgist.load_tokenizer("hf-audio", path=folder, bandwidth=bandwidth)
        assert tok.num_codebooks == k
        assert tok.fingerprint() == mmgist.load_tokenizer("hf-audio", path=folder, num_codebooks=k).fingerprint()


def test_codes_and_media_are_ordinary_tensors(models):
    codec = mmgist.load_tokenizer(save_tiny("dac", models))
    codes = codec.encode(wave(), 22050)
    audio = codec.decode(codes)
    assert not codes.is_inference() and not audio.is_inference()
    torch.nn.Embedding(64, 2)(codes).sum().backward()  # usable in autograd code, as other tokenizers' codes are
    audio.mul_(0.5)


def test_a_saved_tokenizer_follows_a_moved_folder_and_another_device(tmp_path):
    folder = save_tiny("dac", tmp_path / "a")
    tok = mmgist.load_tokenizer(folder, device="cpu")
    saved = tok.save_pretrained(tmp_path / "tok")
    folder.rename(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mmgist.load_tokenizer(saved)
    moved = mmgist.load_tokenizer(saved, path=tmp_path / "b", device="cpu")
    assert moved.fingerprint() == tok.fingerprint()
    with pytest.raises(TypeError, match=r"loads with the options \['path', 'device'\] only; got \['dtype'\]"):
        mmgist.load_tokenizer(saved, path=tmp_path / "b", dtype="bfloat16")
    with pytest.raises(TypeError, match="takes the model folder as its argument; drop path="):
        mmgist.load_tokenizer(tmp_path / "b", path=tmp_path / "b")
    with pytest.raises(TypeError, match=r"loads with the options \[\] only"):
        mmgist.load_tokenizer(save_image_vq(tmp_path), device="cpu")


def save_image_vq(tmp_path):
    return mmgist.create_tokenizer("toy-image").save_pretrained(tmp_path / "toy")


def test_call_options_are_honoured_or_refused(models):
    vq = mmgist.load_tokenizer(save_tiny("emu3", models), image_size=0)
    assert vq.encode(photo(70, 90), fit="crop").shape == (8, 11) and vq.encode(photo(70, 90)).shape == (9, 12)
    with pytest.raises(TypeError, match=r"hf-image.encode has no option\(s\) \['fitt'\]; its options: \['fit'\]"):
        vq.encode(photo(), fitt="crop")
    codec = mmgist.load_tokenizer(save_tiny("dac", models))
    with pytest.raises(TypeError, match=r"no option\(s\) \['num_codebook'\]; its options: \[.*'num_codebooks'"):
        codec.encode(wave(), 22050, num_codebook=2)
    half = codec.to(torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.encode(wave(), 22050).shape[0] == 4


def test_emu3_scales_images_into_its_own_pixel_range(models):
    vq = mmgist.load_tokenizer(save_tiny("emu3", models))  # image_size=None: Emu3's processor's area range
    assert 512 * 512 // 64 * 0.98 <= vq.tokens_per_image(64, 64) <= 512 * 512 // 64 * 1.02
    assert vq.tokens_per_image(3024, 4032) <= 1024 * 1024 // 64 * 1.02
    assert vq.tokens_per_image(600, 700) == 75 * 88
