"""What makes a gist keep the prefix's facts: chunks of the prefix, reconstruction rows, questions about each
chunk, KV gists started from the prefix's own keys and values, and k chosen from the prefix's length. On the
tiny chat model of conftest.py (SmolLM2's template on a BPE trained there) and the tiny Llama."""

from itertools import pairwise

import pytest
import torch

from mmgist.gist import GistConfig, distill_gist, gist_tokens_for
from mmgist.gist import data as gist_data
from mmgist.gist.chunks import Chunk, ForcedRow, chunk_prefix, cue, reconstruction_rows
from mmgist.gist.kv_init import attended_kv, attention_received, positions, prefix_kv, rotate_keys
from mmgist.gist.self_study import StudyConfig, chat_study, chunk_questions
from mmgist.lm import output_cache
from mmgist.lm.chat import system_span, system_turn, user_turn
from mmgist.lm.heads import kv_of, pad

DOC = "the harbour opens at six. the fee is twelve coins!\nlist the rules: no wake; no fishing. the cat is six"


def test_chunks_cover_the_span_once_in_whole_sentences():
    pieces = ["", "A", " b", ".", " C", " d", "."]
    assert chunk_prefix(pieces, (1, 7), max_tokens=3) == [Chunk(1, 4), Chunk(4, 7)]
    assert chunk_prefix(pieces, (1, 7), max_tokens=6) == [Chunk(1, 7)]  # two sentences merged while they fit
    assert chunk_prefix(pieces, (1, 7), max_tokens=2) == [Chunk(1, 3), Chunk(3, 4), Chunk(4, 6), Chunk(6, 7)]
    assert chunk_prefix(["", "3", ".", "2", " m", "."], (1, 6), max_tokens=3) == [Chunk(1, 4), Chunk(4, 6)]  # "3.2"
    with pytest.raises(ValueError, match=r"span \(0, 9\) must be a non-empty range within the 7 pieces"):
        chunk_prefix(pieces, (0, 9))
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_prefix(pieces, (1, 7), max_tokens=0)


@pytest.mark.parametrize("max_tokens", [1, 4, 9, 48])
def test_chunks_of_a_system_turn_tile_exactly_the_message(chat, max_tokens):
    _, vocab = chat
    ids, (start, end), pieces = system_span(vocab, DOC)
    assert ids == vocab.encode(system_turn(vocab, DOC), add_bos=True)
    assert "".join(pieces[start:end]) == DOC  # the span is the message, the template's header and end left out
    chunks = chunk_prefix(pieces, (start, end), max_tokens)
    assert chunks[0].start == start and chunks[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(chunks)) and all(0 < len(c) <= max_tokens for c in chunks)


def test_reconstruction_rows_force_exactly_the_prefix_tokens_and_count_only_them(chat):
    _, vocab = chat
    ids, span, pieces = system_span(vocab, DOC)
    chunks = chunk_prefix(pieces, span, 8)
    rows = reconstruction_rows(vocab, ids, pieces, chunks, lambda c: user_turn(vocab, f'Repeat "{c}"'))
    assert [r.continuation for r in rows] == [ids[c.start : c.end] for c in chunks]
    assert all(vocab.decode(r.query).text() == user_turn(vocab, f'Repeat "{cue(pieces, c)}"') for r, c in
               zip(rows, chunks))  # fmt: skip
    # the loss mask covers the forced continuation and nothing else, whatever the row lengths
    starts = [len(r.query) for r in rows]
    ids_t, _, mask = pad([r.query + r.continuation for r in rows], starts)
    for b, r in enumerate(rows):
        assert ids_t[b][mask[b]].tolist() == r.continuation
        assert mask[b].sum() == len(r.continuation)


def test_forced_rows_are_trained_on_with_the_teachers_logprobs(chat):
    model, vocab = chat
    fields = {"questions": 2, "chunk_questions": 0, "reconstruction": True, "chunk_tokens": 8}
    study = chat_study(model, vocab, DOC, StudyConfig(**fields))
    assert study.forced and study.prefix == system_span(vocab, DOC)[0]
    config = GistConfig(num_gist_tokens=2, steps=3, num_continuations=2, continuation_length=4, self_study=0)
    gist = distill_gist(model, vocab, system_turn(vocab, DOC), config, queries=study.queries, forced=study.forced)
    assert gist.report["forced_rows"] == len(study.forced)
    assert gist.report["train_continuations"] == 2 * 2 - 1 + len(study.forced)  # 1 in 4 served rows held out
    with pytest.raises(ValueError, match="forced row 0 must be a ForcedRow with a non-empty continuation"):
        distill_gist(model, vocab, system_turn(vocab, DOC), config, queries=study.queries,
                     forced=[ForcedRow([1, 2], [])])  # fmt: skip


def test_every_chunk_gets_questions_and_its_text_never_enters_the_teachers_context_twice(chat):
    model, vocab = chat
    ids, span, pieces = system_span(vocab, DOC)
    chunks = chunk_prefix(pieces, span, 6)
    qs = chunk_questions(model, vocab, ids, pieces, chunks, per_chunk=2, max_tokens=4)
    assert sorted({q.family for q in qs}) == sorted(f"chunk:{i}" for i in range(len(chunks)))
    assert all(sum(q.family == f"chunk:{i}" for q in qs) == 2 for i in range(len(chunks)))
    study = chat_study(model, vocab, DOC, StudyConfig(questions=0, chunk_questions=1, chunk_tokens=6))
    for q, query in zip(study.questions, study.queries):
        assert query == vocab.encode(user_turn(vocab, q.text))  # the teacher reads prefix + this turn only
        assert "About this part" not in q.text and '"' + "".join(pieces[span[0] : span[1]]) not in q.text
    assert qs == chunk_questions(model, vocab, ids, pieces, chunks, per_chunk=2, max_tokens=4)  # deterministic


def test_rotations_compose_and_undo(tiny_lm):
    model, _ = tiny_lm
    keys = torch.randn(2, 3, 5, model.config.hidden_size // model.config.num_attention_heads)
    a, b = torch.tensor([3, -1, 0, 7, 2]), torch.tensor([-5, 4, 2, 1, -2])
    twice = rotate_keys(model, rotate_keys(model, keys, a), b)
    torch.testing.assert_close(twice, rotate_keys(model, keys, a + b), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotate_keys(model, rotate_keys(model, keys, a), -a), keys, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotate_keys(model, keys, torch.zeros(5, dtype=torch.long)), keys)
    with pytest.raises(ValueError, match=r"one offset per key position \(5\), got shape \(4,\)"):
        rotate_keys(model, keys, a[:4])


def test_a_rotated_key_is_the_key_the_model_computes_at_the_other_position(tiny_lm):
    """A single token read at position p, its keys turned by (q - p), equal those read at position q."""
    model, vocab = tiny_lm
    tok = vocab.encode("x")[0]
    pad = vocab.bos_id
    at = {}
    for p in (1, 4):  # the token after p <|bos|>-only positions would change its input; mask them out instead
        ids = torch.tensor([[pad] * p + [tok]])
        attn = torch.tensor([[0] * p + [1]])
        pos = torch.tensor([[0] * p + [p]])
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
        at[p] = kv_of(output_cache(out))[:, :, :, -1:]
    moved = rotate_keys(model, at[1][:, 0], torch.tensor([3]))
    torch.testing.assert_close(moved, at[4][:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(at[1][:, 1], at[4][:, 1], atol=1e-5, rtol=1e-4)  # values carry no position


@pytest.mark.parametrize("how", ["first", "even", "chunks"])
def test_kv_init_from_the_prefix_is_its_cached_keys_and_values_at_the_chosen_positions(tiny_lm, how):
    model, vocab = tiny_lm
    prefix = vocab.encode("the harbour opens at six and the fee is twelve coins", add_bos=True)
    k = 4
    with torch.no_grad():
        cached = kv_of(output_cache(model(input_ids=torch.tensor([prefix]), use_cache=True))).float()
    kv = prefix_kv(model, prefix, k, how)
    assert kv.shape == (*cached.shape[:3], k, cached.shape[-1])
    for slot, where in enumerate(positions(len(prefix), k, how), start=1):
        assert all(1 <= p < len(prefix) for p in where)
        values = cached[:, 1, :, where].mean(2)
        torch.testing.assert_close(kv[:, 1, :, slot - 1], values)
        keys = rotate_keys(model, cached[:, 0, :, where], torch.tensor([slot - p for p in where])).mean(2)
        torch.testing.assert_close(kv[:, 0, :, slot - 1], keys)
    if how == "first":  # slot i holds prefix position i: no rotation at all
        torch.testing.assert_close(kv, cached[:, :, :, 1 : k + 1])
    spread = positions(len(prefix), k, how)
    assert spread == sorted(spread) and (how != "chunks" or sum(map(len, spread)) == len(prefix) - 1)


def test_attention_received_read_from_the_cache_equals_the_whole_sequence_read_at_once(tiny_lm):
    """Rows read after the prefix's cache (batched, right-padded) attend to each prefix position as they do
    when prefix and row are one sequence (eager attention, one row at a time)."""
    model, vocab = tiny_lm
    prefix = vocab.encode("the harbour opens at six and the fee is twelve coins", add_bos=True)
    rows = [vocab.encode(" when does it open?"), vocab.encode(" fee"), vocab.encode(" the cat is six")]
    got = attention_received(model, prefix, rows, batch_size=2)  # two batches, the first one padded
    n, want = len(prefix), 0
    model.set_attn_implementation("eager")
    with torch.no_grad():
        for r in rows:
            att = model(input_ids=torch.tensor([prefix + r]), output_attentions=True).attentions
            want = want + torch.stack([a[0, :, n:, :n].sum(1) for a in att])  # (layers, q_heads, N)
    model.set_attn_implementation("sdpa")
    heads = model.config.num_key_value_heads
    torch.testing.assert_close(got, want.reshape(len(att), heads, -1, n).sum(2), atol=1e-4, rtol=1e-4)
    assert model.config._attn_implementation == "sdpa"  # restored


def test_attended_kv_keeps_each_heads_most_read_positions_at_their_distance_from_the_query(tiny_lm):
    model, vocab = tiny_lm
    prefix = vocab.encode("the harbour opens at six and the fee is twelve coins", add_bos=True)
    rows = [vocab.encode(" when does it open?"), vocab.encode(" the fee is")]
    n, k = len(prefix), 4
    with torch.no_grad():
        cached = kv_of(output_cache(model(input_ids=torch.tensor([prefix]), use_cache=True))).float()
    kv = attended_kv(model, prefix, k, rows)
    assert kv.shape == (*cached.shape[:3], k, cached.shape[-1])
    where = attention_received(model, prefix, rows)[..., 1:].topk(k, -1).indices.sort(-1).values + 1
    assert not where.eq(where[:1, :1]).all()  # heads chose different positions: the test sees per-head choices
    for layer in range(kv.shape[0]):
        for head in range(kv.shape[2]):
            at = where[layer, head]
            torch.testing.assert_close(kv[layer, 1, head], cached[layer, 1, head, at])
            back = rotate_keys(model, kv[layer, 0, head], torch.full((k,), n - k - 1))  # undo the turn
            torch.testing.assert_close(back, cached[layer, 0, head, at], atol=1e-5, rtol=1e-4)
    whole = attended_kv(model, prefix, n - 1, rows)  # every position kept: the prefix's own cache
    torch.testing.assert_close(whole, cached[:, :, :, 1:], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="needs non-empty rows"):
        attended_kv(model, prefix, k, [])


def test_a_kv_gist_starts_from_the_prefix_when_asked(tiny_lm):
    model, vocab = tiny_lm
    prefix = vocab.encode("the harbour opens at six and the fee is twelve coins", add_bos=True)
    config = GistConfig(num_gist_tokens=3, init="prefix_even", steps=1, lr=1e-9, num_continuations=4,
                        continuation_length=4, self_study=0, hidden_weight=0.0)  # fmt: skip
    gist = distill_gist(model, vocab, prefix, config, queries=[" Q:"])
    torch.testing.assert_close(gist.kv.float(), prefix_kv(model, prefix, 3, "even"), atol=1e-6, rtol=1e-5)
    config.init = "prefix_attended"  # from what the training rows read: every row here is trained on
    gist = distill_gist(model, vocab, prefix, config, queries=[" Q:"])
    assert gist.kv.shape == prefix_kv(model, prefix, 3, "even").shape and gist.kv.isfinite().all()
    with pytest.raises(ValueError, match="init='prefix_even' starts from the prefix's keys and values: it needs "
                       "target='kv', got target='embeddings'"):  # fmt: skip
        GistConfig(init="prefix_even", target="embeddings")


def test_k_follows_the_prefix_length_within_its_bounds(tiny_lm):
    model, _ = tiny_lm
    assert gist_tokens_for(100, per=16, minimum=4, maximum=64) == 7  # ceil(100 / 16)
    assert gist_tokens_for(10, per=16, minimum=4, maximum=64) == 4
    assert gist_tokens_for(5000, per=16, minimum=4, maximum=64) == 64
    assert gist_tokens_for(6, per=1, minimum=1, maximum=64) == 5  # never as long as the prefix itself
    with pytest.raises(ValueError, match=r"a prefix of 1 token after <\|bos\|> leaves nothing to compress"):
        gist_tokens_for(1)
    with pytest.raises(ValueError, match="minimum 8 must be <= maximum 4"):
        gist_tokens_for(100, minimum=8, maximum=4)
    with pytest.raises(ValueError, match=r"k = 600 gist positions do not fit this model's context of 512"):
        gist_tokens_for(5000, per=1, maximum=600, model=model)


def test_divergence_weights_lift_the_positions_the_prefix_decides_and_keep_the_uniform_loss_at_zero():
    from mmgist.gist.data import Teacher
    from mmgist.gist.report import divergence_weights, kl

    d = torch.tensor([[0.0, 1.0, 3.0, 9.0], [2.0, 0.0, 5.0, 7.0]])  # KL(full || no prefix) per position
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    w = divergence_weights(d, mask, 2.0)
    assert torch.equal(w[~mask], torch.zeros(3))  # off the mask: no weight, whatever d is there
    torch.testing.assert_close(w[mask], 1 + 2 * d[mask] / d[mask].mean())  # mean 1 + strength on the mask
    assert torch.equal(divergence_weights(d, mask, 0.0), mask.float())
    g = torch.Generator().manual_seed(0)
    teacher = Teacher(torch.randn(2, 4, 11, generator=g).log_softmax(-1))
    student = torch.randn(2, 4, 11, generator=g).log_softmax(-1)
    torch.testing.assert_close(kl(teacher, student, mask, mask.float() * 5), kl(teacher, student, mask))


def test_the_per_position_prefix_kl_pools_to_the_reports_kl(tiny_lm):
    from mmgist.gist.report import fidelity, kl_positions

    model, vocab = tiny_lm
    prefix = vocab.encode("the harbour opens at six", add_bos=True)
    rows = [vocab.encode(" fee? twelve coins"), vocab.encode(" six")]
    ids, real, mask = pad(rows, [2, 0])
    data = gist_data.Continuations(ids, real, mask, gist_data.teacher_logprobs(model, prefix, ids, real, 8))
    bos = model.get_input_embeddings().weight[[vocab.bos_id]].detach()  # (1, d): no prefix
    per = kl_positions(model, bos, data)
    assert per.shape == ids.shape and torch.equal(per[~mask], torch.zeros(int((~mask).sum())))
    assert per[mask].mean().item() == pytest.approx(fidelity(model, bos, data)["kl"], rel=1e-5)


def test_a_gist_trained_with_divergence_weights_closes_the_gap(chat):
    model, vocab = chat
    prefix = system_turn(vocab, "the harbour opens at six. the fee is twelve coins.")
    config = GistConfig(num_gist_tokens=2, steps=30, lr=3e-2, num_continuations=8, continuation_length=6,
                        self_study=0, hidden_weight=0.0, divergence_weight=4.0, eval_every=10)  # fmt: skip
    gist = distill_gist(model, vocab, prefix, config, queries=[user_turn(vocab, "what is the fee?")])
    history = gist.report["history"]
    assert history[-1]["train_kl"] < history[0]["train_kl"]
    with pytest.raises(ValueError, match=r"divergence_weight must be >= 0 .* got -1"):
        GistConfig(divergence_weight=-1)
