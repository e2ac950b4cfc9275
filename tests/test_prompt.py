"""Prompt: plain values become segments; bad values are refused with the value named."""

import pytest
import torch
from PIL import Image as PILImage

from mmgist import Audio, Image, Prompt, Text, Video


def test_plain_values_become_segments():
    pil = PILImage.new("RGB", (4, 4))
    p = Prompt(["Describe", pil, torch.rand(3, 4, 4), (torch.rand(100), 16000), Video(torch.rand(2, 3, 4, 4), 5)])
    assert p.modalities == ["text", "image", "image", "audio", "video"]
    assert p[3].waveform.shape == (1, 100)
    assert isinstance(p[1:3], Prompt) and len(p[1:3]) == 2
    assert (Prompt("a") + ["b"]).text() == "ab"  # noqa: RUF005 (Prompt.__add__ is under test)
    assert "Describe" in repr(p)


@pytest.mark.parametrize(
    "item, error, message",
    [
        ("", ValueError, "empty text segment"),
        (torch.rand(2, 3, 4, 4), ValueError, r"use Video\(frames, fps=...\)"),
        (torch.rand(5), ValueError, r"shape \(5,\)"),
        (3.5, TypeError, "cannot make a prompt segment from float"),
    ],
)
def test_bad_segments(item, error, message):
    with pytest.raises(error, match=message):
        Prompt([item])


def test_segment_constructors_check_their_fields():
    with pytest.raises(TypeError, match="text codes must be an integer tensor"):
        Text("x", codes=torch.zeros(2))
    with pytest.raises(ValueError, match="needs pixels or codes"):
        Image()
    with pytest.raises(ValueError, match="sample_rate must be a positive int, got 0"):
        Audio(torch.rand(1, 10), 0)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        Video(torch.rand(1, 3, 2, 2), fps=None)
    with pytest.raises(ValueError, match=r"non-empty 2-d tensor, got shape \(3,\)"):
        Image(codes=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        Audio(torch.zeros(1, 0), 16000)


def test_a_prompt_and_a_tokenizer_print_in_one_line_each():
    from PIL import Image as PILImage

    from mmgist import create_tokenizer

    prompt = Prompt(["hi ", torch.rand(3, 16, 24), PILImage.new("RGB", (30, 20)), Audio(torch.zeros(1, 16000), 16000),
                     Video(torch.zeros(5, 3, 8, 12), 8)])  # fmt: skip
    assert repr(prompt) == (
        "Prompt(['hi ', <image 24x16>, <image 30x20>, <audio 1.00 s at 16000 Hz>, <video 5 frames 12x8 at 8 fps>])"
    )
    assert repr(create_tokenizer("image-vq", preset="tiny")) == (
        "ImageVQTokenizer(name='image-vq', codebook_size=32, num_codebooks=1)"
    )
