"""Bad input, media in and out: audio and image tokenizer input, media files, JSON and weight files, tokenizer
configs and the registry.

Each case names the call, the exact exception type expected, and a regex that the message must match: the offending
value (or its position, shape or path), so the user sees what was wrong (tests/support/bad_input.py builds what
they need, once per module).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support.bad_input import (
    NAN,
    P,
    copy,
    edit_json,
    float_tiff,
    nan_weights,
    refused_by_name,
    small_pixel_limit,
    tiny_audio,
    tiny_vq,
    tokenizer_folder,
    truncate,
    vq_config,
)

from mmgist import (
    ModalityTokenizer,
    create_tokenizer,
    load_tokenizer,
    register_tokenizer,
)
from mmgist.io import image_to_tensor, load_audio, load_image, save_audio, save_image, tensor_to_image
from mmgist.storage import load_tensors, read_json, read_versioned_json

CASES = [
    # audio: waveforms, codes, files (the audio tokenizer's own tests hold more)
    P(lambda c: tiny_audio().encode(torch.zeros(0), 8000), ValueError, r"empty \(shape", id="audio-empty"),
    P(lambda c: tiny_audio().encode(torch.tensor([0.0, NAN]), 8000), ValueError, "1 NaN or inf", id="audio-nan"),
    P(lambda c: tiny_audio().encode(torch.full((9,), 300.0), 8000), ValueError, "peak amplitude is 300", id="a-peak"),
    P(lambda c: tiny_audio().encode(torch.zeros(9), -1), ValueError, "got -1", id="audio-rate"),
    P(lambda c: tiny_audio().encode(torch.zeros(9), 8000, num_codebooks=9), ValueError, "got 9", id="audio-n"),
    P(lambda c: tiny_audio().decode(torch.full((3, 4), 99)), ValueError, r"code 99 is outside", id="audio-code"),
    P(lambda c: tiny_audio().decode(torch.zeros(7, 4, dtype=torch.long)), ValueError, "7 codebooks", id="a-books"),
    P(lambda c: tiny_audio(dropout=1.5), ValueError, r"dropout must lie in \[0, 1\], got 1\.5", id="a-dropout"),
    P(lambda c: tiny_audio(strides=(4,)), ValueError, "one width more than strides", id="audio-strides"),
    P(lambda c: tiny_audio(quantizer="vq"), ValueError, "unknown quantizer 'vq'", id="audio-quantizer"),
    P(lambda c: load_audio(c.paths["afile"]), ValueError, "afile' is not an audio file", id="load-audio-text"),
    P(lambda c: load_audio(c.paths["adir"]), IsADirectoryError, "adir", id="load-audio-dir"),
    P(lambda c: load_audio(c.paths["root"] + "/no.wav"), FileNotFoundError, "no.wav", id="load-audio-missing"),
    P(lambda c: load_audio(c.paths["im"]), ValueError, r"im.png' has no audio stream", id="load-audio-image"),
    P(lambda c: load_audio(c.paths["im"], max_seconds=NAN), ValueError, "max_seconds", id="load-audio-max"),
    P(lambda c: save_audio(c.root / "x.aiff", torch.zeros(9), 8000), ValueError, "'.aiff'", id="save-audio-suffix"),
    P(lambda c: save_audio(c.root / "x.wav", torch.zeros(3, 9), 8000), ValueError, "3 channels", id="save-audio-ch"),
    P(lambda c: save_audio(c.root / "x.wav", torch.zeros(9), 0), ValueError, "got 0", id="save-audio-rate"),
    # image tokenizer input
    P(lambda c: tiny_vq().encode("cat.png"), TypeError, "'cat.png'.*load_image", id="vq-encode-path-str"),
    P(lambda c: tiny_vq().encode(Path("cat.png")), TypeError, "cat.png", id="vq-encode-path"),
    P(lambda c: tiny_vq().encode(np.zeros((8, 8, 3), np.uint8)), TypeError, r"\(8, 8, 3\)", id="vq-encode-numpy"),
    P(lambda c: tiny_vq().encode(None), TypeError, "NoneType", id="vq-encode-none"),
    P(lambda c: tiny_vq().encode(5), TypeError, "int 5", id="vq-encode-int"),
    P(lambda c: tiny_vq().encode(["cat.png"]), TypeError, "cat.png", id="vq-encode-list-of-paths"),
    P(lambda c: tiny_vq().encode([torch.rand(4, 4)]), ValueError, r"\(4, 4\)", id="vq-encode-list-2d"),
    P(lambda c: tiny_vq().encode(torch.rand(3, 4, 4) * 3), ValueError, r"must lie in \[0, 1\]", id="vq-range"),
    P(lambda c: tiny_vq().encode(torch.full((3, 4, 4), NAN)), ValueError, "NaN", id="vq-nan"),
    P(lambda c: tiny_vq().encode([]), ValueError, "empty list", id="vq-empty-list"),
    P(lambda c: tiny_vq().encode(torch.rand(2, 4, 4)), ValueError, r"\(1, 2, 4, 4\)", id="vq-channels"),
    P(lambda c: tiny_vq().encode(torch.rand(3, 7, 11), fit="error"), ValueError, "11x7", id="vq-fit-error"),
    P(lambda c: tiny_vq().encode(torch.rand(3, 4, 4), fit="stretch"), ValueError, "'stretch'", id="vq-fit-unknown"),
    P(lambda c: tiny_vq().encode(torch.zeros(3, 4, 4, dtype=torch.int32)), TypeError, "int32", id="vq-int32"),
    P(lambda c: tiny_vq().decode([[1, 2], [3, 4]]), TypeError, "list", id="vq-decode-list"),
    P(lambda c: tiny_vq().decode(torch.full((2, 2), 99)), ValueError, "code 99", id="vq-decode-range"),
    P(lambda c: tiny_vq().decode(torch.zeros(4, dtype=torch.long)), ValueError, r"\(4,\)", id="vq-decode-1d"),
    P(lambda c: tiny_vq().decode(torch.zeros(2, 2)), TypeError, "float32", id="vq-decode-float"),
    P(lambda c: tiny_vq().decode(torch.zeros(2, 2, dtype=torch.bool)), TypeError, "bool", id="vq-decode-bool"),
    # media files
    P(lambda c: load_image(c.root / "nope.png"), FileNotFoundError, "nope.png", id="image-missing"),
    P(lambda c: load_image(c.paths["adir"]), IsADirectoryError, "adir", id="image-dir"),
    P(lambda c: load_image(c.paths["afile"]), ValueError, "afile", id="image-not-image"),
    P(lambda c: small_pixel_limit(c), ValueError, "8x8 = 64 pixels", id="image-over-pixel-limit"),
    P(lambda c: load_image(float_tiff(c, NAN)), ValueError, r"float-nan\.tif.*NaN", id="image-float-nan"),
    P(lambda c: load_image(float_tiff(c, -1.0)), ValueError, "negative", id="image-float-negative"),
    P(lambda c: save_image(torch.full((3, 4, 4), NAN), c.root / "x.png"), ValueError, "48 NaN", id="save-image-nan"),
    P(lambda c: save_image(torch.rand(4, 4), c.root / "x.png"), ValueError, r"\(4, 4\)", id="save-image-2d"),
    P(lambda c: save_image(torch.rand(3, 4, 4), c.root / "x.xyz"), ValueError, r"'\.xyz'", id="save-image-suffix"),
    P(lambda c: save_image("cat.png", c.root / "x.png"), TypeError, "'cat.png'", id="save-image-path"),
    P(
        lambda c: save_image(torch.zeros(3, 4, 4, dtype=torch.int32), c.root / "x.png"),
        TypeError,
        "int32",
        id="save-image-int32",
    ),
    P(lambda c: image_to_tensor(np.zeros((4, 4, 3))), TypeError, r"\(4, 4, 3\)", id="to-tensor-numpy"),
    P(lambda c: image_to_tensor("cat.png"), TypeError, "'cat.png'", id="to-tensor-path"),
    P(lambda c: tensor_to_image([1]), TypeError, "list", id="to-image-list"),
    # JSON and weights files
    P(lambda c: read_versioned_json(c.root / "nope.json", "x", (1,)), FileNotFoundError, "nope", id="json-missing"),
    P(lambda c: read_versioned_json(c.paths["adir"], "x", (1,)), IsADirectoryError, "adir", id="json-dir"),
    P(lambda c: read_versioned_json(c.paths["bad"], "x", (1,)), ValueError, r"bad\.json", id="json-corrupt"),
    P(lambda c: read_json(c.paths["notutf8"]), ValueError, r"notutf8\.json", id="json-not-utf8"),
    P(lambda c: load_tensors(c.paths["adir"]), IsADirectoryError, "adir", id="tensors-dir"),
    P(lambda c: load_tensors(c.paths["afile"]), ValueError, "afile", id="tensors-garbage"),
    # tokenizer configs and the registry
    P(lambda c: create_tokenizer("image-vq", preset="f99"), ValueError, "'f99'", id="vq-preset"),
    P(lambda c: vq_config(channels="abc"), TypeError, "'abc'", id="vq-channels-str"),
    P(lambda c: vq_config(channels=(8, -16)), ValueError, "-16", id="vq-channels-negative"),
    P(lambda c: vq_config(channels=(13,)), ValueError, "width 13", id="vq-channels-groups"),
    P(lambda c: vq_config(blocks=0), ValueError, "blocks .*got 0", id="vq-blocks"),
    P(lambda c: vq_config(z_dim=True), TypeError, "z_dim .*True", id="vq-z-dim-bool"),
    P(lambda c: vq_config(code_dim=2.5), TypeError, r"code_dim .*2\.5", id="vq-code-dim-float"),
    P(lambda c: vq_config(codebook_size=1), ValueError, "codebook_size .*got 1", id="vq-codebook"),
    P(lambda c: vq_config(ema_decay=1.5), ValueError, r"ema_decay .*1\.5", id="vq-ema"),
    P(lambda c: vq_config(l1_weight=NAN), ValueError, "l1_weight .*nan", id="vq-weight-nan"),
    P(lambda c: vq_config(edge_weight=-1.0), ValueError, r"edge_weight .*-1\.0", id="vq-weight-negative"),
    P(lambda c: vq_config(quantizer="lfq"), ValueError, "'lfq'", id="vq-quantizer"),
    P(lambda c: vq_config(quantizer="fsq", fsq_levels=(1, 4)), ValueError, r"\(1, 4\)", id="vq-fsq-levels"),
    P(lambda c: create_tokenizer("nope"), ValueError, "'nope'", id="create-unknown"),
    P(lambda c: create_tokenizer("byte", bogus=1), TypeError, "bogus", id="create-bad-option"),
    P(lambda c: load_tokenizer("no-such-tok"), ValueError, "'no-such-tok'", id="load-tokenizer-unknown"),
    P(lambda c: load_tokenizer(None), TypeError, "None", id="load-tokenizer-none"),
    P(lambda c: ModalityTokenizer.from_pretrained(c.paths["afile"]), NotADirectoryError, "afile", id="tok-file"),
    P(lambda c: ModalityTokenizer.from_pretrained(c.root / "nope"), FileNotFoundError, "nope", id="tok-missing"),
    P(lambda c: load_tokenizer(tokenizer_folder(c, channels="abc")), TypeError, "config.json.*'abc'", id="tok-cfg-str"),
    P(lambda c: load_tokenizer(tokenizer_folder(c, z_dim=-8)), ValueError, "config.json.*-8", id="tok-cfg-negative"),
    P(lambda c: load_tokenizer(tokenizer_folder(c, z_dim=16)), ValueError, "do not fit.*shape", id="tok-weights-fit"),
    P(lambda c: load_tokenizer(tokenizer_folder(c, nan_weights)), ValueError, "NaN", id="tok-nan-weights"),
    P(lambda c: load_tokenizer(tokenizer_folder(c, truncate)), ValueError, "model.safetensors", id="tok-truncated"),
    P(
        lambda c: load_tokenizer(tokenizer_folder(c, lambda p: p.write_bytes(b""))),
        ValueError,
        "model.safetensors",
        id="tok-zero-bytes",
    ),
    P(
        lambda c: load_tokenizer(tokenizer_folder(c, lambda p: p.write_bytes(b"garbage" * 50))),
        ValueError,
        "model.safetensors",
        id="tok-garbage",
    ),
    P(
        lambda c: load_tokenizer(tokenizer_folder(c, Path.unlink)),
        FileNotFoundError,
        "model.safetensors",
        id="tok-no-w",
    ),
    P(
        lambda c: load_tokenizer(tokenizer_folder(c, lambda p: (p.unlink(), p.mkdir()))),
        IsADirectoryError,
        "model.safetensors",
        id="tok-weights-dir",
    ),
    P(
        lambda c: load_tokenizer(edit_json(copy(c, "tok") / "config.json", format="other").parent),
        ValueError,
        "'other'",
        id="tok-format",
    ),
    P(lambda c: register_tokenizer(""), ValueError, "''", id="register-empty"),
    P(lambda c: register_tokenizer("x-int")(int), TypeError, "int", id="register-not-tokenizer"),
]


@pytest.mark.parametrize("call, error, names", CASES)
def test_the_api_refuses_bad_input_by_name(corpus, call, error, names):
    refused_by_name(corpus, call, error, names)
