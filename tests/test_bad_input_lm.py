"""Bad input, the language model: building and loading it, generation, scoring answer options, training.

Each case names the call, the exact exception type expected, and a regex that the message must match: the offending
value (or its position, shape or path), so the user sees what was wrong (tests/support/bad_input.py builds what
they need, once per module).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support.bad_input import NAN, P, broken_model, model_with_weights, nan_weights, refused_by_name, truncate

from mmgist import (
    ByteTokenizer,
    GistPrefix,
    Question,
    SharedVocabulary,
    build_lm,
    extend_lm,
    generate,
    load_model,
    save_model,
    score_options,
)
from mmgist.lm.generate import LayoutConstraint
from mmgist.lm.scoring import accuracy, option_kl, prefix_head
from mmgist.train import TrainConfig

CASES = [
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
    # training
    P(lambda c: TrainConfig(steps=1.5), TypeError, r"1\.5", id="train-steps-float"),
    P(lambda c: TrainConfig(lr=NAN), ValueError, "nan", id="train-lr-nan"),
    P(lambda c: TrainConfig(steps=10, warmup_steps=20), ValueError, "got 20", id="train-warmup"),
    P(lambda c: TrainConfig(grad_clip=-1.0), ValueError, r"-1\.0", id="train-grad-clip"),
    P(lambda c: TrainConfig(seed=True), TypeError, "True", id="train-seed-bool"),
]


@pytest.mark.parametrize("call, error, names", CASES)
def test_the_api_refuses_bad_input_by_name(corpus, call, error, names):
    refused_by_name(corpus, call, error, names)
