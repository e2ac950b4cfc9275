"""Bad input to the command line: every subcommand fed what a new user might pass. The error is one line on
stderr with exit code 2 (argparse's own refusals are SystemExit), naming what was wrong; then what is
accepted, and must stay so.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from support.bad_input import P, copy, float_tiff

from mmgist import (
    generate,
)
from mmgist.cli import build_parser, main
from mmgist.io import load_image, save_image

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
def cli_paths(corpus):
    c = corpus
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

    commands = [dataclasses.replace(c, run=boom) if c.name == "tokenizers" else c for c in mmgist.cli.COMMANDS]
    monkeypatch.setattr(mmgist.cli, "COMMANDS", commands)
    assert main(["tokenizers"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "KeyError" in line and "--debug" in line


def test_the_corpus_is_large():
    import test_bad_input_gist
    import test_bad_input_lm
    import test_bad_input_media
    import test_bad_input_prompts

    api = (test_bad_input_gist, test_bad_input_lm, test_bad_input_media, test_bad_input_prompts)
    assert sum(len(m.CASES) for m in api) + len(CLI_CASES) >= 150


# --- what is accepted, and must stay so --------------------------------------------------------
def test_float_images_are_read_in_the_range_that_holds_them(corpus):
    c = corpus
    for value, level in ((0.5, 128), (128.0, 128), (30000.0, 117)):
        assert int(np.asarray(load_image(float_tiff(c, value)))[0, 0, 0]) == level


def test_ids_from_numpy_and_integer_tensors_still_decode(corpus):
    c = corpus
    ids = c.vocab.encode("Hi")
    for form in (ids, torch.tensor(ids), torch.tensor(ids, dtype=torch.int32), np.array(ids)):
        assert c.vocab.decode(form).text() == "Hi"


def test_a_uint8_tensor_is_saved_as_it_is(corpus):
    c = corpus
    save_image(torch.full((3, 2, 2), 200, dtype=torch.uint8), c.root / "u8.png")
    assert np.asarray(load_image(c.root / "u8.png"))[0, 0, 0] == 200


def test_a_gist_cache_from_the_same_gist_is_used(corpus):
    c = corpus
    out = generate(c.model, c.vocab, "hi", max_new_tokens=2, gist=c.g4, gist_cache=c.g4.cache(c.model))
    assert math.isfinite(len(out))
