"""GistConfig: how a prefix is distilled into gist tokens (after peft's PromptTuningConfig).

GistConfig(num_gist_tokens=4, init="prefix_mean", steps=300)
"""

from __future__ import annotations

import math
from dataclasses import InitVar, dataclass
from typing import TYPE_CHECKING

from ..lm.model import context_length
from ..validate import finite, fraction, non_negative_int, one_of, positive_int

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# KV only: the prefix's own keys and values (gist/kv_init.py)
PREFIX_INITS = ("prefix_first", "prefix_even", "prefix_chunks", "prefix_salient", "prefix_attended")
INITS = ("prefix_mean", "last_tokens", "text", "vocab_sample", "random", *PREFIX_INITS)
TARGETS = ("embeddings", "kv")
STOPPINGS = ("fixed", "validation")
SCHEDULES = ("constant", "cosine")


@dataclass
class GistConfig:
    # Why each default: the measured figures are in docs/gists.md ("Why the defaults"), each with its command.
    num_gist_tokens: int = 4  # k: positions that replace the prefix (1 to 16 on the demo model; more for long text)
    target: str = "kv"  # kv: every layer's keys and values at the k positions (prefix tuning); embeddings: k input
    # embeddings (prompt tuning, the seed's method). KV is ahead at every k measured
    init: str = "last_tokens"  # the start (INITS): last_tokens: the embeddings of the prefix's last k tokens (the
    # instruction); prefix_mean: the mean prefix embedding plus noise; text: init_text's embeddings; vocab_sample:
    # k random ids' embeddings; random: normal noise; PREFIX_INITS (KV only): the prefix's own keys and values at
    # chosen positions (gist/kv_init.py)
    init_text: str | None = None  # for init="text"
    steps: int = 200  # optimizer steps at most
    lr: float = 3e-2  # Adam on the trained tensor only
    lr_schedule: str = "constant"  # constant: lr at every step; cosine: from lr towards 0 (`learning_rate`)
    batch_size: int = 8  # continuations per step
    num_continuations: int = 48  # teacher samples drawn after the prefix (per query, when queries are given)
    continuation_length: int = 24  # tokens per sampled continuation
    self_study: int = 64  # teacher samples straight after the prefix (the model's own questions and answers)
    self_study_length: int = 96  # tokens per self-study sample at most (the whole sample is in the loss)
    heldout_fraction: float = 0.25  # share of the served continuation rows kept for the report, never trained on
    hidden_weight: float = 1.0  # weight of the term pulling the student's hidden states (every layer, every row
    # position) toward the full prefix's; 0 leaves the KL alone (the seed's objective; best for embeddings)
    divergence_weight: float = 0.0  # each trained position's KL weighs 1 + this x its KL(full || no prefix) / the
    # mean (the tokens the prompt decides count more); 0, as it lowered facts and G where measured (docs/gists.md)
    temperature: float = 1.0  # teacher sampling temperature
    teacher_top_k: int | None = 32  # teacher log-probs kept per position, plus the rest mass; None keeps all V
    # (dense: small vocabularies, and the reference in tests)
    stopping: str = "fixed"  # fixed: the gist after all `steps`; validation: the evaluated step with the lowest KL
    # on the validation rows
    validation_fraction: float = 0.125  # with stopping="validation": share of the served rows that choose the step
    eval_every: int = 25  # steps between evaluations (history, validation)
    seed: int = 0
    early_stopping: InitVar[float | None] = None  # replaced by `stopping`; only None is accepted (old callers)

    def __post_init__(self, early_stopping: float | None) -> None:
        if early_stopping is not None:
            raise ValueError(
                f"GistConfig.early_stopping={early_stopping!r} (stop at a training gap) is gone: it stopped with an "
                "under-fit gist; use stopping='validation' (the best step on validation rows) or 'fixed'"
            )
        positive_int(self.num_gist_tokens, "GistConfig.num_gist_tokens")
        one_of(self.target, "GistConfig.target", TARGETS)
        one_of(self.init, "GistConfig.init", INITS)
        if self.init_text is not None and not isinstance(self.init_text, str):
            raise TypeError(f"GistConfig.init_text must be a str or None, got {type(self.init_text).__name__}")
        if self.init in PREFIX_INITS and self.target != "kv":
            raise ValueError(f"GistConfig.init={self.init!r} starts from the prefix's keys and values: it needs "
                             f"target='kv', got target={self.target!r}")  # fmt: skip
        if self.init == "text" and not self.init_text:
            raise ValueError("GistConfig.init='text' needs init_text, got none")
        non_negative_int(self.self_study, "GistConfig.self_study")
        non_negative_int(self.seed, "GistConfig.seed")
        for name in ("steps", "batch_size", "num_continuations", "continuation_length", "eval_every"):
            positive_int(getattr(self, name), f"GistConfig.{name}")
        positive_int(self.self_study_length, "GistConfig.self_study_length")
        fraction(self.heldout_fraction, "GistConfig.heldout_fraction")
        finite(self.lr, "GistConfig.lr", positive=True)
        finite(self.hidden_weight, "GistConfig.hidden_weight")
        if self.hidden_weight < 0:
            raise ValueError(
                f"GistConfig.hidden_weight must be >= 0 (0 turns the hidden-state term off), got {self.hidden_weight}"
            )
        finite(self.divergence_weight, "GistConfig.divergence_weight")
        if self.divergence_weight < 0:
            raise ValueError(
                f"GistConfig.divergence_weight must be >= 0 (0 weighs every position alike), "
                f"got {self.divergence_weight}"
            )
        finite(self.temperature, "GistConfig.temperature", positive=True)
        if self.teacher_top_k is not None:
            positive_int(self.teacher_top_k, "GistConfig.teacher_top_k (or None)")
        one_of(self.lr_schedule, "GistConfig.lr_schedule", SCHEDULES)
        one_of(self.stopping, "GistConfig.stopping", STOPPINGS)
        fraction(self.validation_fraction, "GistConfig.validation_fraction")
        if self.heldout_fraction + self.validation_fraction >= 1:
            raise ValueError(
                f"GistConfig.validation_fraction must be in (0, 1) and leave rows to train on next to "
                f"heldout_fraction {self.heldout_fraction}, got {self.validation_fraction}"
            )


def learning_rate(config: GistConfig, step: int) -> float:
    """The lr of optimizer step `step` (0 .. config.steps - 1): config.lr, or with lr_schedule="cosine"
    lr * (1 + cos(pi * step / steps)) / 2, from lr at step 0 to nearly 0 at the last."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * (1 + math.cos(math.pi * step / config.steps)) / 2


TOKENS_PER_GIST = 16  # the default k: one gist position per this many prefix tokens (`gist_tokens_for`)


def gist_tokens_for(
    prefix_tokens: int, per: int = TOKENS_PER_GIST, minimum: int = 4, maximum: int = 64, model: PreTrainedModel = None
) -> int:
    """k for a prefix of `prefix_tokens` tokens after <|bos|>: ceil(prefix_tokens / per), within [minimum,
    maximum] and below the prefix's own length (a gist as long as the prefix compresses nothing). With
    `model`, a k whose positions do not fit its context is refused."""
    positive_int(per, "per")
    positive_int(minimum, "minimum")
    positive_int(maximum, "maximum")
    non_negative_int(prefix_tokens, "prefix_tokens")
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} must be <= maximum {maximum}")
    if prefix_tokens < 2:
        raise ValueError(f"a prefix of {prefix_tokens} token after <|bos|> leaves nothing to compress (k < prefix)")
    k = min(max(math.ceil(prefix_tokens / per), minimum), maximum, prefix_tokens - 1)
    if model is not None and k + 1 >= context_length(model):
        raise ValueError(
            f"k = {k} gist positions do not fit this model's context of {context_length(model)} (with <|bos|> "
            "and at least one query token); lower maximum or per"
        )
    return k
