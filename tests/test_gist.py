"""Gist distillation on a tiny model: frozen weights, falling loss, fidelity above baselines, cache paths, files."""

import pytest
import torch
from conftest import EMBEDDINGS_ONLY

from mmgist import Prompt
from mmgist.gist import GistConfig, GistPrefix, distill_gist
from mmgist.lm import build_lm, cache_kwargs

PREFIX = Prompt(["The secret word is zebra. ", torch.rand(3, 16, 16), " Always answer with the secret word."])
FAST = dict(**EMBEDDINGS_ONLY, num_gist_tokens=2, steps=60, lr=3e-2, num_continuations=16, continuation_length=8,
            eval_every=20)  # fmt: skip


@pytest.fixture(scope="module")
def setup():
    from conftest import make_vocab

    vocab = make_vocab()
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").eval()
    for p in model.parameters():
        p.requires_grad_(True)  # as a user's model may be; distillation must not change or train it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gist = distill_gist(model, vocab, PREFIX, GistConfig(**FAST))
    return model, vocab, gist, before


def test_model_is_untouched(setup):
    model, _, _, before = setup
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated


def test_loss_falls_and_gist_beats_its_baselines(setup):
    _, _, gist, _ = setup
    history, rows = gist.report["history"], gist.report["baselines"]
    assert history[-1]["train_kl"] < history[0]["train_kl"]
    assert rows["gist"]["kl"] < rows["init"]["kl"] and rows["gist"]["kl"] < rows["no_prefix"]["kl"]
    assert rows["gist"]["gap_closed"] > rows["init"]["gap_closed"]
    assert rows["no_prefix"]["gap_closed"] == 0.0
    assert gist.k == 2 and gist.embeddings.shape == (2, 32)
    assert gist.report["heldout_continuations"] == 4 and gist.report["train_continuations"] == 12
    # stopping="fixed": every step run, the last one returned, no validation rows
    assert [h["step"] for h in history] == [0, 20, 40, 60] and gist.report["best_step"] == gist.report["steps"] == 60
    assert gist.report["validation_continuations"] == 0 and all("validation_kl" not in h for h in history)


def test_the_cosine_schedule_runs_from_lr_to_zero_and_reaches_the_optimizer(setup):
    from mmgist.gist.config import learning_rate

    cosine = GistConfig(lr=0.1, steps=4, lr_schedule="cosine")
    assert [round(learning_rate(cosine, s), 6) for s in range(4)] == [0.1, 0.085355, 0.05, 0.014645]  # steps 0..3
    assert {learning_rate(GistConfig(lr=0.1, steps=4), s) for s in range(4)} == {0.1}
    model, vocab, _, _ = setup
    quick = {**FAST, "num_continuations": 4, "eval_every": 1}
    gists = {
        (n, schedule): distill_gist(model, vocab, PREFIX, GistConfig(**{**quick, "steps": n, "lr_schedule": schedule}))
        for n in (1, 2)
        for schedule in ("constant", "cosine")
    }
    assert torch.equal(gists[1, "constant"].embeddings, gists[1, "cosine"].embeddings)  # one step: lr either way
    assert not torch.equal(gists[2, "constant"].embeddings, gists[2, "cosine"].embeddings)  # the second: lr / 2


def test_validation_stopping_returns_the_gist_of_the_best_validation_step(setup):
    _, vocab, _, _ = setup
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny", initializer_range=0.5).eval()  # the prefix matters: a curve with a dip
    photo = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))  # whatever ran before
    prefix = Prompt(["The secret word is zebra. ", photo, " Always answer with the secret word."])
    config = {**FAST, "steps": 40, "lr": 0.3, "eval_every": 5, "stopping": "validation", "validation_fraction": 0.25}
    gist = distill_gist(model, vocab, prefix, GistConfig(**config))
    r = gist.report
    curve = {h["step"]: h["validation_kl"] for h in r["history"]}
    assert list(curve) == list(range(0, 41, 5)) and r["steps"] == 40
    assert r["best_step"] == min(curve, key=curve.get) and 0 < r["best_step"] < 40  # not simply the last step
    assert r["validation_continuations"] == 4 and r["train_continuations"] == 8 and r["heldout_continuations"] == 4
    assert all({"train_kl", "validation_kl", "heldout_kl"} <= set(h) for h in r["history"])
    # the same run stopped at the best step (same data, same batches) ends with exactly the returned gist
    replay = distill_gist(model, vocab, prefix, GistConfig(**{**config, "steps": r["best_step"]}))
    assert torch.equal(replay.embeddings, gist.embeddings)
    assert replay.report["history"][-1]["validation_kl"] == curve[r["best_step"]]


def test_the_old_early_stopping_rule_is_refused_by_name():
    assert GistConfig(early_stopping=None).stopping == "fixed"  # what older callers pass to switch it off
    with pytest.raises(ValueError, match=r"early_stopping=0.95 .* use stopping='validation'"):
        GistConfig(early_stopping=0.95)
    with pytest.raises(ValueError, match=r"stopping must be one of \['fixed', 'validation'\], got 'gap'"):
        GistConfig(stopping="gap")


@pytest.mark.parametrize("batch", [1, 3])
def test_cached_gist_logits_equal_uncached(setup, batch):
    model, _, gist, _ = setup
    queries = torch.randint(0, 256, (batch, 5))
    with torch.no_grad():
        uncached = model(inputs_embeds=gist.inputs_embeds(model, queries)).logits[:, gist.k + 1 :]
        cache = gist.cache_for(model, batch)
        attn = torch.ones(batch, gist.k + 1 + 5, dtype=torch.long)
        cached = model(input_ids=queries, attention_mask=attn, **cache_kwargs(model, cache)).logits
    assert torch.allclose(cached, uncached, atol=1e-5)


def test_save_load_and_refusals(setup, tmp_path):
    model, vocab, gist, _ = setup
    gist.save(tmp_path / "g.safetensors")
    loaded = GistPrefix.load(tmp_path / "g.safetensors", model=model, vocab=vocab)
    assert torch.equal(loaded.embeddings, gist.embeddings) and loaded.report == gist.report
    # a gist distilled before `stopping` replaced `early_stopping` keeps loading: its config is a record only
    old = GistPrefix(**{**vars(gist), "report": {"config": {**gist.report["config"], "early_stopping": 0.95}}})
    old.save(tmp_path / "old.safetensors")
    assert GistPrefix.load(tmp_path / "old.safetensors", model=model).report["config"]["early_stopping"] == 0.95
    # the same weights loaded from a folder (another name, another config path) or cast to bf16 are the same model
    from mmgist import load_model, save_model

    save_model(model, vocab, tmp_path / "copy")
    reloaded, reloaded_vocab = load_model(tmp_path / "copy")
    GistPrefix.load(tmp_path / "g.safetensors", model=reloaded, vocab=reloaded_vocab)
    GistPrefix.load(tmp_path / "g.safetensors", model=reloaded.to(torch.bfloat16))
    torch.manual_seed(1)
    other = build_lm(vocab, preset="tiny")
    changed = build_lm(vocab, preset="tiny")
    changed.load_state_dict(model.state_dict())
    GistPrefix.load(tmp_path / "g.safetensors", model=changed)  # remembered fingerprint...
    with torch.no_grad():
        changed.get_input_embeddings().weight[0, 0] += 1.0  # ...forgotten once a weight changes in place
    with pytest.raises(ValueError, match="distilled for model"):
        GistPrefix.load(tmp_path / "g.safetensors", model=changed)
    with pytest.raises(ValueError, match="distilled for model"):
        GistPrefix.load(tmp_path / "g.safetensors", model=other)
    from mmgist import ByteTokenizer, SharedVocabulary

    with pytest.raises(ValueError, match="distilled for vocabulary"):
        GistPrefix.load(tmp_path / "g.safetensors", model=model, vocab=SharedVocabulary(text=ByteTokenizer()))
    data = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])  # a copy cut off half way
    with pytest.raises(ValueError, match="not a readable gist file"):
        GistPrefix.load(tmp_path / "cut.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a readable gist file"):
        GistPrefix.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        GistPrefix.load(tmp_path / "missing.safetensors")


def test_bad_requests(setup, monkeypatch):
    model, vocab, _, _ = setup
    with pytest.raises(ValueError, match="num_gist_tokens must be a positive int, got 0"):
        GistConfig(num_gist_tokens=0)
    with pytest.raises(ValueError, match="num_gist_tokens 5 must be smaller than the prefix \\(3 tokens"):
        distill_gist(model, vocab, Prompt(["abc"]), GistConfig(num_gist_tokens=5))
    with pytest.raises(ValueError, match="empty prefix"):
        distill_gist(model, vocab, [vocab.bos_id])
    with pytest.raises(ValueError, match="exceed the model's context of 512"):
        distill_gist(model, vocab, Prompt(["x" * 600]))
    import mmgist.gist.distill as distill_module

    with monkeypatch.context() as m:  # a teacher that ends every sample at once leaves nothing to learn from
        m.setattr(distill_module.data, "sample", lambda *a, **k: [[vocab.eos_id]] * 4)
        with pytest.raises(ValueError, match=r"teacher.s \d+ training samples hold no token to learn from"):
            distill_gist(model, vocab, PREFIX, GistConfig(**{**FAST, "target": "kv", "steps": 2}))
    real_sample = distill_module.data.sample  # most samples ended at once: batches of them only must not give NaN
    with monkeypatch.context() as m:
        m.setattr(distill_module.data, "sample", lambda *a, **k: [
            r if i % 8 == 0 else [vocab.eos_id] for i, r in enumerate(real_sample(*a, **k))])  # fmt: skip
        gist = distill_gist(model, vocab, PREFIX, GistConfig(**{**FAST, "target": "kv", "steps": 12}))
        assert torch.isfinite(gist.tensor).all() and gist.report["steps"] == 12
    real_kl = distill_module.report.kl
    monkeypatch.setattr(distill_module.report, "kl", lambda t, s, m, w=None: real_kl(t, s, m, w) * float("nan"))
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 0 .*nothing was saved"):
        distill_gist(model, vocab, PREFIX, GistConfig(**{**FAST, "steps": 5}))
    # a finite loss whose gradient is not: caught on the step it happens, the last one included
    nan_grad = lambda t, s, m, w=None: real_kl(t, s, m, w) + (0 * s.sum()).abs().sqrt()  # noqa: E731  d sqrt(x)/dx at 0 = inf
    monkeypatch.setattr(distill_module.report, "kl", nan_grad)
    with pytest.raises(FloatingPointError, match=r"at step 0 \(gist finite: False\)"):
        distill_gist(model, vocab, PREFIX, GistConfig(**{**FAST, "steps": 1}))


def test_generate_with_a_gist_matches_greedy_decoding_over_its_inputs_embeds(setup):
    from mmgist import generate

    model, vocab, gist, _ = setup
    query = vocab.encode(Prompt([" Q: word?"]))
    ids = list(query)
    with torch.no_grad():
        for _ in range(6):  # plain greedy over exactly what the gist layout feeds the model, no cache
            logits = model(inputs_embeds=gist.inputs_embeds(model, torch.tensor([ids]))).logits[0, -1]
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask[:256] = True  # a greedy text continuation: the layout allows text, openers and eos
            ids.append(int(logits.masked_fill(~mask, float("-inf")).argmax()))
    out = generate(model, vocab, Prompt([" Q: word?"]), max_new_tokens=6, gist=gist, sizes={"image": (1, 1)})
    expected = vocab.decode(ids[len(query) :]).text()
    assert out.text() == expected
    cache = gist.cache(model)  # reused across calls, never modified by them
    assert generate(model, vocab, " Q: word?", max_new_tokens=6, gist=gist, gist_cache=cache).text() == expected
    assert generate(model, vocab, " Q: word?", max_new_tokens=6, gist=gist, gist_cache=cache).text() == expected


def test_generate_straight_after_a_gist(setup):
    """An empty query: nothing to feed on top of the gist's cache, so its embeddings go in directly."""
    from mmgist import generate

    model, vocab, gist, _ = setup
    ids: list[int] = []
    with torch.no_grad():
        for _ in range(5):  # plain greedy over the gist's inputs_embeds, text ids only (as the layout allows here)
            logits = model(inputs_embeds=gist.inputs_embeds(model, torch.tensor([ids], dtype=torch.long))).logits[0, -1]
            ids.append(int(logits[:256].argmax()))
    out = generate(model, vocab, "", max_new_tokens=5, gist=gist, sizes={"image": (1, 1)})
    assert out.text() == vocab.decode(ids).text()


def _tiny(arch: str, vocab_size: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, max_position_embeddings=256)
    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = {
        "gpt2": lambda: tf.GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=32, n_layer=2, n_head=2),
        "qwen2": lambda: tf.Qwen2Config(**common, **layers, num_key_value_heads=1),
        "gemma": lambda: tf.GemmaConfig(**common, **layers, num_key_value_heads=1, head_dim=16),  # scales embeddings
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common, **layers),
    }[arch]()
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "gemma", "gpt_neox"])
def test_other_hugging_face_architectures(setup, arch):
    from mmgist.lm.scoring import score_options

    _, vocab, _, _ = setup
    model = _tiny(arch, len(vocab))
    config = GistConfig(**{**FAST, "steps": 20, "eval_every": 10, "num_continuations": 8})
    gist = distill_gist(model, vocab, PREFIX, config)
    history = gist.report["history"]
    assert history[-1]["train_kl"] < history[0]["train_kl"]
    queries = torch.randint(0, 256, (3, 4))
    with torch.no_grad():
        uncached = model(inputs_embeds=gist.inputs_embeds(model, queries)).logits[:, gist.k + 1 :]
        attn = torch.ones(3, gist.k + 1 + 4, dtype=torch.long)
        cached = model(input_ids=queries, attention_mask=attn, **cache_kwargs(model, gist.cache_for(model, 3))).logits
    assert torch.allclose(cached, uncached, atol=1e-4)
    # scoring after the prefix as ids equals scoring after a "gist" made of the prefix's own embeddings
    from mmgist.gist import model_fingerprint

    ids = vocab.encode(PREFIX, add_bos=True)
    with torch.no_grad():  # the embedding module's output: Gemma scales its rows there
        own = model.get_input_embeddings()(torch.tensor(ids[1:]))
    same = GistPrefix(own, model_fingerprint(model), vocab.fingerprint(), len(ids), vocab.bos_id)
    full = score_options(model, vocab, " Say:", [" zebra", " horse"], prefix=ids).logprobs
    assert torch.allclose(
        score_options(model, vocab, " Say:", [" zebra", " horse"], gist=same).logprobs, full, atol=1e-4
    )


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma"])
def test_teacher_and_student_paths_agree_when_the_head_is_the_whole_prefix(setup, arch):
    """The teacher (ids, prefix KV cache, batched) and the student (embeddings, no cache) are one model."""
    from mmgist.gist.data import pad, teacher_logprobs
    from mmgist.lm.heads import student_logprobs
    from mmgist.lm.scoring import head_embeddings

    model, vocab = (setup[0], setup[1]) if arch == "llama" else (_tiny(arch, len(setup[1])), setup[1])
    prefix = vocab.encode(PREFIX, add_bos=True)
    ids, real, counted = pad([[5, 6, 7, 8, 9], [10, 11], [12, 0, 14]], starts=[2, 0, 1])  # ragged, a 0 inside
    assert counted.sum() == 3 + 2 + 2 and torch.equal(real.sum(1), torch.tensor([5, 2, 3]))
    teacher = teacher_logprobs(model, prefix, ids, real).logp  # dense (n, T, V)
    with torch.no_grad():
        student = student_logprobs(model, head_embeddings(model, vocab, prefix=prefix), ids, real)
    assert torch.allclose(teacher[real], student[real], atol=1e-4)  # right padding never leaks into real positions
    top = teacher_logprobs(model, prefix, ids, real, top_k=8)  # the kept form: the same numbers, fewer of them
    assert top.logp.shape == (3, 5, 8) and torch.allclose(top.logp, teacher.gather(-1, top.ids), atol=1e-5)
    assert torch.allclose(top.logp, teacher.topk(8, -1).values, atol=1e-5)
    outside = teacher.scatter(-1, top.ids, float("-inf")).logsumexp(-1)
    assert torch.allclose(top.rest, outside, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_hidden_states_after_the_prefix_agree_as_embeddings_and_as_keys_and_values(setup, arch):
    """The hidden-state term's target (the prefix read once as keys and values) equals the prefix given whole as
    embeddings, at every layer and every real position; padding never leaks in."""
    from mmgist.gist.data import pad
    from mmgist.gist.report import hidden_error
    from mmgist.lm.heads import student_forward
    from mmgist.lm.scoring import head_embeddings, prefix_head

    model, vocab = (setup[0], setup[1]) if arch == "llama" else (_tiny(arch, len(setup[1])), setup[1])
    prefix = vocab.encode(PREFIX, add_bos=True)
    ids, real, _ = pad([[5, 6, 7, 8, 9], [10, 11], [12, 0, 14]], starts=[2, 0, 1])
    with torch.no_grad():
        _, whole = student_forward(model, head_embeddings(model, vocab, prefix=prefix), ids, real, hidden=True)
        _, cached = student_forward(model, prefix_head(model, vocab, prefix), ids, real, hidden=True)
        _, none = student_forward(model, head_embeddings(model, vocab), ids, real, hidden=True)
    assert len(whole) == len(cached) == model.config.num_hidden_layers
    for a, b in zip(whole, cached):
        assert a.shape == b.shape == (3, 5, model.config.hidden_size)
        assert torch.allclose(a[real], b[real], atol=1e-4)
    assert hidden_error(whole, cached, real) < 1e-8 < hidden_error(none, cached, real)


def test_hidden_error_is_relative_per_layer_and_ignores_padding():
    from mmgist.gist.report import hidden_error

    g = torch.Generator().manual_seed(0)
    teacher = (torch.randn(2, 4, 8, generator=g), 100 * torch.randn(2, 4, 8, generator=g))  # two layers, two scales
    real = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert hidden_error(teacher, teacher, real) == 0
    assert torch.isclose(hidden_error(tuple(torch.zeros_like(t) for t in teacher), teacher, real), torch.tensor(1.0))
    # the same relative error on either layer counts the same, whatever its scale
    off = (teacher[0] * 1.5, teacher[1])
    assert torch.isclose(hidden_error(off, teacher, real), torch.tensor(0.25 / 2))
    padded = tuple(torch.where(real[..., None], t, torch.full_like(t, 1e6)) for t in teacher)
    assert hidden_error(padded, teacher, real) == 0


@pytest.mark.parametrize("target", ["embeddings", "kv"])
def test_the_hidden_state_term_pulls_the_gists_states_toward_the_prefixs(setup, target):
    """Distilled with the term, a gist's hidden states on other samples are closer to the prefix's than with the
    KL alone (hidden_weight=0, the seed's objective), from the same start and batches. The tiny random model barely
    reads its prefix, so the margin is small here (0.038 against 0.043); a term that did not reach the gradient
    would give equal numbers. The demo model's figures are in benchmarks/gist.py's table 3."""
    from mmgist.gist import data
    from mmgist.gist.report import hidden_error
    from mmgist.lm.heads import student_forward
    from mmgist.lm.scoring import prefix_head

    model, vocab, _, _ = setup
    gists = {w: distill_gist(model, vocab, PREFIX, GistConfig(**{**FAST, "target": target, "hidden_weight": w}))
             for w in (0.0, 1.0)}  # fmt: skip
    assert [g.report["config"]["hidden_weight"] for g in gists.values()] == [0.0, 1.0]
    prefix = vocab.encode(PREFIX, add_bos=True)
    ids, real, _ = data.pad(data.sample(model, vocab, prefix, [], GistConfig(**FAST), seed=7))
    with torch.no_grad():
        want = student_forward(model, prefix_head(model, vocab, prefix), ids, real, hidden=True)[1]
        error = {w: hidden_error(student_forward(model, g.head(model), ids, real, hidden=True)[1], want, real).item()
                 for w, g in gists.items()}  # fmt: skip
    assert error[1.0] < error[0.0], error


def test_hidden_targets_kept_for_every_row_equal_those_computed_per_batch(setup, monkeypatch):
    """The two ways the term gets its targets (kept for every training row within HIDDEN_TARGET_BYTES, or
    recomputed for each batch beyond it) agree; both train, and the history records the falling error."""
    from mmgist.gist import data
    from mmgist.gist import distill as distill_module
    from mmgist.lm.scoring import prefix_head

    model, vocab, _, _ = setup
    prefix = vocab.encode(PREFIX, add_bos=True)
    rows = data.sample(model, vocab, prefix, [vocab.encode(" Q:"), []], GistConfig(**FAST), count=3)
    ids, real, mask = data.pad(rows, [3, 3, 3, 0, 0, 0])
    teacher = data.teacher_logprobs(model, prefix, ids, real, 8)
    rows = data.Continuations(ids, real, mask, teacher)
    full = prefix_head(model, vocab, prefix)
    kept = distill_module._states(model, full, rows)
    assert distill_module._states(model, full, rows, budget=0) is None  # over budget: the caller goes per batch
    picks = torch.tensor([4, 0, 2])
    batch = rows.subset(picks).trimmed()
    again = distill_module._states(model, full, batch)
    for a, b in zip(kept, again):
        assert torch.allclose(a[picks, : batch.ids.shape[1]][batch.real], b[batch.real], atol=1e-5)

    config = GistConfig(**{**FAST, "hidden_weight": 1.0})
    monkeypatch.setattr(distill_module, "HIDDEN_TARGET_BYTES", 0)
    per_batch = distill_gist(model, vocab, PREFIX, config)
    errors = [h["train_hidden_error"] for h in per_batch.report["history"]]
    assert torch.isfinite(per_batch.embeddings).all() and errors[-1] < errors[0], errors
