"""video-vq on the tiny preset (shapes, causality, frame-count policies, save/load, training, DDP), clips made
from photos, video files through PyAV, bad input, and a video prompt through the vocabulary, a tiny LM and
distill_gist."""

import pytest
import torch
from conftest import EMBEDDINGS_ONLY
from PIL import Image as PILImage

import mmgist
from mmgist import ByteTokenizer, Prompt, SharedVocabulary
from mmgist.data.video import KINDS, RandomClips, heldout_clips
from mmgist.gist import GistConfig, distill_gist
from mmgist.io import load_video, save_video
from mmgist.lm import build_lm
from mmgist.prompt import Video
from mmgist.tokenizers import VideoVQConfig, VideoVQTokenizer
from mmgist.tokenizers.train_video import train_video_tokenizer


def tiny(**kw) -> VideoVQTokenizer:
    torch.manual_seed(0)
    return VideoVQTokenizer(VideoVQConfig(preset="tiny", **kw)).eval()


def clip(frames: int = 9, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of small synthetic photos (gradients and blocks) and a tiny image-vq to start from."""
    root = tmp_path_factory.mktemp("photos")
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        x = torch.linspace(0, 1, 48)
        im = torch.stack([x[None].expand(40, -1), x[:40, None].expand(-1, 48), torch.rand(40, 48, generator=g)])
        PILImage.fromarray((im.permute(1, 2, 0) * 255).byte().numpy()).save(root / f"p{i}.png")
    torch.manual_seed(0)
    mmgist.create_tokenizer("image-vq", preset="tiny").save_pretrained(root / "init")
    return root


# --- the model --------------------------------------------------------------------------------------
def test_shapes_one_frame_and_batches():
    tok = tiny()
    assert tok.codebook_size == 16 and tok.factor == 2
    codes = tok.encode(clip(9))
    assert codes.shape == (3, 8, 8) and codes.dtype == torch.long
    assert tok.decode(codes).shape == (9, 3, 16, 16)
    one = tok.encode(clip(1))  # a single image is a valid clip
    assert one.shape == (1, 8, 8) and tok.decode(one).shape == (1, 3, 16, 16)
    batch = tok.encode(torch.stack([clip(9, seed=1), clip(9, seed=2)]))
    assert batch.shape == (2, 3, 8, 8) and torch.equal(batch[0], tok.encode(clip(9, seed=1)))
    assert tok.decode(batch).shape == (2, 9, 3, 16, 16)
    uint8 = (clip(5) * 255).round().byte()
    assert torch.equal(tok.encode(uint8), tok.encode(uint8.float() / 255))
    assert tok.tokens_per_second(16, 16) == 8.0 / 4 * 64


def test_codes_are_causal_in_time():
    tok = tiny()
    x = clip(13)
    codes = tok.encode(x)
    assert torch.equal(tok.encode(x[:1]), codes[:1]) and torch.equal(tok.encode(x[:5]), codes[:2])
    later = x.clone()
    later[9:] = 1 - later[9:]  # changing frames 9.. leaves the codes of frames 0..8 alone
    assert torch.equal(tok.encode(later)[:3], codes[:3])


def test_decode_from_codes_equals_decode_from_quantized_latents():
    tok = tiny()
    x = clip(9)[None]
    q, codes = tok.quantize(tok.encode_latents(x))
    with torch.no_grad():
        direct = tok.render(tok.decode_latents(q)).clamp(0, 1)
    assert torch.allclose(tok.decode(codes), direct, atol=1e-5)


@pytest.mark.parametrize("fit, frames, latent_frames, decoded", [("pad", 6, 3, 9), ("drop", 6, 2, 5), ("pad", 5, 2, 5)])
def test_frame_counts_that_are_not_1_plus_4n(fit, frames, latent_frames, decoded):
    tok = tiny()
    codes = tok.encode(clip(frames), fit=fit)
    assert codes.shape[0] == latent_frames and tok.decode(codes).shape[0] == decoded
    with pytest.raises(ValueError, match=r"6 frames is not 1 \+ 4n; pass fit='pad' or 'drop'"):
        tok.encode(clip(6), fit="error")


def test_sizes_that_are_not_a_multiple_of_the_factor():
    tok = tiny()
    assert tok.encode(clip(5, size=15)).shape == (2, 8, 8)  # padded
    assert tok.encode(clip(5, size=15), spatial_fit="crop").shape == (2, 7, 7)


def test_save_load_gives_identical_outputs_in_half_the_bytes(tmp_path):
    tok = tiny()
    tok.save_pretrained(tmp_path / "a")
    a = mmgist.load_tokenizer(tmp_path / "a")
    a.save_pretrained(tmp_path / "b")
    b = mmgist.load_tokenizer(tmp_path / "b")
    x = clip(9)
    assert a.fingerprint() == b.fingerprint() and torch.equal(a.encode(x), b.encode(x))
    codes = a.encode(x)
    assert torch.equal(a.decode(codes), b.decode(codes))
    assert (tok.decode(codes) - a.decode(codes)).abs().max() < 2e-2  # float16 storage
    from safetensors import safe_open

    with safe_open(str(tmp_path / "a" / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("temporal_encoder.net.0.conv.weight").dtype == torch.float16


def test_bad_frames_and_codes_are_refused():
    tok = tiny()
    with pytest.raises(TypeError, match="load_video"):
        tok.encode("clip.mp4")
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\) or \(B, T, 3, H, W\) with T >= 1, got \(0, 3, 16, 16\)"):
        tok.encode(torch.zeros(0, 3, 16, 16))
    with pytest.raises(ValueError, match="NaN or inf"):
        tok.encode(torch.full((5, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=r"codes must be a non-empty 3-d or 4-d tensor, got shape \(8, 8\)"):
        tok.decode(torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"code 16 is outside the codebook \[0, 16\)"):
        tok.decode(torch.full((2, 4, 4), 16))
    with pytest.raises(ValueError, match=r"video-vq.encode: fit='stretch' is not one of \['pad', 'drop', 'error'\]"):
        tok.encode(clip(5), fit="stretch")
    with pytest.raises(ValueError, match="unknown video-vq preset 'f4'"):
        VideoVQConfig(preset="f4")


# --- training -----------------------------------------------------------------------------------------
def test_a_few_training_steps_lower_the_loss(photos, tmp_path):
    result = train_video_tokenizer(photos, tmp_path / "tok", init=photos / "init", preset="tiny", steps=30,
                                   batch_size=4, frames=5, size=16, lr=3e-3, progress=False)  # fmt: skip
    history = [h["latent_mse"] for h in result.train.history]
    assert history[-1] < 0.7 * history[0]
    tok = mmgist.load_tokenizer(tmp_path / "tok")
    assert tok.encode(clip(5)).shape == (2, 8, 8) and (tmp_path / "tok" / "training.json").is_file()
    init = mmgist.load_tokenizer(photos / "init")
    frozen = tok.spatial_decoder.state_dict()["net.0.weight"]  # the image tokenizer's, frozen (stored as float16)
    assert torch.equal(frozen, init.decoder.state_dict()["net.0.weight"].half().float())


def test_training_without_an_image_tokenizer_needs_a_pixel_loss(photos, tmp_path):
    with pytest.raises(ValueError, match="needs a pixel loss"):
        train_video_tokenizer(photos, tmp_path / "tok", init=None, preset="tiny", steps=2, progress=False)
    result = train_video_tokenizer(photos, tmp_path / "tok", init=None, preset="tiny", steps=2, batch_size=2, frames=5,
                                   size=8, progress=False, pixel_weight=1.0)  # fmt: skip
    assert "psnr" in result.train.history[-1]


def test_two_process_ddp_keeps_ranks_identical(photos, tmp_path):
    from support.ddp import run_ddp

    ranks = run_ddp("video", photos, tmp_path)
    assert ranks[0][0] == ranks[1][0] == "2" and ranks[0][1] == ranks[1][1]


def test_clips_from_photos_are_reproducible_and_move(photos):
    clips = RandomClips(photos, frames=5, size=16, seed=3)
    a, b = clips.clips(7, 0, 4), clips.clips(7, 0, 4)
    assert a.shape == (4, 5, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, clips.clips(7, 1, 4))
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    held = heldout_clips(photos, n=6, frames=5, size=16)
    assert [k for k, _ in held] == list(KINDS)
    moving = dict(held)
    for kind in ("pan", "zoom", "rotate", "light"):
        assert (moving[kind][-1] - moving[kind][0]).abs().mean() > 1e-3, kind


# --- files --------------------------------------------------------------------------------------------
def test_video_files_round_trip_through_pyav(tmp_path):
    frames = (torch.rand(6, 3, 24, 32) > 0.5).byte() * 255  # colours a GIF palette holds exactly
    save_video(tmp_path / "a.gif", frames, 8)
    back, fps = load_video(tmp_path / "a.gif")
    assert torch.equal(back, frames) and fps == pytest.approx(8, rel=0.05)
    smooth = clip(10, 32)
    save_video(tmp_path / "a.mp4", smooth, 10)
    mp4, fps = load_video(tmp_path / "a.mp4")
    assert mp4.shape == (10, 3, 32, 32) and fps == 10
    few, fps = load_video(tmp_path / "a.mp4", fps=5, max_frames=3, size=16)
    assert few.shape == (3, 3, 16, 16) and fps == 5
    assert load_video(tmp_path / "a.mp4", fps=20)[0].shape[0] in (19, 20)  # each frame shown twice
    odd = (torch.rand(3, 3, 15, 17) * 255).byte()
    save_video(tmp_path / "odd.mp4", odd, 8)  # H.264 needs even sizes: padded by one row and column
    assert load_video(tmp_path / "odd.mp4")[0].shape == (3, 3, 16, 18)


def test_bad_video_files_are_refused(tmp_path, monkeypatch):
    from mmgist.io import save_audio

    (tmp_path / "junk.mp4").write_bytes(b"\x00\x01not a video" * 50)
    with pytest.raises(ValueError, match="not a video file PyAV"):
        load_video(tmp_path / "junk.mp4")
    save_audio(tmp_path / "sound.wav", torch.zeros(1, 800), 8000)
    with pytest.raises(ValueError, match=r"has no video stream \(its streams: audio\)"):
        load_video(tmp_path / "sound.wav")
    save_video(tmp_path / "a.mp4", (torch.rand(8, 3, 32, 32) * 255).byte(), 8)
    data = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"cut\.mp4"):
        load_video(tmp_path / "cut.mp4")
    monkeypatch.setattr("mmgist.io.video.MAX_VIDEO_PIXELS", 32 * 32 - 1)
    with pytest.raises(ValueError, match=r"frames of 32x32 are over the limit of 1023 pixels .* pass size="):
        load_video(tmp_path / "a.mp4")
    assert load_video(tmp_path / "a.mp4", size=16)[0].shape[-1] == 16
    with pytest.raises(ValueError, match=r"save_video needs frames \(T, 3, H, W\) with T >= 1, got \(0, 3, 8, 8\)"):
        save_video(tmp_path / "b.mp4", torch.zeros(0, 3, 8, 8), 8)
    with pytest.raises(ValueError, match=r"suffix '\.avi'"):
        save_video(tmp_path / "b.avi", torch.zeros(2, 3, 8, 8), 8)
    with pytest.raises(ValueError, match="NaN or inf"):
        save_video(tmp_path / "b.gif", torch.full((2, 3, 8, 8), float("nan")), 8)
    with pytest.raises(ValueError, match="fps"):
        load_video(tmp_path / "a.mp4", fps=0)


def test_the_bundled_animated_gif_reads():
    import os

    import skimage

    frames, fps = load_video(os.path.join(os.path.dirname(skimage.__file__), "data", "no_time_for_that_tiny.gif"))
    assert frames.shape[0] > 1 and frames.dtype == torch.uint8 and fps > 0


# --- prompts --------------------------------------------------------------------------------------------
def test_a_video_prompt_round_trips_and_distills_into_a_gist():
    tok = tiny()
    vocab = SharedVocabulary(text=ByteTokenizer(), video=tok)
    x = clip(5, 8)
    prompt = Prompt(["Watch:", Video(x, 8.0), "What moves?"])
    ids = vocab.encode(prompt, add_bos=True)
    codes = tok.encode(x)
    back = vocab.decode(ids)
    assert [s.modality for s in back] == ["text", "video", "text"] and torch.equal(back[1].codes, codes)
    assert back[1].frames.shape == (5, 3, 8, 8)
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").eval()
    cfg = GistConfig(**EMBEDDINGS_ONLY, num_gist_tokens=2, steps=20, lr=3e-2, num_continuations=6,
                     continuation_length=5, eval_every=10)  # fmt: skip
    gist = distill_gist(model, vocab, prompt, cfg)
    rows = gist.report["baselines"]
    assert gist.report["prefix_tokens"] == len(ids) and rows["gist"]["kl"] < rows["no_prefix"]["kl"]


# --- the per-frame alternative -------------------------------------------------------------------------
def test_keyframes_are_the_image_tokenizers_codes_and_decode_blends(photos, tmp_path):
    import sys
    from pathlib import Path

    from mmgist.tokenizers import KeyframeConfig, VideoKeyframeTokenizer

    torch.manual_seed(0)  # FSQ: an untrained "vq" codebook would be k-means-initialized on each batch it sees
    mmgist.create_tokenizer("image-vq", preset="tiny", quantizer="fsq").save_pretrained(tmp_path / "fsq")
    tok = VideoKeyframeTokenizer(KeyframeConfig(image=str(tmp_path / "fsq")))
    image = mmgist.load_tokenizer(tmp_path / "fsq")
    x = clip(9, 16)
    codes = tok.encode(x)
    assert codes.shape == (3, 8, 8) and torch.equal(codes, image.encode(x[::4]))
    frames, keys = tok.decode(codes), image.decode(codes)
    assert frames.shape == (9, 3, 16, 16) and torch.equal(frames[::4], keys)
    assert torch.allclose(frames[2], (keys[0] + keys[1]) / 2, atol=1e-6)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from video_tokenizer import keyframes  # the benchmark's row: the same codes, the same frames

    assert torch.equal(keyframes(image)(x)[0], frames)
    saved = tok.save_pretrained(tmp_path / "kf")
    assert [p.name for p in saved.iterdir()] == ["config.json"]
    assert mmgist.load_tokenizer(saved).fingerprint() == tok.fingerprint()
    vocab = SharedVocabulary(text=ByteTokenizer(), video=tok)
    back = vocab.decode(vocab.encode(Prompt(["See:", Video(x, 8.0)])))
    assert torch.equal(back[1].codes, codes) and back[1].frames.shape == (9, 3, 16, 16)
