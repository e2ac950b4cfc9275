"""Bad input, ids and prompts into the vocabulary: ids, prompts, their segments, text tokenizers and the processor.

Each case names the call, the exact exception type expected, and a regex that the message must match: the offending
value (or its position, shape or path), so the user sees what was wrong (tests/support/bad_input.py builds what
they need, once per module).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support.bad_input import NAN, P, copy, edit_json, refused_by_name

from mmgist import (
    Audio,
    ByteTokenizer,
    IdLayout,
    Image,
    MultimodalProcessor,
    Prompt,
    SharedVocabulary,
    Text,
    Video,
)
from mmgist.tokenizers import HFTextTokenizer
from mmgist.tokenizers.text import ByteConfig

CASES = [
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
]


@pytest.mark.parametrize("call, error, names", CASES)
def test_the_api_refuses_bad_input_by_name(corpus, call, error, names):
    refused_by_name(corpus, call, error, names)
