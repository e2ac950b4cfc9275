"""Distillation data and report: the held-out split is honest, greedy decoding paths agree, low precision works."""

import pytest
import torch
from conftest import EMBEDDINGS_ONLY, make_vocab

from mmgist import Prompt, Question
from mmgist.gist import GistConfig, distill_gist
from mmgist.gist.data import Continuations, Teacher, keep_top_k, pad, split
from mmgist.gist.report import greedy, kl_per_position
from mmgist.lm import build_lm
from mmgist.lm.scoring import head_embeddings

PREFIX = Prompt(["The secret word is zebra. ", torch.rand(3, 8, 8), " Always answer with the secret word."])


@pytest.fixture(scope="module")
def setup():
    vocab = make_vocab()
    torch.manual_seed(0)
    return build_lm(vocab, preset="tiny").eval(), vocab


@pytest.mark.parametrize("support", [1, 5, 12])
def test_top_k_kl_equals_the_dense_kl_when_k_covers_the_teachers_support(support):
    g = torch.Generator().manual_seed(support)
    logits = torch.randn(3, 7, 40, generator=g) * 3
    ranks = torch.rand(3, 7, 40, generator=g).argsort(-1)
    dense = logits.masked_fill(ranks >= support, float("-inf")).log_softmax(-1)  # `support` ids per position
    student = torch.randn(3, 7, 40, generator=g).log_softmax(-1).requires_grad_(True)
    reference = kl_per_position(Teacher(dense), student)
    (grad_dense,) = torch.autograd.grad(reference.sum(), student)
    for k in (support, 12, 40):  # k = support, more, all
        teacher = keep_top_k(dense, k)
        assert teacher.ids.shape == (3, 7, k) and torch.equal(teacher.top1(), Teacher(dense).top1())
        assert torch.isneginf(teacher.rest).all()  # no mass outside the kept ids
        approx = kl_per_position(teacher, student)
        assert torch.allclose(approx, reference, atol=1e-5)
        (grad,) = torch.autograd.grad(approx.sum(), student)
        assert torch.allclose(grad, grad_dense, atol=1e-5)
    # a full-support teacher: k ids plus the rest bucket is a coarser view, never a larger KL
    full = logits.log_softmax(-1)
    for k in (1, 4, 39):
        teacher = keep_top_k(full, k)
        assert torch.allclose(teacher.logp.exp().sum(-1) + teacher.rest.exp(), torch.ones(3, 7), atol=1e-5)
        assert (kl_per_position(teacher, student) <= kl_per_position(Teacher(full), student) + 1e-6).all()


def test_split_drops_heldout_positions_whose_context_was_trained_on():
    # two queries ([1, 2] and [3]) with continuations that share their starts
    rows = [[1, 2, 7, 8], [1, 2, 7, 9], [1, 2, 5], [3, 7, 8], [3, 7, 8, 1], [3, 6, 6, 6], [1, 2, 7, 8, 4], [3, 5, 9]]
    starts = [2, 2, 2, 1, 1, 1, 2, 1]
    ids, real, mask = pad(rows, starts)
    data = Continuations(ids, real, mask, Teacher(torch.zeros(len(rows), ids.shape[1], 4)))
    for seed in range(5):
        parts = split(data, 0.5, seed)
        train, held, dropped = parts.train, parts.heldout, parts.dropped
        assert parts.unseen is None and parts.validation is None
        assert len(train) == len(held) == 4
        seen = {tuple(r[:t].tolist()) for r, m in zip(train.ids, train.mask) for t in m.nonzero().flatten().tolist()}
        kept = [(b, t) for b, t in held.mask.nonzero().tolist()]
        assert all(tuple(held.ids[b, :t].tolist()) not in seen for b, t in kept)
        assert dropped + len(kept) == int(
            data.mask[:0].sum() + sum(len(r) - s for r, s in zip(rows, starts)) - train.mask.sum()
        )
        # validation rows come out of the training rows: the held-out rows stay the same, and no row is in two parts
        with_val = split(data, 0.5, seed, validation_fraction=0.25)
        assert torch.equal(with_val.heldout.ids, held.ids)
        assert len(with_val.validation) == 2 and len(with_val.train) == 2
        everyone = [tuple(r.tolist()) for p in (with_val.train, with_val.validation, with_val.heldout) for r in p.ids]
        assert sorted(everyone) == sorted(tuple(r.tolist()) for r in data.ids)
    with pytest.raises(ValueError, match="leave 8 held out, 0 for validation and 0 to train on"):
        split(data, 0.99, 0)
    with pytest.raises(ValueError, match="leave 4 held out, 4 for validation and 0 to train on"):
        split(data, 0.5, 0, validation_fraction=0.5)
    parts = split(data, 0.5, 0, unseen=2)  # the last 2 rows come after held-out queries
    assert len(parts.train) + len(parts.heldout) == 6 and torch.equal(parts.unseen.ids, data.ids[6:])


def test_self_study_rows_all_train_with_every_sampled_token_counted():
    served = [[3, 7, 8, 1], [3, 5, 5], [3, 6, 6], [3, 9, 9], [3, 4, 4], [3, 2, 2]]  # query [3], then a continuation
    study = [[3, 7, 8, 1, 5], [5, 5]]  # straight after the prefix: no query, every token sampled
    rows, starts = [*served, *study, [4, 4, 1]], [1] * 6 + [0, 0] + [1]  # [served | study | unseen]
    ids, real, mask = pad(rows, starts)
    data = Continuations(ids, real, mask, Teacher(torch.zeros(len(rows), ids.shape[1], 4)))
    held_out_once = False
    for seed in range(8):
        parts = split(data, 0.5, seed, unseen=1, study=2)
        assert len(parts.train) == 3 + 2 and len(parts.heldout) == 3 and torch.equal(parts.unseen.ids, ids[8:])
        assert torch.equal(parts.train.ids[-2:], ids[6:8])
        assert torch.equal(parts.train.mask[-2:], parts.train.real[-2:])  # the loss covers each sampled token
        for row, m in zip(parts.heldout.ids, parts.heldout.mask):
            if row.tolist()[:4] == [3, 7, 8, 1]:  # every context of it is in the first self-study row
                held_out_once = True
                assert not m.any()
    assert held_out_once


def test_self_study_samples_are_drawn_straight_after_the_prefix(setup):
    from mmgist.gist.data import sample

    model, vocab = setup
    prefix = vocab.encode(PREFIX, add_bos=True)
    config = GistConfig(num_gist_tokens=2, target="embeddings", steps=3, num_continuations=8, continuation_length=4,
                        self_study=3, self_study_length=10)  # fmt: skip
    rows = sample(model, vocab, prefix, [], config, 2, config.self_study, config.self_study_length)
    assert len(rows) == 3 and all(1 <= len(r) <= 10 for r in rows) and max(map(len, rows)) > 4
    assert rows == sample(model, vocab, prefix, [], config, 2, 3, 10)  # deterministic in the seeds
    r = distill_gist(model, vocab, PREFIX, config, queries=[" Q:"]).report
    assert r["self_study_continuations"] == 3 and r["train_continuations"] == 6 + 3 and r["heldout_continuations"] == 2


@pytest.mark.parametrize("max_rows", [1, 3, 64])
def test_batched_sampling_of_queries_of_different_lengths_equals_each_alone(setup, max_rows):
    """Near-zero temperature makes sampling greedy: every row, whichever batch and padding it shared,
    must then be its query's own greedy continuation (positions and masks kept across the padding)."""
    from mmgist.gist.data import sample

    model, vocab = setup
    prefix = vocab.encode(PREFIX, add_bos=True)
    queries = [vocab.encode([q]) for q in (" Q:", " Q: top left? A:", " x")]
    config = GistConfig(num_continuations=2, continuation_length=6, temperature=1e-6)
    rows = sample(model, vocab, prefix, queries, config, max_rows=max_rows)
    head = head_embeddings(model, vocab, prefix=prefix)
    expected = [q + greedy(model, head, q, 6, vocab.eos_id) for q in queries for _ in range(2)]
    assert rows == expected


def test_greedy_with_a_cache_equals_plain_argmax_over_ids(setup):
    model, vocab = setup
    prefix = vocab.encode(PREFIX, add_bos=True)
    query = vocab.encode([" Q:"])
    seq = greedy(model, head_embeddings(model, vocab, prefix=prefix), query, 8, vocab.eos_id)
    ids = prefix + query
    with torch.no_grad():
        for _ in range(8):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            if ids[-1] == vocab.eos_id:
                break
    assert seq == ids[len(prefix) + len(query) :]


def test_report_counts_only_unseen_continuation_positions_and_heldout_queries(setup):
    model, vocab = setup
    config = GistConfig(
        **EMBEDDINGS_ONLY, num_gist_tokens=2, steps=10, num_continuations=8, continuation_length=6, eval_every=5
    )
    served = [Question(" Q: word?", [" zebra", " horse"], 0), " Again:"]
    unseen = [Question(" Name it:", [" zebra", " horse", " cat"], 0), " More:"]
    control = Prompt(["The secret word is horse. ", torch.rand(3, 8, 8), " Always answer with the secret word."])
    gist = distill_gist(model, vocab, PREFIX, config, queries=served, heldout_queries=unseen, control_prefix=control)
    r = gist.report
    # 16 served rows split 12 / 4, and the 16 rows after the held-out queries all held out
    assert r["train_continuations"] == 12 and r["heldout_continuations"] == 4 and r["heldout_queries"] == 2
    assert r["unseen_query_continuations"] == 16
    # at most continuation_length positions per held-out row, never the query's tokens
    assert 0 < r["heldout_positions"] <= 6 * r["heldout_continuations"] - r["heldout_positions_dropped"]
    assert r["heldout_positions_dropped"] >= 1  # the first position after a served query is shared with training rows
    assert r["task"]["questions"] == 1 and r["heldout_task"]["questions"] == 1
    assert r["heldout_task"]["rows"]["full_prefix"]["agreement"] == 1.0
    heads = {"gist", "init", "truncated", "no_prefix", "control"}
    for part, table in (("heldout", r["baselines"]), ("unseen_queries", r["unseen_queries"])):
        assert set(table) == heads and table["no_prefix"]["gap_closed"] == 0.0
        # the content gap: how much of KL(full || control) the gist (init, truncated) closes
        for head in ("gist", "init", "truncated"):
            assert r["G_content"][part][head] == 1 - table[head]["kl"] / max(table["control"]["kl"], 1e-12)
        # KL by position within the continuation: the counted positions, pooled again, give the table's KL
        split = r["by_position"][part]
        assert split["positions"] == ["0", "1", "2", "3", "4", "5", "6", "7", "8+"] and split["count"][6:] == [0, 0, 0]
        assert sum(split["count"]) == (r["heldout_positions"] if part == "heldout" else 16 * 6)
        for head in heads:
            means = [(m or 0.0) * c for m, c in zip(split[head], split["count"])]
            assert sum(means) / sum(split["count"]) == pytest.approx(table[head]["kl"], rel=1e-6)
    assert r["heldout_task"]["rows"]["control"]["option_kl"] > -1e-6  # option KL vs the full prefix (rounding: ~0 here)
    from mmgist.gist.report import summary

    text, unseen = summary(r), r["unseen_queries"]
    assert text.splitlines()[1].startswith("  gap closed ")  # the headline figure first, said in words
    if unseen["control"]["kl"] < 0.1 * unseen["no_prefix"]["kl"]:  # a ratio over nearly nothing is not shown
        assert "content gap closed: not shown for unseen_queries" in text
    else:
        assert f"content gap closed {r['G_content']['unseen_queries']['gist']:+.3f} on rows after" in text
    with pytest.raises(ValueError, match="control_prefix is the prefix itself"):
        distill_gist(model, vocab, PREFIX, config, control_prefix=PREFIX)
    assert all(0 <= b["greedy_exact_match"] <= 1 for b in r["unseen_queries"].values())
    assert all(b["greedy_exact_match"] is None for b in r["baselines"].values())  # its first step was trained on
    assert all("heldout_gap_closed" in h and "unseen_queries_gap_closed" in h for h in r["history"])
    with pytest.raises(ValueError, match="held-out query ' Again: x' is \\(or extends\\) a served query"):
        distill_gist(model, vocab, PREFIX, config, queries=served, heldout_queries=[" Again: x"])
    with pytest.raises(ValueError, match="held-out query must not be empty"):
        distill_gist(model, vocab, PREFIX, config, heldout_queries=[torch.tensor([], dtype=torch.long)])


def test_repeating_samples_leave_nothing_held_out_and_say_so(setup):
    from mmgist.gist.report import summary

    model, vocab = setup
    config = GistConfig(
        **EMBEDDINGS_ONLY, num_gist_tokens=2, steps=2, num_continuations=4, continuation_length=1, temperature=0.01
    )
    gist = distill_gist(model, vocab, PREFIX, config, queries=[" Q:"])  # every row is the same one token
    assert gist.report["baselines"] is None and gist.report["unseen_queries"] is None
    assert "pass heldout_queries" in summary(gist.report)


def test_a_bfloat16_model_gets_a_finite_gist_trained_in_float32(setup):
    model, vocab = setup
    low = build_lm(vocab, preset="tiny").eval()
    low.load_state_dict(model.state_dict())
    low = low.to(torch.bfloat16)
    config = GistConfig(
        **EMBEDDINGS_ONLY,
        num_gist_tokens=2,
        steps=20,
        lr=3e-2,
        num_continuations=8,
        continuation_length=6,
        eval_every=10,
    )
    gist = distill_gist(low, vocab, PREFIX, config)
    assert gist.embeddings.dtype == torch.bfloat16 and torch.isfinite(gist.embeddings.float()).all()
    history = gist.report["history"]
    assert history[-1]["train_kl"] < history[0]["train_kl"]


def test_cut_at_stops_each_row_before_the_first_excluded_pattern():
    from mmgist.gist.data import cut_at

    rows = [[5, 1, 2, 7], [1, 2, 3], [9, 9, 3, 4, 1, 2], [4, 4]]
    assert cut_at(rows, [[1, 2]]) == [[5], [], [9, 9, 3, 4], [4, 4]]
    assert cut_at(rows, [[1, 2], [3, 4]]) == [[5], [], [9, 9], [4, 4]]
    assert cut_at(rows, [[1, 2]], starts=[2, 1, 0, 0]) == [[5, 1, 2, 7], [1, 2, 3], [9, 9, 3, 4], [4, 4]]
    with pytest.raises(ValueError, match="no tokens"):
        cut_at(rows, [[]])


def test_batched_greedy_decodes_each_query_as_alone_after_either_kind_of_head(setup):
    """Queries of different lengths decoded together (right-padded, masked, own positions) give each query's
    own greedy continuation, after the prefix's embeddings and after its keys and values alike."""
    from mmgist.gist.report import greedy_batch
    from mmgist.lm.scoring import prefix_head

    model, vocab = setup
    prefix = vocab.encode(PREFIX, add_bos=True)
    queries = [vocab.encode([q]) for q in (" Q:", " Q: top left? A:", " x", " Q: top left? A: dark. Q:")]
    embeddings, kv = head_embeddings(model, vocab, prefix=prefix), prefix_head(model, vocab, prefix)
    alone = [greedy(model, embeddings, q, 7, vocab.eos_id) for q in queries]
    assert len({tuple(a) for a in alone}) > 1  # the queries lead to different answers
    assert greedy_batch(model, embeddings, queries, 7, vocab.eos_id) == alone
    assert greedy_batch(model, kv, queries, 7, vocab.eos_id) == alone
    assert greedy_batch(model, embeddings, queries[:1], 1, vocab.eos_id) == [alone[0][:1]]
