"""audio-rvq on the tiny preset: shapes, sample rates, codebook prefixes, the two decode paths, chunking,
save/load, bad input, training; and load_audio/save_audio."""

import math

import pytest
import torch

from mmgist import create_tokenizer, load_tokenizer
from mmgist.io import load_audio, save_audio
from mmgist.tokenizers.audio import AudioRVQTokenizer

QUANTIZERS = ["rvq", "rvq-euclidean", "rfsq", "plain-rvq"]
# a variant name -> AudioRVQConfig fields (the tiny preset's z_dim is 8: no projection)
VARIANTS = {"rvq-euclidean": {"quantizer": "rvq", "lookup": "euclidean", "code_dim": 8}}


def tiny(quantizer="rvq", **kw) -> AudioRVQTokenizer:
    torch.manual_seed(0)
    fields = VARIANTS.get(quantizer, {"quantizer": quantizer})
    tok = create_tokenizer("audio-rvq", preset="tiny", **{**fields, **kw})
    tok.train()
    with torch.no_grad():  # one training-mode pass: k-means initializes the codebooks from real latents
        tok(sound(tok.sample_rate, 0.5)[None].repeat(4, 1, 1)[..., : 4000 // tok.hop * tok.hop])
    return tok.eval()


def sound(rate: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """(1, S): a chirp plus a tone under a slow envelope, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(rate * seconds)) / rate
    x = 0.4 * torch.sin(2 * math.pi * (200 + 400 * t) * t) + 0.2 * torch.sin(2 * math.pi * 660 * t)
    x = x * (0.6 + 0.4 * torch.sin(2 * math.pi * 1.5 * t)) + 0.01 * torch.randn(t.shape, generator=g)
    return x[None]


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_shapes_and_dtypes(quantizer):
    tok = tiny(quantizer)
    assert (tok.sample_rate, tok.hop, tok.num_codebooks) == (8000, 16, 3)
    assert tok.frame_rate == 500 and tok.bitrate(2) == 500 * 2 * math.log2(tok.codebook_size)
    x = sound(8000, 0.1)  # 800 samples = 50 frames
    codes = tok.encode(x, sample_rate=8000)
    assert codes.shape == (3, 50) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    assert torch.equal(tok.encode(x[0], sample_rate=8000), codes)  # (samples,) is one channel
    assert torch.equal(tok.encode(x.repeat(2, 1), sample_rate=8000), codes)  # channels are averaged
    batch = tok.encode(torch.stack([x, 0.5 * x]), sample_rate=8000)
    assert batch.shape == (2, 3, 50) and torch.equal(batch[0], codes)
    assert torch.equal(tok.encode([x, 0.5 * x], sample_rate=8000), batch)
    wave = tok.decode(codes)
    assert wave.shape == (1, 800) and wave.dtype == torch.float32 and torch.isfinite(wave).all()
    assert tok.decode(batch).shape == (2, 1, 800)
    assert tok.encode(sound(8000, 0.1 + 1 / 8000), sample_rate=8000).shape == (3, 51)  # padded to whole frames


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
def test_any_sample_rate_is_resampled_to_the_codecs(rate):
    tok = tiny()
    x = sound(rate, 0.25)
    codes = tok.encode(x, sample_rate=rate)
    samples = math.ceil(x.shape[-1] * 8000 / rate)
    assert codes.shape == (3, math.ceil(samples / tok.hop))
    if rate == 16000:  # the same sound sampled twice as often gives (nearly) the same codes
        same = (codes == tok.encode(sound(8000, 0.25), sample_rate=8000)).float().mean()
        assert same > 0.6


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_fewer_codebooks_are_a_prefix_of_all(quantizer):
    tok = tiny(quantizer)
    x = sound(8000, 0.2)
    full = tok.encode(x, 8000)
    for n in (1, 2):
        part = tok.encode(x, 8000, num_codebooks=n)
        assert torch.equal(part, full[:n])
        assert tok.decode(part).shape == (1, x.shape[-1])
    with pytest.raises(ValueError, match=r"num_codebooks must be an int in 1..3, got 4"):
        tok.encode(x, 8000, num_codebooks=4)


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_decode_from_indices_equals_decode_from_quantized_vectors(quantizer):
    tok = tiny(quantizer)
    x = tok.preprocess(sound(8000, 0.1), 8000)
    for n in (1, 3):
        with torch.no_grad():
            zq, codes, *_ = tok.quantize(x, n)
            from_vectors = tok.decoder(zq)
        assert torch.allclose(tok.codes_to_latents(codes), zq, atol=1e-5)
        assert torch.allclose(tok.decode(codes), from_vectors, atol=1e-5)


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_chunked_equals_unchunked(quantizer):
    tok = tiny(quantizer)
    x = sound(8000, 2.0, seed=1)  # 1000 frames, in chunks of 75 with context
    whole = tok.encode(x, 8000, chunk_seconds=None)
    chunked = tok.encode(x, 8000, chunk_seconds=0.15)
    assert chunked.shape == whole.shape
    assert (chunked == whole).float().mean() >= 0.995  # stated tolerance: a code at a float tie may flip
    decoded = tok.decode(whole, chunk_seconds=0.15)
    assert torch.allclose(decoded, tok.decode(whole, chunk_seconds=None), atol=1e-4)


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_save_load_gives_identical_codes(quantizer, tmp_path):
    tok = tiny(quantizer)
    x = sound(8000, 0.2)
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert isinstance(again, AudioRVQTokenizer) and again.fingerprint() == tok.fingerprint()
    assert torch.equal(again.encode(x, 8000), tok.encode(x, 8000))
    codes = tok.encode(x, 8000)
    assert torch.equal(again.decode(codes), tok.decode(codes))


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_lossless_file_round_trip_keeps_the_codes(suffix, tmp_path):
    tok = tiny()
    x = (sound(8000, 0.2) * 32767).round() / 32767  # exactly representable in 16 bits
    save_audio(tmp_path / f"a{suffix}", x, 8000)
    y, rate = load_audio(tmp_path / f"a{suffix}")
    assert rate == 8000 and y.shape == x.shape and torch.allclose(y, x, atol=1 / 32767)
    assert torch.equal(tok.encode(y, rate), tok.encode(x, 8000))


@pytest.mark.parametrize("suffix", [".mp3", ".ogg"])
def test_lossy_files_load_at_their_rate(suffix, tmp_path):
    x = sound(16000, 0.5)
    save_audio(tmp_path / f"a{suffix}", x, 16000)
    y, rate = load_audio(tmp_path / f"a{suffix}", sample_rate=16000, mono=True)
    assert rate == 16000 and y.shape[0] == 1 and abs(y.shape[1] - x.shape[1]) < 0.1 * 16000
    part, rate = load_audio(tmp_path / f"a{suffix}", max_seconds=0.1)
    assert part.shape[1] == round(0.1 * rate)


def test_a_few_training_steps_lower_the_loss(tmp_path):
    from mmgist.train import TrainConfig, fit

    torch.manual_seed(0)
    tok = create_tokenizer("audio-rvq", preset="tiny")
    data = torch.stack([sound(8000, 0.128, seed=s) * (0.3 + 0.1 * s) for s in range(4)])  # (4, 1, 1024)
    result = fit(tok, lambda s, r: data, TrainConfig(steps=40, lr=3e-3, warmup_steps=0, log_every=5), tmp_path,
                 progress=False)  # fmt: skip
    assert result.history[-1]["mel"] < 0.8 * result.history[0]["mel"]


@pytest.mark.parametrize("lookup, code_dim, weight", [("cosine", 4, 0.0), ("euclidean", 4, 1.0), ("euclidean", 8, 0.0)])
def test_euclidean_codes_lower_the_latent_error_with_every_codebook(lookup, code_dim, weight, tmp_path):
    """The v1 failure (#30): cosine codes (unit vectors, with nothing training the output towards the residual)
    keep nothing of the latent; here the error even grows with codebooks. Euclidean codes keep more with every
    codebook: in the full latent width (code_dim = z_dim, no projection), or projected with the latent term."""
    from mmgist.train import TrainConfig, fit

    data = torch.stack([sound(8000, 0.128, seed=s) * (0.3 + 0.1 * s) for s in range(4)])  # (4, 1, 1024)
    torch.manual_seed(0)
    tok = create_tokenizer("audio-rvq", preset="tiny", lookup=lookup, latent_weight=weight, code_dim=code_dim)
    result = fit(tok, lambda s, r: data, TrainConfig(steps=40, lr=3e-3, warmup_steps=0, log_every=5), tmp_path,
                 progress=False)  # fmt: skip
    errors = [tok.eval().latent_error(data, n) for n in (1, 2, 3)]
    if lookup == "cosine":  # v1's recipe: the first codebook is the best the codes do
        assert errors[2] >= errors[0], errors
        return
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.7 * errors[0], errors
    if weight:
        assert result.history[-1]["latent"] < result.history[0]["latent"]


def test_the_latent_term_is_zero_without_rvq_and_refuses_bad_lookups():
    tok = tiny("plain-rvq")
    assert tok.quantize(tok.preprocess(sound(8000, 0.1), 8000)).latent.item() == 0.0
    with pytest.raises(ValueError, match=r"lookup 'dot'.*cosine"):
        create_tokenizer("audio-rvq", preset="tiny", lookup="dot")
    with pytest.raises(ValueError, match=r"latent_weight must be >= 0"):
        create_tokenizer("audio-rvq", preset="tiny", latent_weight=-1.0)


def test_training_from_a_folder_saves_a_loadable_tokenizer(tmp_path):
    from mmgist.tokenizers.train_audio import train_audio_tokenizer

    for kind, seed in (("speech", 0), ("music", 1)):
        save_audio(tmp_path / "data" / kind / f"{kind}.flac", sound(16000, 0.6, seed), 16000)
    result = train_audio_tokenizer(tmp_path / "data", tmp_path / "tok", preset="tiny", steps=3, batch_size=2,
                                   seconds=0.1, progress=False)  # fmt: skip
    tok = load_tokenizer(tmp_path / "tok")
    assert tok.encode(sound(8000, 0.1), 8000).shape == (3, 50)
    info = (tmp_path / "tok" / "training.json").read_text()
    assert '"speech"' in info and '"music"' in info and result.train.steps == 3


@pytest.mark.parametrize("mode", ["audio", "audio-plain-rvq"])
def test_two_process_ddp_keeps_ranks_identical(mode, tmp_path):
    from support.ddp import run_ddp

    for i in range(2):
        save_audio(tmp_path / "audio" / "speech" / f"a{i}.wav", sound(16000, 0.5, seed=i), 16000)
    ranks = run_ddp(mode, tmp_path / "audio", tmp_path)
    assert ranks[0][0] == ranks[1][0] == "2"
    assert ranks[0][1] == ranks[1][1]  # the same weights and codebooks on both ranks
    assert (tmp_path / "tok" / "config.json").exists()


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wave, rate, error, match",
    [
        (torch.zeros(0), 8000, ValueError, r"empty \(shape \(1, 0\)\)"),
        (torch.zeros(1, 0), 8000, ValueError, "empty"),
        (torch.tensor([0.1, float("nan"), 0.2]), 8000, ValueError, "1 NaN or inf sample"),
        (torch.tensor([0.1, float("inf")]), 8000, ValueError, "NaN or inf"),
        (torch.full((100,), 3000.0), 8000, ValueError, r"peak amplitude is 3000; expected float samples in \[-1, 1\]"),
        (torch.zeros(800, 2), 8000, ValueError, r"800 channels .* pass waveform.T"),
        (torch.zeros(2, 2, 2, 2), 8000, ValueError, "got shape"),
        (torch.zeros(100, dtype=torch.bool), 8000, TypeError, "float in \\[-1, 1\\] or int16"),
        ("speech.wav", 8000, TypeError, "load_audio"),
        (torch.zeros(100), None, ValueError, "needs the waveform's sample_rate"),
        (torch.zeros(100), 0, ValueError, "sample_rate must be a positive int, got 0"),
    ],
)
def test_bad_waveforms_are_refused_by_name(wave, rate, error, match):
    with pytest.raises(error, match=match):
        tiny().encode(wave, sample_rate=rate)


def test_short_and_integer_input():
    tok = tiny()
    assert tok.encode(torch.tensor([0.5]), 8000).shape == (3, 1)  # one sample: one frame, padded with silence
    pcm = (sound(8000, 0.1) * 32767).round().to(torch.int16)
    assert torch.equal(tok.encode(pcm, 8000), tok.encode(pcm.float() / 32768, 8000))


@pytest.mark.parametrize(
    "codes, match",
    [
        (torch.full((3, 5), 16), r"code 16 is outside the codebook \[0, 16\)"),
        (torch.full((3, 5), -1), "code -1 is outside"),
        (torch.zeros(4, 5, dtype=torch.long), r"4 codebooks \(shape \(4, 5\)\); expected 1 to 3 codebooks"),
        (torch.zeros(3, 5), "integer tensor"),
        (torch.zeros(5, dtype=torch.long), "2-d or 3-d"),
        (torch.zeros(3, 0, dtype=torch.long), "non-empty"),
    ],
)
def test_bad_codes_are_refused_by_name(codes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny().decode(codes)


def test_bad_audio_files_are_refused_by_name(tmp_path):
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(ValueError, match="not an audio file PyAV"):
        load_audio(tmp_path / "text.wav")
    save_audio(tmp_path / "good.flac", sound(8000, 1.0), 8000)
    data = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 3] + bytes(200) + data[len(data) // 3 : len(data) // 2])
    try:
        wave, _ = load_audio(tmp_path / "cut.flac")  # FFmpeg may recover the frames it can read ...
        assert torch.isfinite(wave).all()
    except ValueError as e:  # ... or refuse the file by name
        assert "cut.flac" in str(e)
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(IsADirectoryError):
        load_audio(tmp_path)
    video = _video_without_audio(tmp_path / "silent.mp4")
    with pytest.raises(ValueError, match=r"silent.mp4' has no audio stream \(its streams: video\)"):
        load_audio(video)


def test_bad_saves_are_refused_and_write_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"suffix '\.xyz'"):
        save_audio(tmp_path / "a.xyz", sound(8000, 0.1), 8000)
    with pytest.raises(ValueError, match="1 NaN or inf"):
        save_audio(tmp_path / "a.wav", torch.tensor([0.0, float("nan")]), 8000)
    with pytest.raises(TypeError, match="needs float samples"):
        save_audio(tmp_path / "a.wav", torch.zeros(10, dtype=torch.int16), 8000)
    with pytest.raises(ValueError, match=r"\.ogg needs a sample rate in \(8000"):
        save_audio(tmp_path / "a.ogg", sound(44100, 0.1), 44100)
    assert not list(tmp_path.iterdir())


def _video_without_audio(path):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_loudness_normalization_makes_codes_level_free_and_is_not_undone():
    """With `loudness`, every input is scaled to that RMS level before the encoder: the same sound 10 dB quieter
    gets the same codes, silence stays silence, and decoding gives the normalized level back, not the input's
    (the codes carry no gain: documented in AudioRVQConfig)."""
    from mmgist.tokenizers.audio import level

    x = sound(8000, 0.2)[None]  # (1, 1, S)
    scaled = level(torch.cat([x, 0.3 * x, torch.zeros_like(x)]), -20.0)
    rms = scaled.pow(2).mean(dim=(1, 2)).sqrt()
    assert torch.allclose(rms[:2], torch.full((2,), 0.1), rtol=1e-4) and rms[2] == 0
    tok = tiny(loudness=-20.0)
    assert torch.allclose(tok.preprocess(x[0], 8000), tok.preprocess(0.3 * x[0], 8000), atol=1e-6)
    same = (tok.encode(x[0], 8000) == tok.encode(0.3 * x[0], 8000)).float().mean()
    assert same >= 0.99  # a code at a float tie may flip
    plain = tiny()
    assert (plain.encode(x[0], 8000) == plain.encode(0.3 * x[0], 8000)).float().mean() < 0.9
    with pytest.raises(ValueError, match=r"loudness must be a level in dBFS within \(-60, 0\) or None, got 3"):
        create_tokenizer("audio-rvq", preset="tiny", loudness=3.0)
