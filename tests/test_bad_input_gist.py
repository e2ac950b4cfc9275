"""Bad input, gists: their configuration, distillation arguments (refused before any sampling), gist files and objects.

Each case names the call, the exact exception type expected, and a regex that the message must match: the offending
value (or its position, shape or path), so the user sees what was wrong (tests/support/bad_input.py builds what
they need, once per module).
"""

from __future__ import annotations

import pytest
import torch
from support.bad_input import INF, NAN, P, gist_file, refused_by_name

from mmgist import (
    GistConfig,
    GistPrefix,
    distill_gist,
    generate,
)

CASES = [
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
]


@pytest.mark.parametrize("call, error, names", CASES)
def test_the_api_refuses_bad_input_by_name(corpus, call, error, names):
    refused_by_name(corpus, call, error, names)
