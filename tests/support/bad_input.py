"""The bad-input corpus's shared parts: one set of tiny objects and files built once per module (`corpus`), the
helpers that make broken copies of them, and the check every API case runs (`refused_by_name`)."""

from __future__ import annotations

import itertools
import json
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
    GistPrefix,
    build_lm,
    create_tokenizer,
    save_model,
)
from mmgist.gist import model_fingerprint
from mmgist.io import load_image

NAN, INF = float("nan"), float("inf")
P = pytest.param


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
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


def refused_by_name(c, call, error, names) -> None:
    """`call(c)` raises exactly `error`, and its message matches `names` (the offending value, position or path)."""
    with pytest.raises(Exception) as info:
        call(c)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(names, str(info.value)), f"{names!r} not in {str(info.value)!r}"


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
