"""Multiple-choice scoring: by-hand agreement, prefix vs gist paths, and the task section of a gist report."""

import pytest
import torch
from conftest import EMBEDDINGS_ONLY

from mmgist import Prompt
from mmgist.gist import GistConfig, GistPrefix, distill_gist, model_fingerprint
from mmgist.lm.scoring import Question, accuracy, prefix_head, score_options

PREFIX = Prompt(["The secret word is zebra. ", torch.rand(3, 16, 16), " Say it."])
OPTIONS = [" zebra", " horse", " a"]


def test_scores_match_one_forward_pass_per_option(tiny_lm):
    model, vocab = tiny_lm
    context = vocab.encode(PREFIX, add_bos=True) + vocab.encode([" The word:"])
    by_hand = []
    for o in OPTIONS:
        ids = vocab.encode([o])
        with torch.no_grad():
            logp = model(torch.tensor([context + ids])).logits[0].log_softmax(-1)
        by_hand.append(sum(logp[len(context) + t - 1, tok] for t, tok in enumerate(ids)))
    scores = score_options(model, vocab, " The word:", OPTIONS, prefix=PREFIX)
    assert torch.allclose(scores.logprobs, torch.stack(by_hand), atol=1e-4)
    assert torch.allclose(scores.probs.sum(), torch.tensor(1.0)) and scores.best == int(torch.stack(by_hand).argmax())
    # ids and a Prompt name the same prefix; no prefix means <|bos|> alone
    ids = vocab.encode(PREFIX, add_bos=True)
    assert torch.allclose(score_options(model, vocab, " The word:", OPTIONS, prefix=ids).logprobs, scores.logprobs)
    bare = score_options(model, vocab, " The word:", OPTIONS, prefix=[vocab.bos_id]).logprobs
    assert torch.allclose(score_options(model, vocab, " The word:", OPTIONS).logprobs, bare)


def test_a_prefix_read_once_as_keys_and_values_scores_like_the_prefix(tiny_lm):
    model, vocab = tiny_lm
    head = prefix_head(model, vocab, PREFIX)
    assert len(head) == len(vocab.encode(PREFIX, add_bos=True))
    for query, options in ((" The word:", OPTIONS), (" Q: again? A:", [" no", " yes, zebra"])):
        cached = score_options(model, vocab, query, options, head=head)
        assert torch.allclose(cached.logprobs, score_options(model, vocab, query, options, prefix=PREFIX).logprobs,
                              atol=1e-4)  # fmt: skip
    with pytest.raises(ValueError, match="one context"):
        score_options(model, vocab, " The word:", OPTIONS, prefix=PREFIX, head=head)


def test_a_gist_of_the_prefix_own_embeddings_scores_like_the_prefix(tiny_lm):
    model, vocab = tiny_lm
    ids = vocab.encode(PREFIX, add_bos=True)
    with torch.no_grad():  # k = prefix length: no compression
        own = model.get_input_embeddings()(torch.tensor(ids[1:]))
    gist = GistPrefix(own, model_fingerprint(model), vocab.fingerprint(), len(ids), vocab.bos_id)
    via_gist = score_options(model, vocab, " The word:", OPTIONS, gist=gist).logprobs
    assert torch.allclose(
        via_gist, score_options(model, vocab, " The word:", OPTIONS, prefix=PREFIX).logprobs, atol=1e-5
    )


def test_accuracy_and_bad_questions(tiny_lm):
    model, vocab = tiny_lm
    best = score_options(model, vocab, " The word:", OPTIONS, prefix=PREFIX).best
    right, wrong = Question(" The word:", OPTIONS, best), Question(" The word:", OPTIONS, (best + 1) % 3)
    assert accuracy(model, vocab, [right, wrong, Question(" x", OPTIONS)], prefix=PREFIX) == 0.5
    with pytest.raises(ValueError, match="at least 2 options"):
        Question(" q", [" a"])
    with pytest.raises(ValueError, match="must index the 2 options, got 2"):
        Question(" q", [" a", " b"], answer=2)
    with pytest.raises(ValueError, match="none of the questions has a known answer"):
        accuracy(model, vocab, [Question(" q", [" a", " b"])])
    gist = GistPrefix(torch.zeros(2, 32), model_fingerprint(model), vocab.fingerprint(), 9, vocab.bos_id)
    with pytest.raises(ValueError, match="not both"):
        score_options(model, vocab, " q", OPTIONS, prefix=PREFIX, gist=gist)


def test_questions_add_a_task_section_to_the_gist_report(tiny_lm):
    model, vocab = tiny_lm
    questions = [Question(" The word:", OPTIONS, 0), Question(" Say:", OPTIONS[:2])]
    config = GistConfig(
        **EMBEDDINGS_ONLY, num_gist_tokens=2, steps=5, num_continuations=4, continuation_length=4, eval_every=5
    )
    gist = distill_gist(model, vocab, PREFIX, config, queries=[*questions, " Again:"])
    task = gist.report["task"]
    assert task["questions"] == 2 and task["answered"] == 1
    assert set(task["rows"]) == {"full_prefix", "gist", "init", "truncated", "no_prefix"}
    full = task["rows"]["full_prefix"]
    assert full["option_kl"] == 0.0 and full["agreement"] == 1.0
    assert full["accuracy"] == float(score_options(model, vocab, " The word:", OPTIONS, prefix=PREFIX).best == 0)
    assert task["rows"]["gist"]["accuracy"] == float(
        score_options(model, vocab, " The word:", OPTIONS, gist=gist).best == 0
    )
    assert gist.report["train_continuations"] + gist.report["heldout_continuations"] == 12  # 4 per query


def test_option_kl_is_the_mean_kl_over_questions_each_over_its_own_options():
    import math

    import torch

    from mmgist.lm.scoring import option_kl

    p, q = (
        [torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0, 0.0])],
        [torch.tensor([0.25, 0.75]), torch.tensor([0.5, 0.25, 0.25])],
    )
    by_hand = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75) + math.log(1 / 0.5)) / 2
    assert option_kl(p, q) == pytest.approx(by_hand, rel=1e-6)
    assert option_kl(p, p) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="at least one"):
        option_kl([], [])
