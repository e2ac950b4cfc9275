"""Bad media: truncated files are refused with both lengths, absurd rates and sizes are refused before the
memory is taken, and resampling stays bounded for any pair of rates. Tiny files made here, in seconds."""

from __future__ import annotations

import json
import math
import re
import struct
import wave

import av
import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from mmgist import Audio, Video, create_tokenizer
from mmgist.cli import main
from mmgist.io import load_audio, load_video, resample, save_audio, save_video
from mmgist.io.audio import _swresample
from mmgist.validate import MAX_FPS, MAX_SAMPLE_RATE


def write_wav(path, samples: int, rate: int = 16000, keep_bytes: int | None = None, claim_rate: int | None = None):
    """A mono 16-bit WAV of a sine; `keep_bytes` cuts the file there, `claim_rate` rewrites the header's rate."""
    pcm = (np.sin(np.arange(samples) / 10) * 10000).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate), w.writeframes(pcm)
    data = bytearray(path.read_bytes())
    if claim_rate is not None:
        data[24:32] = struct.pack("<II", claim_rate, claim_rate * 2)
    path.write_bytes(bytes(data[:keep_bytes]))
    return path


def cut(path, fraction: float):
    """`path` cut to `fraction` of its bytes, as a new file beside it."""
    out = path.with_name(f"cut-{path.name}")
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def sine(rate: int, seconds: float, hz: float = 440.0) -> torch.Tensor:
    return torch.sin(2 * math.pi * hz * torch.arange(int(rate * seconds)) / rate)[None].float() * 0.5


# --- truncated files --------------------------------------------------------------------------
def test_a_wav_cut_in_half_is_refused_with_both_lengths(tmp_path):
    path = write_wav(tmp_path / "half.wav", 16000, keep_bytes=44 + 16000)
    with pytest.raises(ValueError, match=r"half\.wav' is truncated: its header promises 16000 samples .* holds 8000"):
        load_audio(path)


def test_a_cut_flac_is_refused(tmp_path):
    save_audio(tmp_path / "a.flac", torch.sin(torch.arange(48000) / 10)[None] * 0.3, 16000)  # cuts between frames
    with pytest.raises(ValueError, match=r"cut-a\.flac' is truncated: its header promises 48000 samples"):
        load_audio(cut(tmp_path / "a.flac", 0.5))


def test_whole_files_and_reads_within_the_surviving_part_still_load(tmp_path):
    whole = write_wav(tmp_path / "whole.wav", 16000)
    assert load_audio(whole)[0].shape == (1, 16000)
    half = write_wav(tmp_path / "half.wav", 16000, keep_bytes=44 + 16000)
    assert load_audio(half, max_seconds=0.25)[0].shape == (1, 4000)  # what was asked for is all there
    save_audio(tmp_path / "a.flac", sine(16000, 1.0), 16000)
    assert load_audio(tmp_path / "a.flac")[0].shape == (1, 16000)


def test_a_wav_streamed_without_its_length_loads(tmp_path):
    path = write_wav(tmp_path / "stream.wav", 8000)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # the data chunk's size as a recorder that never knew it writes it
    path.write_bytes(bytes(data))
    assert load_audio(path)[0].shape == (1, 8000)


def faststart_mp4(path, frames: int = 40):
    """An H.264 mp4 with its index (moov) first, as streaming sites write them, so a cut keeps the index."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_a_cut_video_is_refused_not_loaded_short(tmp_path):
    path = faststart_mp4(tmp_path / "v.mp4")
    assert load_video(path)[0].shape[0] == 40
    with pytest.raises(ValueError, match=r"cut-v\.mp4' is (corrupt or )?truncated"):
        load_video(cut(path, 0.6))
    assert load_video(cut(path, 0.6), max_frames=4)[0].shape[0] == 4  # the frames asked for are there


@pytest.mark.parametrize(
    "broken, says",
    [
        ({"keep_bytes": 44 + 16000}, r"truncated: its header promises 16000"),
        ({"claim_rate": 2 * 10**9}, r"2000000000 Hz"),
    ],
    ids=["truncated", "two-gigahertz"],
)
def test_the_cli_refuses_a_prompt_naming_a_broken_file_in_one_line(tmp_path, vocab, capsys, broken, says):
    vocab.save_pretrained(tmp_path / "vocab")
    write_wav(tmp_path / "bad.wav", 16000, **broken)
    (tmp_path / "p.json").write_text(json.dumps(["Listen: ", {"audio": "bad.wav"}]))
    assert main(["encode", "--vocab", str(tmp_path / "vocab"), str(tmp_path / "p.json")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "bad.wav" in line and re.search(says, line), line


# --- rates and sizes past the limits ----------------------------------------------------------
def test_a_header_claiming_two_gigahertz_is_refused_before_reading(tmp_path):
    path = write_wav(tmp_path / "ghz.wav", 16000, claim_rate=2_000_000_000)
    with pytest.raises(ValueError, match=rf"ghz\.wav' claims a sample rate of 2000000000 Hz; .*{MAX_SAMPLE_RATE}"):
        load_audio(path)


@pytest.mark.parametrize(
    "call",
    [
        lambda p: load_audio(p, sample_rate=10**9),
        lambda p: save_audio(p.with_name("out.wav"), torch.zeros(1, 10), 10**9),
        lambda p: resample(torch.zeros(1, 10), 10**9, 16000),
        lambda p: create_tokenizer("audio-rvq", preset="tiny").encode(torch.zeros(1, 10), sample_rate=10**9),
        lambda p: Audio(torch.zeros(1, 10), 10**9),
    ],
    ids=["load", "save", "resample", "encode", "segment"],
)
def test_sample_rates_over_the_limit_are_refused_with_the_limit(tmp_path, call):
    path = write_wav(tmp_path / "ok.wav", 160)
    with pytest.raises(ValueError, match=rf"1000000000 Hz is over the limit of {MAX_SAMPLE_RATE} Hz"):
        call(path)


@pytest.mark.parametrize(
    "call",
    [
        lambda p: load_video(p, fps=1e9),
        lambda p: save_video(p.with_name("out.gif"), torch.zeros(2, 3, 8, 8), 1e9),
        lambda p: create_tokenizer("video-vq", preset="tiny").encode(torch.rand(5, 3, 16, 16), fps=1e9),
        lambda p: Video(torch.zeros(2, 3, 8, 8), 1e9),
    ],
    ids=["load", "save", "encode", "segment"],
)
def test_frame_rates_over_the_limit_are_refused_with_the_limit(tmp_path, call):
    path = faststart_mp4(tmp_path / "v.mp4", frames=4)
    with pytest.raises(ValueError, match=rf"1e\+09 is over the limit of {MAX_FPS:g} frames per second"):
        call(path)


def test_loads_past_the_byte_limits_are_refused_naming_the_limit(tmp_path, monkeypatch):
    import mmgist.io
    import mmgist.io.audio
    import mmgist.io.video

    monkeypatch.setattr(mmgist.io.audio, "MAX_AUDIO_BYTES", 4 * 1000)
    with pytest.raises(ValueError, match=r"MAX_AUDIO_BYTES.*pass max_seconds="):
        load_audio(write_wav(tmp_path / "a.wav", 16000))
    assert load_audio(tmp_path / "a.wav", max_seconds=0.05)[0].shape == (1, 800)  # a part within the limit
    monkeypatch.setattr(mmgist.io.video, "MAX_VIDEO_BYTES", 64 * 64 * 3 * 10)
    with pytest.raises(ValueError, match=r"MAX_VIDEO_BYTES\) after 10 frames; pass max_frames="):
        load_video(faststart_mp4(tmp_path / "v.mp4"))


# --- resampling -------------------------------------------------------------------------------
def test_ffmpeg_and_torchaudio_resamplers_agree_where_both_run():
    x = sine(48000, 0.5)
    ours, theirs = _swresample(x, 48000, 16000), AF.resample(x, 48000, 16000)
    assert ours.shape == theirs.shape == (1, 8000)
    assert (ours - theirs)[:, 50:-50].abs().max() < 2e-3  # the filters differ at the very ends only


def test_an_awkward_ratio_resamples_in_bounded_memory_and_keeps_the_pitch():
    x = sine(47999, 1.0)  # torchaudio's kernel for 47999 -> 16000 would be 3 GB
    y = resample(x, 47999, 16000)
    assert y.shape == (1, math.ceil(47999 * 16000 / 47999))
    assert (y - sine(16000, 1.0))[:, 50:-50].abs().max() < 1e-3
