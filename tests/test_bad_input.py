"""The bad-input corpus: every public entry point and every CLI subcommand, fed what a new user might pass.

Each case names the call, the exact exception type expected, and a regex that the message must match:
the offending value (or its position, shape or path), so the user sees what was wrong. CLI cases also
check that the error is one line on stderr with exit code 2 (argparse's own refusals are SystemExit).
Everything is built once per module from tiny parts (toy tokenizers, a 2-layer model), so the whole
corpus runs in seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from safetensors.torch import load_file, save_file

from mmgist import (
    Audio,
    ByteTokenizer,
    GistConfig,
    GistPrefix,
    IdLayout,
    Image,
    ModalityTokenizer,
    MultimodalProcessor,
    Prompt,
    Question,
    SharedVocabulary,
    Text,
    Video,
    build_lm,
    create_tokenizer,
    distill_gist,
    extend_lm,
    generate,
    load_model,
    load_tokenizer,
    register_tokenizer,
    save_model,
    score_options,
)
from mmgist.cli import build_parser, main
from mmgist.gist import model_fingerprint
from mmgist.io import image_to_tensor, load_audio, load_image, save_audio, save_image, tensor_to_image
from mmgist.lm.generate import LayoutConstraint
from mmgist.lm.scoring import accuracy, option_kl, prefix_head
from mmgist.storage import load_tensors, read_json, read_versioned_json
from mmgist.tokenizers import HFTextTokenizer
from mmgist.tokenizers.text import ByteConfig
from mmgist.train import TrainConfig

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    """Everything the cases need, built once: a vocabulary, a tiny model, saved folders and files."""
    from conftest import make_vocab

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("bad-input")
    vocab = make_vocab()
    model = build_lm(vocab, "tiny").eval()
    save_model(model, vocab, root / "model")
    vocab.save_pretrained(root / "vocab")
    create_tokenizer("image-vq", preset="tiny").save_pretrained(root / "tok")
    PILImage.new("RGB", (8, 8), (200, 100, 50)).save(root / "im.png")
    fp, vfp = model_fingerprint(model), vocab.fingerprint()
    g4 = GistPrefix(torch.randn(4, 32), fp, vfp, 10, vocab.bos_id)
    g4b = GistPrefix(torch.randn(4, 32), fp, vfp, 10, vocab.bos_id)
    g8 = GistPrefix(torch.randn(8, 32), fp, vfp, 10, vocab.bos_id)
    g4.save(root / "g.safetensors")
    GistPrefix(torch.randn(4, 32), "0" * 64, vfp, 10, vocab.bos_id).save(root / "other.safetensors")
    files = {
        "p.json": json.dumps(["Hi ", {"image": "im.png"}]),
        "bad.json": "[1, 2",
        "dict.json": json.dumps({"ids": [1, 2]}),
        "floats.json": json.dumps([72.9, 105.9]),
        "strings.json": json.dumps(["72", "105"]),
        "big.json": json.dumps([72, 10**6]),
        "item.json": json.dumps([5]),
        "imgdir.json": json.dumps([{"image": "adir"}]),
        "m.jsonl": json.dumps({"prompt": ["ab"], "completion": ["c"]}) + "\n",
        "afile": "not a folder",
        "notutf8.json": None,
    }
    for name, text in files.items():
        if text is None:
            (root / name).write_bytes(b"\xff\xfe\x00[")
        else:
            (root / name).write_text(text)
    (root / "adir").mkdir()
    paths = {p.name.split(".")[0]: str(p) for p in root.iterdir()}
    paths["root"] = str(root)
    return SimpleNamespace(root=root, vocab=vocab, model=model, g4=g4, g4b=g4b, g8=g8, paths=paths)


# --- helpers that make broken copies ---------------------------------------------------------
_copies = itertools.count()


def copy(c, name: str) -> Path:
    """A fresh copy of the saved folder `name` (model, vocab, tok) to break."""
    dst = c.root / "copies" / f"{name}-{next(_copies)}"
    shutil.copytree(c.root / name, dst)
    return dst


def edit_json(path: Path, **changes) -> Path:
    """Change top-level fields of a JSON file."""
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


def broken_model(c, **config) -> Path:
    folder = copy(c, "model")
    edit_json(folder / "config.json", **config)
    return folder


def model_with_weights(c, edit) -> Path:
    folder = copy(c, "model")
    edit(folder / "model.safetensors")
    return folder


def nan_weights(path: Path) -> None:
    tensors = {k: torch.full_like(v, NAN) if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def tokenizer_folder(c, weights=None, **config) -> Path:
    folder = copy(c, "tok")
    header = json.loads((folder / "config.json").read_text())
    header["config"].update(config)
    header.pop("weights_sha256")  # so the weights' own problem is what is reported
    (folder / "config.json").write_text(json.dumps(header))
    if weights is not None:
        weights(folder / "model.safetensors")
    return folder


def gist_file(c, drop_tensor=False, tensor=None, **header) -> Path:
    """A copy of the saved gist with header fields changed (or its tensor replaced)."""
    from safetensors import safe_open

    with safe_open(c.paths["g"], framework="pt") as f:
        meta = json.loads(f.metadata()["mmgist"])
        t = f.get_tensor("embeddings")
    meta.update(header)
    path = c.root / "copies" / f"gist-{next(_copies)}.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_file({"embeddings": t if tensor is None else tensor}, path, metadata={"mmgist": json.dumps(meta)})
    return path


def small_pixel_limit(c):
    """load_image with Pillow's limit lowered to 32 pixels: the 8x8 test image is then 'too big'."""
    old = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = 32
    try:
        return load_image(c.paths["im"])
    finally:
        PILImage.MAX_IMAGE_PIXELS = old


def float_tiff(c, value: float) -> Path:
    path = c.root / f"float-{value}.tif"
    PILImage.fromarray(np.full((4, 4), value, dtype=np.float32), mode="F").save(path)
    return path


def tiny_vq():
    return create_tokenizer("image-vq", preset="tiny")


def vq_config(**fields):
    return create_tokenizer("image-vq", preset="tiny", **fields)


def tiny_audio(**fields):
    return create_tokenizer("audio-rvq", preset="tiny", **fields).eval()


# --- the public API --------------------------------------------------------------------------
P = pytest.param
API_CASES = [
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
    # ids into the vocabulary: never truncated, parsed or wrapped
    P(lambda c: c.vocab.decode([72.7, 105.2]), TypeError, r"72\.7 at position 0", id="decode-float-ids"),
    P(lambda c: c.vocab.decode(["72", "105"]), TypeError, r"'72' at position 0", id="decode-string-ids"),
    P(lambda c: c.vocab.decode(torch.tensor([72.0, 105.0])), TypeError, "float32", id="decode-float-tensor"),
    P(lambda c: c.vocab.decode(np.array([72.5])), TypeError, "float64", id="decode-float-array"),
    P(lambda c: c.vocab.decode([[1, 2], [3, 4]]), TypeError, r"\[1, 2\] at position 0", id="decode-nested"),
    P(lambda c: c.vocab.decode([True, 1]), TypeError, "True at position 0", id="decode-bool-id"),
    P(lambda c: c.vocab.decode([72, None]), TypeError, "None at position 1", id="decode-none-id"),
    P(lambda c: c.vocab.decode([72, 1.0]), TypeError, r"1\.0 at position 1", id="decode-whole-float"),
    P(lambda c: c.vocab.decode([-1]), ValueError, "id -1 at position 0", id="decode-negative"),
    P(lambda c: c.vocab.decode([72, 10**6]), ValueError, "id 1000000 at position 1", id="decode-too-big"),
    P(lambda c: c.vocab.decode("Hi"), TypeError, "'Hi'", id="decode-str"),
    P(lambda c: c.vocab.decode(5), TypeError, "5 ", id="decode-int"),
    P(lambda c: c.vocab.decode({1: 2}), TypeError, r"\{1: 2\}", id="decode-dict"),
    P(lambda c: c.vocab.decode(torch.zeros(2, 2, dtype=torch.long)), ValueError, r"\(2, 2\)", id="decode-2d"),
    P(lambda c: c.vocab.decode(torch.tensor([True])), TypeError, "bool", id="decode-bool-tensor"),
    P(lambda c: c.vocab.decode([c.vocab.layout.special("<|image|>"), 1]), ValueError, "never closed", id="unclosed"),
    P(lambda c: c.vocab.segment_of(3.5), TypeError, r"3\.5", id="segment-of-float"),
    P(lambda c: c.vocab.segment_of(10**6), ValueError, "1000000", id="segment-of-range"),
    P(lambda c: c.vocab.tokenizer("smell"), ValueError, "smell", id="vocab-no-such-modality"),
    P(lambda c: c.vocab.allowed_ids("smell"), ValueError, "smell", id="allowed-ids-modality"),
    P(lambda c: c.vocab.codes_to_ids("smell", torch.zeros(2)), ValueError, "smell", id="codes-to-ids-modality"),
    # prompts into the vocabulary
    P(lambda c: c.vocab.encode(5), TypeError, "int", id="encode-int"),
    P(lambda c: c.vocab.encode([]), ValueError, "empty prompt", id="encode-empty"),
    P(lambda c: c.vocab.encode(["hi"], return_tensors="np"), ValueError, "'np'", id="encode-return-tensors"),
    P(lambda c: c.vocab.encode([None]), TypeError, "NoneType", id="encode-none-segment"),
    P(lambda c: c.vocab.encode([Image(codes=torch.full((2, 2), 99))]), ValueError, "code 99", id="encode-codes"),
    P(lambda c: c.vocab.encode([torch.zeros(2, 2)]), ValueError, r"\(2, 2\)", id="encode-2d-tensor"),
    P(lambda c: c.vocab.encode([Image(pixels="cat.png")]), TypeError, "'cat.png'", id="encode-image-path"),
    P(lambda c: c.vocab.encode([torch.zeros(2, 3, 4, 4)]), ValueError, r"\(2, 3, 4, 4\)", id="encode-4d"),
    P(lambda c: SharedVocabulary(text="byte"), TypeError, "str", id="vocab-text-str"),
    P(lambda c: SharedVocabulary(ByteTokenizer(), image=ByteTokenizer()), ValueError, "'text'", id="vocab-wrong-tok"),
    P(lambda c: SharedVocabulary.from_pretrained(c.root / "nope"), FileNotFoundError, "nope", id="vocab-missing"),
    P(lambda c: SharedVocabulary.from_pretrained(c.paths["afile"]), NotADirectoryError, "afile", id="vocab-file"),
    P(lambda c: SharedVocabulary.from_pretrained(c.paths["adir"]), FileNotFoundError, "mmgist_vocab", id="vocab-empty"),
    P(
        lambda c: SharedVocabulary.from_pretrained(
            edit_json(copy(c, "vocab") / "mmgist_vocab.json", format_version=99).parent
        ),
        ValueError,
        "99",
        id="vocab-version",
    ),
    P(
        lambda c: SharedVocabulary.from_pretrained(
            edit_json(copy(c, "vocab") / "mmgist_vocab.json", tokenizers=[1]).parent
        ),
        ValueError,
        "tokenizers",
        id="vocab-entries",
    ),
    P(lambda c: c.vocab.resize_model(object()), TypeError, "object", id="resize-model-object"),
    P(lambda c: IdLayout(text_size=True), ValueError, "True", id="layout-bool"),
    P(lambda c: IdLayout(text_size=-1), ValueError, "-1", id="layout-negative"),
    P(lambda c: IdLayout(text_size=2.5), ValueError, r"2\.5", id="layout-float"),
    P(lambda c: IdLayout(256, audio_size=4), ValueError, "audio_size 4", id="layout-audio"),
    P(lambda c: c.vocab.layout.check_id(1.5), TypeError, r"1\.5", id="layout-check-float"),
    # prompt segments
    P(lambda c: Prompt([5]), TypeError, "int", id="prompt-int"),
    P(lambda c: Text(5), TypeError, "int", id="text-int"),
    P(lambda c: Text(""), ValueError, "empty text", id="text-empty"),
    P(lambda c: Image(), ValueError, "neither", id="image-nothing"),
    P(lambda c: Image(torch.zeros(2, 4, 4)), ValueError, r"\(2, 4, 4\)", id="image-channels"),
    P(lambda c: Image(codes=torch.zeros(2, 2)), TypeError, "float32", id="image-float-codes"),
    P(lambda c: Image(codes=torch.zeros(2, dtype=torch.long)), ValueError, r"\(2,\)", id="image-1d-codes"),
    P(lambda c: Audio(torch.zeros(1, 10), sample_rate=0), ValueError, "got 0", id="audio-rate-0"),
    P(lambda c: Audio(torch.zeros(1, 10), sample_rate=16000.5), ValueError, r"16000\.5", id="audio-rate-float"),
    P(lambda c: Audio(torch.zeros(1, 10), sample_rate=True), ValueError, "True", id="audio-rate-bool"),
    P(lambda c: Audio("x.wav"), TypeError, "str", id="audio-path"),
    P(lambda c: Audio(torch.zeros(1, 0), 16000), ValueError, r"\(1, 0\)", id="audio-empty"),
    P(lambda c: Video(torch.zeros(2, 3, 4, 4), fps=0), ValueError, "got 0", id="video-fps-0"),
    P(lambda c: Video(torch.zeros(2, 3, 4, 4), fps=NAN), ValueError, "nan", id="video-fps-nan"),
    P(lambda c: Video(torch.zeros(2, 3, 4, 4), fps=True), ValueError, "True", id="video-fps-bool"),
    P(lambda c: Video(torch.zeros(3, 4, 4), fps=1), ValueError, r"\(3, 4, 4\)", id="video-3d"),
    # text tokenizers
    P(lambda c: ByteTokenizer().encode(b"hi"), TypeError, "bytes", id="byte-encode-bytes"),
    P(lambda c: ByteTokenizer().encode(None), TypeError, "NoneType", id="byte-encode-none"),
    P(lambda c: ByteTokenizer().decode([72, 105]), TypeError, "list", id="byte-decode-list"),
    P(lambda c: ByteTokenizer().decode(torch.tensor([72.5])), TypeError, "float32", id="byte-decode-float"),
    P(lambda c: ByteTokenizer().decode(torch.tensor([300])), ValueError, "code 300", id="byte-decode-300"),
    P(lambda c: ByteTokenizer().decode(torch.tensor([-1])), ValueError, "code -1", id="byte-decode-negative"),
    P(lambda c: ByteTokenizer().decode(torch.zeros(2, 2, dtype=torch.long)), ValueError, r"\(2, 2\)", id="byte-2d"),
    P(lambda c: ByteConfig(errors="loud"), ValueError, "'loud'", id="byte-config"),
    P(lambda c: HFTextTokenizer.from_hf(c.root / "nope"), ValueError, "nope", id="hf-text-missing"),
    P(lambda c: HFTextTokenizer(), ValueError, "from_hf", id="hf-text-bare"),
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
    # the language model
    P(lambda c: build_lm("vocab"), TypeError, "str", id="build-lm-str"),
    P(lambda c: build_lm(c.vocab, num_hidden_layers=-1), ValueError, "num_hidden_layers .*-1", id="build-lm-negative"),
    P(lambda c: build_lm(c.vocab, hidden_size="abc"), TypeError, "'abc'", id="build-lm-str-size"),
    P(lambda c: build_lm(c.vocab, num_attention_heads=True), TypeError, "True", id="build-lm-bool"),
    P(lambda c: build_lm(c.vocab, preset="huge"), ValueError, "'huge'", id="build-lm-preset"),
    P(lambda c: build_lm(c.vocab, "tiny", hidden_size=30), ValueError, "hidden_size 30", id="build-lm-heads"),
    P(lambda c: build_lm(c.vocab, num_hidden_layer=2), TypeError, "num_hidden_layer", id="build-lm-typo"),
    P(lambda c: extend_lm(object(), c.vocab), TypeError, "object", id="extend-lm-object"),
    P(lambda c: extend_lm(c.model, "vocab"), TypeError, "str", id="extend-lm-vocab-str"),
    P(lambda c: extend_lm(c.model, c.vocab), ValueError, r"has \d+ embedding rows but .* 256 ids", id="extend-lm-rows"),
    P(lambda c: save_model(c.model, "vocab", c.root / "m2"), TypeError, "str", id="save-model-vocab-str"),
    P(
        lambda c: save_model(c.model, SharedVocabulary(ByteTokenizer()), c.root / "m2"),
        ValueError,
        "259 ids",
        id="save-model-other-vocab",
    ),
    P(lambda c: load_model(c.root / "nope"), FileNotFoundError, "nope", id="load-model-missing"),
    P(lambda c: load_model(c.paths["afile"]), NotADirectoryError, "afile", id="load-model-file"),
    P(lambda c: load_model(c.paths["adir"]), FileNotFoundError, "no config.json", id="load-model-empty"),
    P(lambda c: load_model(broken_model(c, hidden_size="abc")), TypeError, "'abc'", id="model-cfg-str"),
    P(lambda c: load_model(broken_model(c, intermediate_size=-5)), ValueError, "-5", id="model-cfg-negative"),
    P(
        lambda c: load_model(broken_model(c, num_hidden_layers=1)),
        ValueError,
        "unexpected.*layers.1",
        id="model-layers1",
    ),
    P(lambda c: load_model(broken_model(c, num_hidden_layers=3)), ValueError, "missing.*layers.2", id="model-layers3"),
    P(
        lambda c: load_model(broken_model(c, hidden_size=64, head_dim=16)),
        ValueError,
        r"shape mismatch.*\(\d+, 32\) \(config: \(\d+, 64\)\)",
        id="model-hidden",
    ),
    P(lambda c: load_model(model_with_weights(c, nan_weights)), ValueError, "NaN", id="model-nan"),
    P(lambda c: load_model(model_with_weights(c, truncate)), ValueError, "model.safetensors", id="model-truncated"),
    P(
        lambda c: load_model(model_with_weights(c, lambda p: p.write_bytes(b""))),
        ValueError,
        "model.safetensors",
        id="model-zero-bytes",
    ),
    P(
        lambda c: load_model(model_with_weights(c, lambda p: p.write_bytes(b"garbage" * 50))),
        ValueError,
        "model.safetensors",
        id="model-garbage",
    ),
    P(
        lambda c: load_model(
            model_with_weights(c, lambda p: (p.unlink(), torch.save({}, p.parent / "pytorch_model.bin")))
        ),
        ValueError,
        "pytorch_model.bin.*never unpickles",
        id="model-pickle-only",
    ),
    P(lambda c: load_model(model_with_weights(c, Path.unlink)), FileNotFoundError, "no weights", id="model-no-w"),
    P(
        lambda c: load_model(model_with_weights(c, lambda p: (p.parent / "config.json").write_text("{"))),
        ValueError,
        "config.json",
        id="model-cfg-json",
    ),
    P(
        lambda c: load_model(model_with_weights(c, lambda p: (p.parent / "config.json").write_text("[1]"))),
        ValueError,
        "list",
        id="model-cfg-list",
    ),
    P(
        lambda c: load_model(model_with_weights(c, lambda p: (p.parent / "mmgist_vocab.json").unlink())),
        FileNotFoundError,
        "mmgist_vocab.json",
        id="model-no-vocab",
    ),
    # generation
    P(lambda c: generate(c.model, c.vocab, "hi", max_new_tokens=0), ValueError, "got 0", id="gen-max-0"),
    P(lambda c: generate(c.model, c.vocab, "hi", max_new_tokens=1.5), TypeError, r"1\.5", id="gen-max-float"),
    P(lambda c: generate(c.model, c.vocab, "hi", max_new_tokens=True), TypeError, "True", id="gen-max-bool"),
    P(lambda c: generate(c.model, c.vocab, "hi", temperature=NAN), ValueError, "nan", id="gen-temperature-nan"),
    P(lambda c: generate(c.model, c.vocab, "hi", temperature=0), ValueError, "got 0", id="gen-temperature-0"),
    P(lambda c: generate(c.model, c.vocab, "hi", top_k=0), ValueError, "top_k .*got 0", id="gen-top-k"),
    P(lambda c: generate(c.model, c.vocab, "hi", modality="smell"), ValueError, "'smell'", id="gen-modality"),
    P(lambda c: generate(c.model, c.vocab, "hi", sizes={"image": (0, 2)}), ValueError, r"\(0, 2\)", id="gen-size-0"),
    P(lambda c: generate(c.model, c.vocab, "hi", sizes={"image": (True, 2)}), ValueError, "True", id="gen-size-bool"),
    P(lambda c: generate(c.model, c.vocab, "hi", sizes={"smell": 3}), ValueError, "smell", id="gen-size-modality"),
    P(lambda c: generate(c.model, "vocab", "hi"), TypeError, "str", id="gen-vocab-str"),
    P(lambda c: generate(object(), c.vocab, "hi"), TypeError, "object", id="gen-model-object"),
    P(lambda c: generate(c.model, c.vocab, 5), TypeError, "int", id="gen-prompt-int"),
    P(lambda c: generate(c.model, c.vocab, "hi", max_new_tokens=600), ValueError, "600", id="gen-context"),
    P(lambda c: generate(c.model, c.vocab, "hi", gist="g.safetensors"), TypeError, "str", id="gen-gist-str"),
    P(
        lambda c: generate(c.model, c.vocab, "hi", gist=c.g4, gist_cache=c.g8.cache(c.model)),
        ValueError,
        "another gist",
        id="gen-cache-other-k",
    ),
    P(
        lambda c: generate(c.model, c.vocab, "hi", gist=c.g4, gist_cache=c.g4b.cache(c.model)),
        ValueError,
        "another gist",
        id="gen-cache-same-k",
    ),
    P(
        lambda c: generate(c.model, c.vocab, "hi", gist=c.g4, gist_cache=__import__("transformers").DynamicCache()),
        ValueError,
        "DynamicCache",
        id="gen-cache-foreign",
    ),
    P(
        lambda c: generate(c.model, c.vocab, "hi", gist_cache=c.g4.cache(c.model)),
        ValueError,
        "gist_cache",
        id="cache-alone",
    ),
    P(
        lambda c: generate(c.model, c.vocab, "hi", gist=GistPrefix(**{**vars(c.g4), "bos_id": 999999})),
        ValueError,
        "999999",
        id="gen-gist-bos",
    ),
    P(lambda c: LayoutConstraint(c.vocab, 10, sizes={"video": (1, 2)}), ValueError, r"\(1, 2\)", id="constraint-size"),
    # gist configuration
    P(lambda c: GistConfig(num_gist_tokens=True), TypeError, "num_gist_tokens .*True", id="gc-k-bool"),
    P(lambda c: GistConfig(num_gist_tokens=0), ValueError, "num_gist_tokens .*got 0", id="gc-k-0"),
    P(lambda c: GistConfig(num_gist_tokens="4"), TypeError, "'4'", id="gc-k-str"),
    P(lambda c: GistConfig(steps=1.5), TypeError, r"steps .*1\.5", id="gc-steps-float"),
    P(lambda c: GistConfig(steps=0), ValueError, "steps .*got 0", id="gc-steps-0"),
    P(lambda c: GistConfig(lr=NAN), ValueError, "lr .*nan", id="gc-lr-nan"),
    P(lambda c: GistConfig(lr=INF), ValueError, "lr .*inf", id="gc-lr-inf"),
    P(lambda c: GistConfig(lr=-1.0), ValueError, r"lr .*-1\.0", id="gc-lr-negative"),
    P(lambda c: GistConfig(lr="0.1"), TypeError, "'0.1'", id="gc-lr-str"),
    P(lambda c: GistConfig(hidden_weight=-0.5), ValueError, r"hidden_weight .*-0\.5", id="gc-hidden-negative"),
    P(lambda c: GistConfig(hidden_weight=NAN), ValueError, "hidden_weight .*nan", id="gc-hidden-nan"),
    P(lambda c: GistConfig(hidden_weight=True), TypeError, "hidden_weight .*bool", id="gc-hidden-bool"),
    P(lambda c: GistConfig(temperature=NAN), ValueError, "temperature .*nan", id="gc-temperature-nan"),
    P(lambda c: GistConfig(temperature=0), ValueError, "temperature .*got 0", id="gc-temperature-0"),
    P(lambda c: GistConfig(heldout_fraction=1.0), ValueError, r"heldout_fraction .*1\.0", id="gc-heldout"),
    P(lambda c: GistConfig(validation_fraction=NAN), ValueError, "validation_fraction .*nan", id="gc-validation"),
    P(
        lambda c: GistConfig(heldout_fraction=0.5, validation_fraction=0.5),
        ValueError,
        r"0\.5",
        id="gc-fractions-sum",
    ),
    P(lambda c: GistConfig(target="kvv"), ValueError, "'kvv'", id="gc-target"),
    P(lambda c: GistConfig(init="zeros"), ValueError, "'zeros'", id="gc-init"),
    P(lambda c: GistConfig(init="text"), ValueError, "init_text", id="gc-init-text"),
    P(lambda c: GistConfig(init="text", init_text=5), TypeError, "int", id="gc-init-text-int"),
    P(lambda c: GistConfig(teacher_top_k=0), ValueError, "teacher_top_k .*got 0", id="gc-top-k-0"),
    P(lambda c: GistConfig(teacher_top_k=2.5), TypeError, r"2\.5", id="gc-top-k-float"),
    P(lambda c: GistConfig(self_study=-1), ValueError, "self_study .*-1", id="gc-self-study"),
    P(lambda c: GistConfig(seed=None), TypeError, "seed .*None", id="gc-seed-none"),
    P(lambda c: GistConfig(batch_size=False), TypeError, "batch_size .*False", id="gc-batch-bool"),
    P(lambda c: GistConfig(stopping="gap"), ValueError, "'gap'", id="gc-stopping"),
    P(lambda c: GistConfig(lr_schedule="linear"), ValueError, "lr_schedule .*'linear'", id="gc-lr-schedule"),
    P(lambda c: GistConfig(early_stopping=0.9), ValueError, r"0\.9", id="gc-early-stopping"),
    # distillation arguments (refused before any sampling)
    P(lambda c: distill_gist(c.model, c.vocab, torch.tensor([72.0, 105.0, 33.0])), TypeError, "float32", id="d-float"),
    P(lambda c: distill_gist(c.model, c.vocab, [72.5, 105.0, 33.0]), TypeError, r"72\.5", id="distill-float-list"),
    P(lambda c: distill_gist(c.model, c.vocab, [72, 10**6, 33]), ValueError, "1000000 at position 1", id="d-range"),
    P(
        lambda c: distill_gist(c.model, c.vocab, "Hello there", queries=[[72, 99999]]),
        ValueError,
        "99999 at position 1 of query 0",
        id="distill-query-range",
    ),
    P(
        lambda c: distill_gist(c.model, c.vocab, "Hello there", heldout_queries=[[-3]]),
        ValueError,
        "-3 at position 0 of held-out query 0",
        id="distill-heldout-range",
    ),
    P(lambda c: distill_gist(c.model, c.vocab, "Hello there", "fast"), TypeError, "str", id="distill-config-str"),
    P(lambda c: distill_gist(c.model, c.vocab, "Hello there", queries="q"), TypeError, "str", id="distill-queries-str"),
    P(lambda c: distill_gist(c.model, c.vocab, [c.vocab.bos_id]), ValueError, "empty prefix", id="distill-empty"),
    P(
        lambda c: distill_gist(c.model, c.vocab, "Hi", GistConfig(num_gist_tokens=8)),
        ValueError,
        "num_gist_tokens 8",
        id="distill-k-too-big",
    ),
    P(
        lambda c: distill_gist(c.model, c.vocab, "Hello there", control_prefix="Hello there"),
        ValueError,
        "control_prefix",
        id="distill-control-same",
    ),
    P(lambda c: distill_gist(c.model, "vocab", "Hello there"), TypeError, "str", id="distill-vocab-str"),
    # gist files and objects
    P(lambda c: GistPrefix.load(c.root / "nope.safetensors"), FileNotFoundError, "nope", id="gist-missing"),
    P(lambda c: c.g4.save(c.paths["adir"]), IsADirectoryError, "adir", id="gist-save-to-dir"),
    P(lambda c: c.g4.save(c.root / "afile" / "g.st"), NotADirectoryError, "afile", id="gist-save-under-file"),
    P(
        lambda c: generate(c.model, c.vocab, "", gist=c.g4, gist_cache=c.g8.cache(c.model)),
        ValueError,
        "another gist",
        id="gen-cache-other-no-query",
    ),
    P(lambda c: GistPrefix.load(c.paths["adir"]), IsADirectoryError, "adir", id="gist-dir"),
    P(lambda c: GistPrefix.load(c.paths["afile"]), ValueError, "afile", id="gist-garbage"),
    P(lambda c: GistPrefix.load(gist_file(c, bos_id=999999), model=c.model), ValueError, "999999", id="gist-bos"),
    P(lambda c: GistPrefix.load(gist_file(c, bos_id=-1)), ValueError, "bos_id .*-1", id="gist-bos-negative"),
    P(lambda c: GistPrefix.load(gist_file(c, k=True)), ValueError, "k .*True", id="gist-k-bool"),
    P(lambda c: GistPrefix.load(gist_file(c, k=5)), ValueError, "k=5", id="gist-k-shape"),
    P(lambda c: GistPrefix.load(gist_file(c, prefix_length="ten")), ValueError, "'ten'", id="gist-prefix-length"),
    P(lambda c: GistPrefix.load(gist_file(c, prefix_length=3)), ValueError, "prefix_length 3", id="gist-k-vs-prefix"),
    P(lambda c: GistPrefix.load(gist_file(c, model_fingerprint=5)), ValueError, "model_fingerprint .*5", id="gist-fp"),
    P(lambda c: GistPrefix.load(gist_file(c, format="other")), ValueError, "'other'", id="gist-format"),
    P(lambda c: GistPrefix.load(gist_file(c, format_version=99)), ValueError, "99", id="gist-version"),
    P(lambda c: GistPrefix.load(gist_file(c, report=[1])), ValueError, r"\[1\]", id="gist-report"),
    P(lambda c: GistPrefix.load(gist_file(c, tensor=torch.full((4, 32), NAN))), ValueError, "NaN", id="gist-nan"),
    P(lambda c: GistPrefix.load(c.paths["other"], model=c.model), ValueError, "000000000000", id="gist-other-model"),
    P(lambda c: GistPrefix(None, "a" * 64, "b" * 64, 10, 0), ValueError, "exactly one", id="gist-no-tensor"),
    P(lambda c: GistPrefix(torch.zeros(1, 2, 3), "a" * 64, "b" * 64, 10, 0), ValueError, r"\(1, 2, 3\)", id="gist-3d"),
    P(
        lambda c: GistPrefix(torch.full((2, 32), NAN), "a" * 64, "b" * 64, 10, 0).save(c.root / "n.safetensors"),
        ValueError,
        "non-finite",
        id="gist-save-nan",
    ),
    # scoring
    P(
        lambda c: score_options(c.model, c.vocab, " q", [[1.5, 2.0], " b"]),
        TypeError,
        r"1\.5 at position 0 of option 0",
        id="score-float-option",
    ),
    P(
        lambda c: score_options(c.model, c.vocab, " q", [" a", [72, 99999]]),
        ValueError,
        "99999 at position 1 of option 1",
        id="score-option-range",
    ),
    P(
        lambda c: score_options(c.model, c.vocab, [99999], [" a", " b"]),
        ValueError,
        "99999 at position 0 of the query",
        id="score-query-range",
    ),
    P(
        lambda c: score_options(c.model, c.vocab, " q", [" a", " b"], prefix=torch.tensor([1.0])),
        TypeError,
        "float32",
        id="score-prefix-float",
    ),
    P(
        lambda c: score_options(c.model, c.vocab, " q", [" a", " b"], prefix="x", gist=c.g4),
        ValueError,
        "not both",
        id="score-prefix-and-gist",
    ),
    P(lambda c: score_options(c.model, c.vocab, " q", []), ValueError, r"\[\]", id="score-no-options"),
    P(
        lambda c: prefix_head(c.model, c.vocab, [72, 10**6]),
        ValueError,
        "1000000 .* of the prefix",
        id="prefix-head-range",
    ),
    P(
        lambda c: score_options(
            c.model, c.vocab, " q", [" a", " b"], prefix="x", head=prefix_head(c.model, c.vocab, "x")
        ),
        ValueError,
        "one context",
        id="score-prefix-and-head",
    ),
    P(lambda c: Question(" q", [" a"]), ValueError, "got 1", id="question-one-option"),
    P(lambda c: Question(" q", [" a", " b"], answer=2), ValueError, "got 2", id="question-answer-range"),
    P(lambda c: Question(" q", [" a", " b"], answer=True), TypeError, "True", id="question-answer-bool"),
    P(lambda c: Question(" q", "ab"), TypeError, "str", id="question-options-str"),
    P(lambda c: option_kl([], []), ValueError, "at least one", id="option-kl-empty"),
    P(lambda c: accuracy(c.model, c.vocab, [Question(" q", [" a", " b"])]), ValueError, "known answer", id="acc-none"),
    # the processor
    P(lambda c: MultimodalProcessor("vocab"), TypeError, "str", id="proc-vocab-str"),
    P(
        lambda c: MultimodalProcessor(c.vocab)(text="<image>", images=["cat.png"]),
        TypeError,
        "'cat.png'",
        id="proc-path",
    ),
    P(
        lambda c: MultimodalProcessor(c.vocab)(text="<image>", images=[Path("c.png")]),
        TypeError,
        "c.png",
        id="proc-Path",
    ),
    P(lambda c: MultimodalProcessor(c.vocab)(text="<image>", images="cat.png"), TypeError, "'cat.png'", id="proc-str"),
    P(
        lambda c: MultimodalProcessor(c.vocab)(text="<image>", images=[np.zeros((4, 4, 3))]),
        TypeError,
        r"images\[0\].*ndarray",
        id="proc-numpy",
    ),
    P(
        lambda c: MultimodalProcessor(c.vocab)(text="<audio>", audio=[torch.zeros(10)]),
        ValueError,
        r"audio\[0\].*\(10,\)",
        id="proc-audio-tensor",
    ),
    P(
        lambda c: MultimodalProcessor(c.vocab)(text="<image><image>", images=[torch.rand(3, 8, 8)]),
        ValueError,
        "2 <image>",
        id="proc-count",
    ),
    P(lambda c: MultimodalProcessor(c.vocab)(text=5), TypeError, "5", id="proc-text-int"),
    P(lambda c: MultimodalProcessor(c.vocab)(text=[]), TypeError, r"\[\]", id="proc-text-empty"),
    P(lambda c: MultimodalProcessor(c.vocab, padding_side="middle"), ValueError, "'middle'", id="proc-side"),
    P(lambda c: MultimodalProcessor(c.vocab)(text="hi", padding_side="up"), ValueError, "'up'", id="proc-side-call"),
    P(lambda c: MultimodalProcessor(c.vocab, max_length=0), ValueError, "got 0", id="proc-max-length-0"),
    P(lambda c: MultimodalProcessor(c.vocab)(text="hi", return_tensors="tf"), ValueError, "'tf'", id="proc-tensors"),
    P(lambda c: MultimodalProcessor(c.vocab, max_length=3)(text="hello"), ValueError, "max_length 3", id="proc-long"),
    P(lambda c: MultimodalProcessor(c.vocab)(text=["a", "bb"], padding=False), ValueError, r"\[2, 3\]", id="proc-pad"),
    # training
    P(lambda c: TrainConfig(steps=1.5), TypeError, r"1\.5", id="train-steps-float"),
    P(lambda c: TrainConfig(lr=NAN), ValueError, "nan", id="train-lr-nan"),
    P(lambda c: TrainConfig(steps=10, warmup_steps=20), ValueError, "got 20", id="train-warmup"),
    P(lambda c: TrainConfig(grad_clip=-1.0), ValueError, r"-1\.0", id="train-grad-clip"),
    P(lambda c: TrainConfig(seed=True), TypeError, "True", id="train-seed-bool"),
]


@pytest.mark.parametrize("call, error, names", API_CASES)
def test_the_api_refuses_bad_input_by_name(c, call, error, names):
    with pytest.raises(Exception) as info:
        call(c)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(names, str(info.value)), f"{names!r} not in {str(info.value)!r}"


# --- the CLI ---------------------------------------------------------------------------------
SYS = SystemExit  # argparse refused the arguments before any work
CLI_CASES = [
    P(["tokenizers", "--bogus"], SYS, "--bogus", id="tokenizers-unknown-flag"),
    P(["nosuchcommand"], SYS, "'nosuchcommand'", id="unknown-command"),
    P(["vocab", "--image", "no-such-tok", "--out", "{root}/v1"], ValueError, "'no-such-tok'", id="vocab-tokenizer"),
    P(["vocab", "--out", "{afile}"], NotADirectoryError, "afile", id="vocab-out-file"),
    P(["vocab", "--out", "{afile}/sub"], NotADirectoryError, "afile", id="vocab-out-under-file"),
    P(["vocab", "--out", "/proc/sys/mmgist-v"], PermissionError, "/proc/sys", id="vocab-out-unwritable"),
    P(["encode", "--vocab", "{vocab}", "{root}/nope.json"], FileNotFoundError, "nope.json", id="encode-missing"),
    P(["encode", "--vocab", "{vocab}", "{adir}"], IsADirectoryError, "adir", id="encode-prompt-dir"),
    P(["encode", "--vocab", "{vocab}", "{bad}"], ValueError, r"bad\.json", id="encode-bad-json"),
    P(["encode", "--vocab", "{vocab}", "{notutf8}"], ValueError, r"notutf8\.json", id="encode-not-utf8"),
    P(["encode", "--vocab", "{vocab}", "{item}"], ValueError, "item 0 .* is 5", id="encode-bad-item"),
    P(["encode", "--vocab", "{vocab}", "{imgdir}"], IsADirectoryError, "adir", id="encode-image-is-dir"),
    P(["encode", "--vocab", "{vocab}", "{dict}"], ValueError, "JSON list", id="encode-not-list"),
    P(["encode", "--vocab", "{root}/nope", "{p}"], FileNotFoundError, "nope", id="encode-vocab-missing"),
    P(["encode", "--vocab", "{afile}", "{p}"], NotADirectoryError, "afile", id="encode-vocab-file"),
    P(
        ["encode", "--vocab", "{model}/model.safetensors", "{p}"],
        NotADirectoryError,
        "model",
        id="encode-vocab-weights",
    ),
    P(["decode", "--vocab", "{vocab}", "{floats}"], TypeError, r"72\.9 at position 0", id="decode-floats"),
    P(["decode", "--vocab", "{vocab}", "{strings}"], TypeError, "'72' at position 0", id="decode-strings"),
    P(["decode", "--vocab", "{vocab}", "{big}"], ValueError, "1000000 at position 1", id="decode-range"),
    P(["decode", "--vocab", "{vocab}", "{dict}"], ValueError, "dict", id="decode-not-list"),
    P(["decode", "--vocab", "{vocab}", "{bad}"], ValueError, r"bad\.json", id="decode-bad-json"),
    P(["decode", "--vocab", "{vocab}", "{adir}"], IsADirectoryError, "adir", id="decode-ids-dir"),
    P(
        ["decode", "--vocab", "{vocab}", "{p}", "--media-dir", "{afile}"],
        NotADirectoryError,
        "afile",
        id="decode-media",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--batch-size", "0"],
        SYS,
        "'0'",
        id="tt-b0",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--crop-size", "0"],
        SYS,
        "'0'",
        id="tt-c0",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--steps", "-1"],
        SYS,
        "'-1'",
        id="tt-steps",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--lr", "nan"],
        SYS,
        "'nan'",
        id="tt-lr-nan",
    ),
    P(["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--lr", "0"], SYS, "'0'", id="tt-lr-0"),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--codebook-size", "x"],
        SYS,
        "'x'",
        id="tt-cb",
    ),
    P(["train-tokenizer", "text", "--data", "{adir}", "--out", "{root}/t"], SYS, "'text'", id="tt-modality"),
    P(
        ["train-tokenizer", "audio", "--data", "{adir}", "--out", "{root}/t", "--quantizer", "fsq"],
        ValueError,
        "'fsq' is not an audio quantizer",
        id="tt-audio-quantizer",
    ),
    P(
        ["train-tokenizer", "audio", "--data", "{adir}", "--out", "{root}/t", "--kind-weights", "speech"],
        ValueError,
        "--kind-weights must look like",
        id="tt-audio-weights",
    ),
    P(
        ["train-tokenizer", "audio", "--data", "{adir}", "--out", "{root}/t"],
        FileNotFoundError,
        "no audio files",
        id="tt-audio-empty",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{root}/t", "--channels", "a,b"],
        ValueError,
        "'a,b'",
        id="tt-channels",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{root}/nope", "--out", "{root}/t"],
        FileNotFoundError,
        "nope",
        id="tt-data",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{afile}", "--out", "{root}/t"],
        NotADirectoryError,
        "afile",
        id="tt-d-file",
    ),
    P(
        ["train-tokenizer", "image", "--data", "{adir}", "--out", "{afile}"],
        NotADirectoryError,
        "afile",
        id="tt-out-file",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--model", "{model}", "--out", "{root}/l"],
        ValueError,
        "exactly one",
        id="lm-both",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--preset", "huge", "--out", "{root}/l"],
        ValueError,
        "'huge'",
        id="lm-preset",
    ),
    P(
        ["train-lm", "--manifest", "{root}/no.jsonl", "--vocab", "{vocab}", "--out", "{root}/l"],
        FileNotFoundError,
        "no.jsonl",
        id="lm-manifest",
    ),
    P(
        ["train-lm", "--manifest", "{adir}", "--vocab", "{vocab}", "--out", "{root}/l"],
        IsADirectoryError,
        "adir",
        id="lm-manifest-dir",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--out", "{afile}"],
        NotADirectoryError,
        "afile",
        id="lm-out-file",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--out", "{root}/l", "--seed", "-1"],
        SYS,
        "'-1'",
        id="lm-seed",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--out", "{root}/l", "--steps", "1.5"],
        SYS,
        "'1.5'",
        id="lm-steps",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--vocab", "{vocab}", "--out", "{root}/l", "--batch-size", "0"],
        SYS,
        "'0'",
        id="lm-batch",
    ),
    P(
        ["train-lm", "--manifest", "{m}", "--model", "{garbage_model}", "--out", "{root}/l"],
        ValueError,
        "model.safetensors",
        id="lm-corrupt-model",
    ),
    P(["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--k", "0"], SYS, "'0'", id="distill-k0"),
    P(
        ["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--k", "True"],
        SYS,
        "'True'",
        id="distill-k-bool",
    ),
    P(["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--lr", "inf"], SYS, "'inf'", id="distill-lr-inf"),
    P(["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--self-study", "-2"], SYS, "'-2'", id="d-study"),
    P(["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--target", "x"], SYS, "'x'", id="distill-target"),
    P(
        ["distill", "{p}", "--model", "{model}", "--out", "{root}/g1", "--hidden-weight", "-1"],
        ValueError,
        r"hidden_weight .*-1\.0",
        id="distill-hidden",
    ),
    P(["distill", "{p}", "--model", "{model}", "--out", "{adir}"], IsADirectoryError, "adir", id="distill-out-dir"),
    P(["distill", "{p}", "--model", "{model}", "--out", "{afile}/g"], NotADirectoryError, "afile", id="d-out-under"),
    P(["distill", "{p}", "--model", "{model}", "--out", "/proc/sys/g.st"], PermissionError, "/proc/sys", id="d-out-ro"),
    P(["distill", "{p}", "--model", "{model}", "--out", "{g}"], FileExistsError, "--force", id="distill-out-exists"),
    P(
        ["distill", "{root}/nope.json", "--model", "{model}", "--out", "{root}/g1"],
        FileNotFoundError,
        "nope",
        id="distill-prefix-missing",
    ),
    P(["distill", "{p}", "--model", "{root}/nope", "--out", "{root}/g1"], FileNotFoundError, "nope", id="d-model"),
    P(["distill", "{item}", "--model", "{model}", "--out", "{root}/g1"], ValueError, "item 0", id="distill-bad-item"),
    P(["generate", "hi", "--model", "{model}", "--max-new-tokens", "0"], SYS, "'0'", id="generate-max-0"),
    P(["generate", "hi", "--model", "{model}", "--gist", "{root}/nope.st"], FileNotFoundError, "nope", id="gen-gist"),
    P(["generate", "hi", "--model", "{model}", "--gist", "{adir}"], IsADirectoryError, "adir", id="gen-gist-dir"),
    P(["generate", "hi", "--model", "{afile}"], NotADirectoryError, "afile", id="generate-model-file"),
    P(["generate", "hi", "--model", "{garbage_model}"], ValueError, "model.safetensors", id="generate-corrupt"),
    P(["generate", "hi", "--model", "{model}", "--gist", "{other}"], ValueError, "000000000000", id="gen-gist-model"),
]


@pytest.fixture(scope="module")
def cli_paths(c):
    garbage = copy(c, "model")
    (garbage / "model.safetensors").write_bytes(b"garbage" * 50)
    return {**c.paths, "garbage_model": str(garbage)}


@pytest.mark.parametrize("argv, error, names", CLI_CASES)
def test_the_cli_refuses_bad_input_in_one_line(cli_paths, capsys, argv, error, names):
    argv = [a.format(**cli_paths) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
        assert error is SystemExit, f"argparse refused {argv}: {capsys.readouterr().err}"
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmgist"), lines
    assert re.search(names, lines[0]), f"{names!r} not in {lines[0]!r}"
    if error is not SystemExit:
        args = build_parser().parse_args(argv)
        with pytest.raises(Exception) as info:
            args.func(args)
        assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"


def test_debug_shows_the_traceback(cli_paths, capsys):
    assert main(["--debug", "decode", "--vocab", cli_paths["vocab"], cli_paths["floats"]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "72.9" in err


def test_an_unexpected_error_is_one_line_with_its_type(monkeypatch, capsys):
    import mmgist.cli

    def boom(args):
        raise KeyError("internal")

    monkeypatch.setattr(mmgist.cli, "cmd_tokenizers", boom)
    assert main(["tokenizers"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "KeyError" in line and "--debug" in line


def test_the_corpus_is_large():
    assert len(API_CASES) + len(CLI_CASES) >= 150


# --- what is accepted, and must stay so --------------------------------------------------------
def test_float_images_are_read_in_the_range_that_holds_them(c):
    for value, level in ((0.5, 128), (128.0, 128), (30000.0, 117)):
        assert int(np.asarray(load_image(float_tiff(c, value)))[0, 0, 0]) == level


def test_ids_from_numpy_and_integer_tensors_still_decode(c):
    ids = c.vocab.encode("Hi")
    for form in (ids, torch.tensor(ids), torch.tensor(ids, dtype=torch.int32), np.array(ids)):
        assert c.vocab.decode(form).text() == "Hi"


def test_a_uint8_tensor_is_saved_as_it_is(c):
    save_image(torch.full((3, 2, 2), 200, dtype=torch.uint8), c.root / "u8.png")
    assert np.asarray(load_image(c.root / "u8.png"))[0, 0, 0] == 200


def test_a_gist_cache_from_the_same_gist_is_used(c):
    out = generate(c.model, c.vocab, "hi", max_new_tokens=2, gist=c.g4, gist_cache=c.g4.cache(c.model))
    assert math.isfinite(len(out))
