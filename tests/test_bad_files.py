"""Bad files and objects on the surfaces that landed after the first bad-input pass: the transformers
wrappers' weights, gist files (whatever `save` writes, `load` reads back), model folders whose sizes
disagree, prefixes that do not parse and chat turns given the wrong first argument. Tiny parts only."""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from support.hf_tiny import save_tiny

from mmgist import GistConfig, GistPrefix, distill_gist, load_tokenizer, save_model
from mmgist.cli import main
from mmgist.gist import model_fingerprint
from mmgist.lm.chat import system_turn, user_turn

WRAPPED = [("hf-audio", "dac"), ("hf-image", "emu3")]  # a tiny model of each wrapper


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_lm):
    """A tiny model and vocabulary, saved; a valid embeddings gist of it and its file."""
    model, vocab = tiny_lm
    root = tmp_path_factory.mktemp("bad-files")
    save_model(model, vocab, root / "model")
    gist = GistPrefix(torch.randn(4, 32), model_fingerprint(model), vocab.fingerprint(), 10, vocab.bos_id)
    gist.save(root / "g.safetensors")
    return SimpleNamespace(root=root, vocab=vocab, model=model, gist=gist)


def with_tensor(gist_file, to, tensor):
    """A copy of `gist_file` (its header kept) holding `tensor` instead of its embeddings."""
    with safe_open(str(gist_file), framework="pt") as f:
        meta = f.metadata()
    save_file({"embeddings": tensor}, to, metadata=meta)
    return to


def broken_copy(folder, to):
    shutil.copytree(folder, to)
    return to


# --- the wrappers' weights --------------------------------------------------------------------
@pytest.mark.parametrize("name, kind", WRAPPED)
def test_a_wrapped_model_with_nan_weights_is_refused_naming_folder_and_tensor(tmp_path, name, kind):
    folder = broken_copy(save_tiny(kind, tmp_path / "models"), tmp_path / "nan")
    (weights,) = folder.glob("*.safetensors")
    nan = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in load_file(weights).items()}
    save_file(nan, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"weights in '.*nan'.* holds \d+ NaN or inf value"):
        load_tokenizer(name, path=str(folder))


@pytest.mark.parametrize("name, kind", WRAPPED)
def test_a_wrapped_model_with_a_truncated_weights_file_names_the_file(tmp_path, name, kind):
    folder = broken_copy(save_tiny(kind, tmp_path / "models"), tmp_path / "cut")
    (weights,) = folder.glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"weights file '.*cut/{weights.name}' is not a valid safetensors file"):
        load_tokenizer(name, path=str(folder))


# --- gist files -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.bool])
def test_a_gist_of_a_non_float_tensor_is_refused_built_or_loaded(parts, tmp_path, dtype):
    with pytest.raises(ValueError, match=rf"are {dtype}; expected one of \['torch.float16'"):
        GistPrefix(torch.zeros(4, 32, dtype=dtype), parts.gist.model_fingerprint, parts.gist.vocab_fingerprint, 10, 0)
    if dtype is torch.complex64:
        return  # safetensors has no complex type to write a file with
    with_tensor(parts.root / "g.safetensors", tmp_path / "int.safetensors", torch.zeros(4, 32, dtype=dtype))
    with pytest.raises(ValueError, match=rf"int\.safetensors': the gist's embeddings are {dtype}"):
        GistPrefix.load(tmp_path / "int.safetensors")


BROKEN = {
    "prefix_length": 1,
    "bos_id": -1,
    "model_fingerprint": "abc",
    "vocab_fingerprint": "Z" * 64,
    "report": [1],
}


@pytest.mark.parametrize("field, value", [*BROKEN.items(), ("k_too_large", None), ("report_tensor", None)])
def test_save_refuses_what_load_would_refuse_and_writes_nothing(parts, tmp_path, field, value):
    bad = GistPrefix(
        parts.gist.embeddings, parts.gist.model_fingerprint, parts.gist.vocab_fingerprint, 10, parts.gist.bos_id
    )
    if field == "k_too_large":
        bad.prefix_length = 4  # a k of 4 replaces nothing
    elif field == "report_tensor":
        bad.report = {"loss": torch.tensor(1.0)}  # not JSON
    else:
        setattr(bad, field, value)
    with pytest.raises(ValueError, match=r"refusing to save to '.*bad\.safetensors' a gist"):
        bad.save(tmp_path / "bad.safetensors")
    assert not list(tmp_path.iterdir())  # no file, no temporary file


def test_every_gist_save_loads_back_and_leaves_no_temporary_file(parts, tmp_path):
    for k in range(3):
        gist = dataclasses.replace(parts.gist, report={"try": k})
        gist.save(tmp_path / "g.safetensors")
        loaded = GistPrefix.load(tmp_path / "g.safetensors", parts.model, parts.vocab)
        assert loaded.identity() == gist.identity() and loaded.report == {"try": k}
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]


def test_the_cli_names_a_gist_file_of_the_wrong_type_in_one_line(parts, tmp_path, capsys):
    with_tensor(parts.root / "g.safetensors", tmp_path / "int.safetensors", torch.zeros(4, 32, dtype=torch.int64))
    assert (
        main(["generate", "hi", "--model", str(parts.root / "model"), "--gist", str(tmp_path / "int.safetensors")]) == 2
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "int.safetensors" in line and "torch.int64" in line


# --- model folders, prefixes, chat turns ------------------------------------------------------
def test_a_model_folder_whose_vocab_size_disagrees_names_both_sizes(parts, tmp_path, capsys):
    folder = broken_copy(parts.root / "model", tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": len(parts.vocab) - 5}))
    assert main(["generate", "hi", "--model", str(folder)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    n = len(parts.vocab)
    assert f"vocab_size {n - 5} disagrees with the folder's vocabulary of {n} ids" in line
    assert "config.json" in line


@pytest.mark.parametrize("marker", ["<|/image|>", "<|image|>"])
def test_a_prefix_with_a_stray_marker_is_not_distilled(parts, marker):
    ids = [
        *parts.vocab.encode("some text here"),
        parts.vocab.layout.special(marker),
        *parts.vocab.encode("and more text"),
    ]
    with pytest.raises(ValueError, match=r"the prefix's ids do not parse as a prompt: .*position"):
        distill_gist(parts.model, parts.vocab, ids, GistConfig(num_gist_tokens=2, steps=1))


@pytest.mark.parametrize("turn", [system_turn, user_turn])
def test_chat_turns_given_a_string_for_the_vocabulary_say_so(turn):
    with pytest.raises(TypeError, match=r"needs the SharedVocabulary .* got 'You are a pirate.' \(str\)"):
        turn("You are a pirate.", "hi")
